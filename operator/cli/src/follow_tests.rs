//! `follow` against a stand-in API server that answers by path: a build that finished
//! before the CLI attached, its pods listed out of order, one of them an older
//! generation's. The lines must come in the build's order with their prefixes, without the
//! result lines, and follow must end with the build.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

fn pod(
    name: &str,
    step: &str,
    stage: Option<&str>,
    job: &str,
    generation: &str,
    init: &[&str],
    main: &str,
) -> Value {
    let mut labels = json!({
        labels::BUILD: "web", labels::STEP: step, labels::GENERATION: generation,
        "batch.kubernetes.io/job-name": job,
    });
    if let Some(s) = stage {
        labels[labels::STAGE] = json!(s);
    }
    let done = |n: &str| {
        json!({"name": n, "ready": false, "restartCount": 0, "image": "x", "imageID": "",
        "state": {"terminated": {"exitCode": 0}}})
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "labels": labels,
                     "creationTimestamp": "2026-12-02T10:00:00Z"},
        "spec": {"initContainers": init.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
                 "containers": [{"name": main}]},
        "status": {"phase": "Succeeded",
                   "initContainerStatuses": init.iter().map(|n| done(n)).collect::<Vec<_>>(),
                   "containerStatuses": [done(main)]}
    })
}

fn build() -> Value {
    let stage = |i: i32, name: Option<&str>, job: &str| json!({"name": name, "index": i, "phase": "Succeeded", "job": job});
    json!({
        "apiVersion": "build.slipway.dev/v1alpha1", "kind": "ImageBuild",
        "metadata": {"name": "web", "namespace": "ns", "generation": 2, "resourceVersion": "7", "uid": "u1"},
        "spec": {"source": {"inline": {"dockerfile": "FROM x"}}, "output": {"image": "r/web:1"}},
        "status": {"phase": "Succeeded", "observedGeneration": 2, "duration": "40s",
                   "stages": [stage(0, Some("deps"), "web-2-s1-app"), stage(1, Some("app"), "web-2-s1-app"),
                              stage(2, Some("assets"), "web-2-s0-assets")],
                   "image": {"ref": "r/web:1", "digest": "sha256:ab"}}
    })
}

fn pods() -> Vec<Value> {
    vec![
        pod("web-2-push-x", "push", None, "web-2-push", "2", &[], "push"),
        pod(
            "web-2-s0-assets-x",
            "stage",
            Some("assets"),
            "web-2-s0-assets",
            "2",
            &["engine"],
            "stage",
        ),
        pod(
            "web-1-prepare-x",
            "prepare",
            None,
            "web-1-prepare",
            "1",
            &["fetch"],
            "plan",
        ),
        pod(
            "web-2-s1-app-x",
            "stage",
            Some("app"),
            "web-2-s1-app",
            "2",
            &["engine"],
            "stage",
        ),
        pod(
            "web-2-prepare-x",
            "prepare",
            None,
            "web-2-prepare",
            "2",
            &["fetch"],
            "plan",
        ),
    ]
}

fn log_of(pod: &str, container: &str) -> &'static str {
    match (pod, container) {
        ("web-2-prepare-x", "fetch") => "fetched 3 files\n",
        ("web-2-prepare-x", "plan") => "planned 3 stages\nslipway-result: {\"graph\":{}}\n",
        ("web-2-s1-app-x", "stage") => {
            "[deps 1/2] FROM node\n[deps 2/2] RUN npm ci\n[deps] added 3 packages\n[app 1/2] FROM deps\n\
             [app 2/2] RUN npm run build\n[app] built\nslipway-result: {}\n"
        }
        ("web-2-s0-assets-x", "stage") => "[assets 1/1] FROM scratch\n",
        ("web-2-push-x", "push") => "pushed r/web:1\n",
        ("web-1-prepare-x", _) => "the older generation\n",
        _ => "",
    }
}

fn respond(req: &Request<Body>, seen: &Mutex<Vec<String>>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    seen.lock().expect("lock").push(format!("{path}?{query}"));
    let json_body =
        |v: Value| Response::new(Body::from(serde_json::to_vec(&v).unwrap_or_default()));
    if query
        .split('&')
        .any(|q| q == "watch=true" || q == "watch=1")
    {
        return Response::new(Body::from(Vec::new()));
    }
    let builds = "/apis/build.slipway.dev/v1alpha1/namespaces/ns/imagebuilds";
    let pods_path = "/api/v1/namespaces/ns/pods";
    if path == format!("{builds}/web") {
        return json_body(build());
    }
    if path == builds {
        return json_body(
            json!({"apiVersion": "build.slipway.dev/v1alpha1", "kind": "ImageBuildList",
            "metadata": {"resourceVersion": "7"}, "items": [build()]}),
        );
    }
    if path == pods_path {
        return json_body(json!({"apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": "9"}, "items": pods()}));
    }
    if let Some(rest) = path.strip_prefix(&format!("{pods_path}/")) {
        if let Some(name) = rest.strip_suffix("/log") {
            let container = query
                .split('&')
                .find_map(|q| q.strip_prefix("container="))
                .unwrap_or("");
            return Response::new(Body::from(log_of(name, container).as_bytes().to_vec()));
        }
        if let Some(p) = pods().into_iter().find(|p| p["metadata"]["name"] == rest) {
            return json_body(p);
        }
    }
    let mut r = json_body(
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    builds: usize,
}

impl Sink for Lines {
    fn build(&mut self, _: Option<&ImageBuild>, _: &ImageBuild) {
        self.builds += 1;
    }
    fn log(&mut self, line: &LogLine) {
        self.lines.push(line.plain());
    }
    fn tick(&mut self, _: &ImageBuild) {}
}

#[tokio::test]
async fn a_finished_build_s_logs_come_in_the_build_s_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let service = tower::service_fn(move |req: Request<Body>| {
        let r = respond(&req, &s);
        async move { Ok::<_, Infallible>(r) }
    });
    let client = Client::new(service, "ns");
    let mut sink = Lines::default();
    let done = tokio::time::timeout(
        Duration::from_secs(30),
        follow(&client, "ns", "web", true, &mut sink),
    )
    .await
    .expect("follow ends once the build is over")
    .expect("follows");
    assert_eq!(finished(&done), Some(slipway_api::Phase::Succeeded));
    assert_eq!(
        sink.lines,
        [
            "[prepare] fetched 3 files",
            "[prepare] planned 3 stages",
            "[deps 1/2] FROM node",
            "[deps 2/2] RUN npm ci",
            "[deps] added 3 packages",
            "[app 1/2] FROM deps",
            "[app 2/2] RUN npm run build",
            "[app] built",
            "[assets 1/1] FROM scratch",
            "[push] pushed r/web:1",
        ]
    );
    assert!(sink.builds >= 1);
    let seen = seen.lock().expect("lock");
    assert!(
        seen.iter()
            .any(|r| r.starts_with("/api/v1/namespaces/ns/pods?")
                && r.contains("labelSelector=build.slipway.dev%2Fbuild%3Dweb")),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|r| r.contains("web-1-prepare-x/log")),
        "the older generation's pod is not read"
    );
}

#[tokio::test]
async fn a_missing_build_is_not_found() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = tower::service_fn(move |req: Request<Body>| {
        let r = respond(&req, &seen);
        async move { Ok::<_, Infallible>(r) }
    });
    let client = Client::new(service, "ns");
    let e = follow(&client, "ns", "nope", true, &mut Lines::default())
        .await
        .expect_err("not found");
    assert_eq!(e.to_string(), "imagebuild nope not found in namespace ns");
}

/// A build still running when the CLI attaches: its stage pod's log is streamed
/// (`follow=true`), and the watch then reports the build pushed.
fn respond_live(req: &Request<Body>, watches: &Mutex<usize>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let json_body =
        |v: &Value| Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    let builds = "/apis/build.slipway.dev/v1alpha1/namespaces/ns/imagebuilds";
    let pods_path = "/api/v1/namespaces/ns/pods";
    let mut running = build();
    running["status"] = json!({"phase": "Building", "observedGeneration": 2,
        "stages": [{"name": "app", "index": 0, "phase": "Running", "job": "web-2-s0-app"}]});
    let mut live = pod(
        "web-2-s0-app-x",
        "stage",
        Some("app"),
        "web-2-s0-app",
        "2",
        &[],
        "stage",
    );
    live["status"] = json!({"phase": "Running", "containerStatuses": [{"name": "stage", "ready": true,
        "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]});
    let watch = query
        .split('&')
        .any(|q| q == "watch=true" || q == "watch=1");
    if watch && path == builds {
        let mut n = watches.lock().expect("lock");
        *n += 1;
        if *n == 1 {
            // Pushed, a little later than the log's first lines.
            std::thread::sleep(std::time::Duration::from_millis(300));
            let ev = json!({"type": "MODIFIED", "object": build()});
            return Response::new(Body::from(format!("{ev}\n").into_bytes()));
        }
        return Response::new(Body::from(Vec::new()));
    }
    if watch {
        return Response::new(Body::from(Vec::new()));
    }
    if path == format!("{builds}/web") {
        return json_body(&running);
    }
    if path == builds {
        return json_body(
            &json!({"apiVersion": "build.slipway.dev/v1alpha1", "kind": "ImageBuildList",
            "metadata": {"resourceVersion": "7"}, "items": [running]}),
        );
    }
    if path == pods_path {
        return json_body(&json!({"apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": "9"}, "items": [live]}));
    }
    if path == format!("{pods_path}/web-2-s0-app-x/log") {
        assert!(
            query.contains("follow=true"),
            "a running container is streamed: {query}"
        );
        return Response::new(Body::from(
            b"[app 1/2] FROM x\n[app 2/2] RUN make\n[app] done\n".to_vec(),
        ));
    }
    if path == format!("{pods_path}/web-2-s0-app-x") {
        return json_body(&pod(
            "web-2-s0-app-x",
            "stage",
            Some("app"),
            "web-2-s0-app",
            "2",
            &[],
            "stage",
        ));
    }
    let mut r = json_body(
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "NotFound", "code": 404, "message": "not found"}),
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

#[derive(Default)]
struct Changes {
    lines: Vec<String>,
}

impl Sink for Changes {
    fn build(&mut self, before: Option<&ImageBuild>, now: &ImageBuild) {
        for c in crate::output::changes(before, now) {
            self.lines
                .push(c.plain(crate::output::Style { color: false }));
        }
    }
    fn log(&mut self, line: &LogLine) {
        self.lines.push(line.plain());
    }
    fn tick(&mut self, _: &ImageBuild) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_build_is_streamed_until_it_is_pushed() {
    let watches = Arc::new(Mutex::new(0));
    let service = tower::service_fn(move |req: Request<Body>| {
        let r = respond_live(&req, &watches);
        async move { Ok::<_, Infallible>(r) }
    });
    let client = Client::new(service, "ns");
    let mut sink = Changes::default();
    let done = tokio::time::timeout(
        Duration::from_secs(30),
        follow(&client, "ns", "web", true, &mut sink),
    )
    .await
    .expect("follow ends once the build is pushed")
    .expect("follows");
    assert_eq!(finished(&done), Some(slipway_api::Phase::Succeeded));
    let logs: Vec<&String> = sink.lines.iter().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        logs,
        ["[app 1/2] FROM x", "[app 2/2] RUN make", "[app] done"]
    );
    assert_eq!(
        sink.lines.first().map(String::as_str),
        Some("phase Building")
    );
    assert!(
        sink.lines.contains(&"phase Succeeded".to_string()),
        "{:?}",
        sink.lines
    );
}
