//! `patch_read` against a stand-in API server that keeps one ImageBuild and applies a JSON
//! merge patch only when its `metadata.resourceVersion` is the current one (409 Conflict
//! otherwise), as the API server does: a rebuild that raced another is read again and counts
//! on from the other's value; a cancel decided on a running build does not land on a build
//! that ended in between.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

/// Another client's change of the object.
type OtherClient = Box<dyn FnMut(&mut Value) + Send>;

/// The server's one object, and what happens after each GET (another client's change).
struct Server {
    object: Value,
    after_get: Vec<OtherClient>,
    patches: Vec<Value>,
}

fn object(phase: &str) -> Value {
    json!({
        "apiVersion": "build.slipway.dev/v1alpha1", "kind": "ImageBuild",
        "metadata": {"name": "web", "namespace": "ns", "generation": 1, "resourceVersion": "1", "uid": "u1"},
        "spec": {"source": {"inline": {"dockerfile": "FROM x"}}, "output": {"image": "r/web:1"}},
        "status": {"phase": phase, "observedGeneration": 1}
    })
}

/// A spec change as the API server makes it: a new resourceVersion and generation.
fn changed(o: &mut Value) {
    let rv: u64 = o["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    o["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
    let g = o["metadata"]["generation"].as_i64().unwrap_or(0);
    o["metadata"]["generation"] = json!(g + 1);
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn respond(req: Request<Body>, server: Arc<Mutex<Server>>) -> Response<Body> {
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect_bytes()
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let mut s = server.lock().expect("lock");
    let reply = |code: StatusCode, v: &Value| {
        let mut r = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
        *r.status_mut() = code;
        r
    };
    if method == Method::GET {
        let r = reply(StatusCode::OK, &s.object);
        if !s.after_get.is_empty() {
            let mut f = s.after_get.remove(0);
            f(&mut s.object);
        }
        return r;
    }
    let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.patches.push(patch.clone());
    let given = patch["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    // Without a resourceVersion the patch applies to whatever is there.
    if given.is_some() && given.as_deref() != s.object["metadata"]["resourceVersion"].as_str() {
        return reply(
            StatusCode::CONFLICT,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict",
                    "code": 409, "message": "the object has been modified"}),
        );
    }
    let mut p = patch.clone();
    if let Some(m) = p["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    merge(&mut s.object, &p);
    changed(&mut s.object);
    reply(StatusCode::OK, &s.object)
}

fn api(server: &Arc<Mutex<Server>>) -> Api<ImageBuild> {
    let s = server.clone();
    let service = tower::service_fn(move |req: Request<Body>| {
        let s = s.clone();
        async move { Ok::<_, Infallible>(respond(req, s).await) }
    });
    Api::namespaced(Client::new(service, "ns"), "ns")
}

fn server(phase: &str, after_get: Vec<OtherClient>) -> Arc<Mutex<Server>> {
    Arc::new(Mutex::new(Server {
        object: object(phase),
        after_get,
        patches: Vec::new(),
    }))
}

fn rebuild_body(ib: &ImageBuild) -> Result<Option<Value>, Error> {
    Ok(Some(control::rebuild_patch(ib)))
}

#[tokio::test]
async fn a_concurrent_rebuild_is_not_lost() {
    // Another client counts spec.rebuild up right after this one read the object.
    let other: OtherClient = Box::new(|o: &mut Value| {
        o["spec"]["rebuild"] = json!(1);
        changed(o);
    });
    let srv = server("Succeeded", vec![other]);
    let (ib, patched) = patch_read(&api(&srv), "ns", "web", "rebuild", rebuild_body)
        .await
        .expect("patched");
    assert!(patched);
    assert_eq!(
        ib.spec.rebuild,
        Some(2),
        "counted on from the other rebuild's 1"
    );
    let s = srv.lock().expect("lock");
    assert_eq!(
        s.patches,
        [
            json!({"metadata": {"resourceVersion": "1"}, "spec": {"rebuild": 1}}),
            json!({"metadata": {"resourceVersion": "2"}, "spec": {"rebuild": 2}}),
        ]
    );
    assert_eq!(s.object["metadata"]["generation"], 3);
}

#[tokio::test]
async fn a_cancel_does_not_land_on_a_build_that_ended_meanwhile() {
    // The build succeeds right after this cancel read it running.
    let ended: OtherClient = Box::new(|o: &mut Value| {
        o["status"]["phase"] = json!("Succeeded");
        o["metadata"]["resourceVersion"] = json!("5");
    });
    let srv = server("Building", vec![ended]);
    let (ib, patched) = patch_read(&api(&srv), "ns", "web", "cancel", cancel_body)
        .await
        .expect("read");
    assert!(!patched, "nothing patched after the conflict");
    assert_eq!(
        control::cancel_plan(&ib),
        CancelPlan::Ended(Phase::Succeeded)
    );
    let s = srv.lock().expect("lock");
    assert_eq!(s.patches.len(), 1, "the first patch was refused");
    assert!(s.object["spec"].get("cancel").is_none());
}

#[tokio::test]
async fn conflicts_without_end_give_up_with_a_message() {
    let always: Vec<OtherClient> = (0..10).map(|_| Box::new(changed) as OtherClient).collect();
    let srv = server("Succeeded", always);
    let e = patch_read(&api(&srv), "ns", "web", "rebuild", rebuild_body)
        .await
        .expect_err("gives up");
    assert_eq!(
        e.to_string(),
        "rebuild imagebuild web: it changed under every one of 5 attempts (409 Conflict)"
    );
    assert_eq!(srv.lock().expect("lock").patches.len(), 5);
}
