//! Test fixtures (as in kube-rs/controller-rs): an ImageBuild to build, its validated
//! settings, cluster objects as the API server returns them, and [`ApiServerVerifier`], a
//! mocked API server (tower-test) that runs a named [`Scenario`]: it answers the calls it
//! expects, in order, and fails the test on any other call, on a call out of order, or when
//! an expected call never comes.

use std::collections::BTreeMap;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, LocalObjectReference,
    PersistentVolumeClaim, Pod, PodSpec, PodStatus, SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use slipway_contract::digest::Digest;
use slipway_contract::graph::{BuildGraph, StageJob};
use slipway_contract::result::PodResult;
use slipway_contract::trust::{Inputs, Outputs};

use super::context::Apis;
use super::render::{self, Settings, Step};
use super::validate::{Build, validate};
use crate::api::{BuildSecret, ImageBuild, ImageBuildSpec, InlineSource, Output, Source};

pub const UID: &str = "uid-1";

/// `ns/web`, generation 3, uid [`UID`]: an inline Dockerfile pushed to `reg:5000/team/web`.
pub fn build() -> ImageBuild {
    let mut ib = ImageBuild::new(
        "web",
        ImageBuildSpec {
            cache: None,
            source: Source {
                inline: Some(InlineSource {
                    dockerfile: "FROM busybox\n".into(),
                    files: BTreeMap::new(),
                }),
                ..Default::default()
            },
            dockerfile: None,
            target: None,
            build_args: vec![],
            output: Output {
                image: "reg:5000/team/web:1.0".into(),
                additional_tags: vec!["latest".into()],
                push_secret: Some(LocalObjectReference {
                    name: "regcred".into(),
                }),
                insecure_registry: true,
            },
            pull_secrets: vec![],
            workspace: None,
            resources: None,
            timeout: None,
            max_parallel_stages: None,
            source_date_epoch: None,
            secrets: vec![
                BuildSecret {
                    id: "tok".into(),
                    secret_ref: SecretKeySelector {
                        name: "s1".into(),
                        key: "token".into(),
                        optional: None,
                    },
                },
                BuildSecret {
                    id: "other".into(),
                    secret_ref: SecretKeySelector {
                        name: "s2".into(),
                        key: "k".into(),
                        optional: None,
                    },
                },
            ],
            cache_volume: None,
            ttl_seconds_after_finished: None,
            rebuild: None,
            cancel: false,
        },
    );
    ib.metadata.namespace = Some("ns".into());
    ib.metadata.uid = Some(UID.into());
    ib.metadata.generation = Some(3);
    ib
}

pub fn settings() -> Settings {
    Settings {
        builder_image: "reg:5000/slipway/builder:1".into(),
        insecure_registries: vec![],
        default_workspace_size: "1Gi".into(),
        default_ttl_seconds: 3600,
        default_resources: None,
        size_limit: slipway_contract::size::Size::DEFAULT_LIMIT,
        workspace_spare: false,
    }
}

/// `ib` validated at `now` (seconds).
pub fn validated(ib: &ImageBuild, now: i64) -> Build {
    let now = Timestamp::from_second(now).expect("time");
    validate(ib, now).expect("valid")
}

/// `sha256:` and 64 times `c`.
pub fn digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).expect("digest")
}

/// The digests a prepare pod reports: a plan, a Dockerfile and busybox's JSON.
pub fn inputs() -> Inputs {
    Inputs {
        cache_keys: None,
        plan: digest('a'),
        dockerfile: digest('b'),
        ignore: None,
        images: BTreeMap::from([("busybox".to_string(), digest('c'))]),
    }
}

/// The digests stage `index` reports: its result, and exports for stage 0.
pub fn outputs(index: usize) -> Outputs {
    Outputs {
        result: digest(char::from(b'0' + (index % 10) as u8)),
        exports: (index == 0).then(|| digest('e')),
    }
}

/// [`outputs`] of each of `stages`, by index.
pub fn outputs_of(stages: impl IntoIterator<Item = usize>) -> BTreeMap<usize, Outputs> {
    stages.into_iter().map(|i| (i, outputs(i))).collect()
}

/// Two stage Jobs: `base`, then `app` on it.
pub fn graph() -> BuildGraph {
    let sj = |stage: usize, name: &str, needs: Vec<usize>| StageJob {
        stages: vec![stage],
        names: vec![Some(name.into())],
        needs,
        image: Some("busybox@sha256:00".into()),
        base: Some("busybox".into()),
        images: if stage == 0 {
            vec!["busybox".into()]
        } else {
            vec![]
        },
        ..Default::default()
    };
    BuildGraph {
        cache: None,
        target: 1,
        jobs: vec![sj(0, "base", vec![]), sj(1, "app", vec![0])],
        inputs: Some(inputs()),
        source_time: None,
        source_revision: None,
    }
}

/// How a Job stands, by its conditions.
#[derive(Clone, Copy)]
pub enum Done {
    Running,
    Complete,
    Failed,
}

fn owner(uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "build.slipway.dev/v1alpha1".into(),
        kind: "ImageBuild".into(),
        name: "web".into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn meta(name: &str, generation: i64, owner_uid: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        uid: Some(format!("uid-of-{name}")),
        labels: Some(BTreeMap::from([
            (render::LABEL_BUILD.to_string(), "web".to_string()),
            (render::LABEL_GENERATION.to_string(), generation.to_string()),
        ])),
        owner_references: owner_uid.map(|u| vec![owner(u)]),
        ..Default::default()
    }
}

/// A Job of `generation` named for `step`, owned by `owner_uid` (none: a stranger's).
pub fn job(step: &Step, generation: i64, owner_uid: Option<&str>, done: Done) -> Job {
    let mut ib = build();
    ib.metadata.generation = Some(generation);
    let name = render::job_name(&ib, step);
    let condition = |type_: &str| JobCondition {
        type_: type_.into(),
        status: "True".into(),
        ..Default::default()
    };
    Job {
        metadata: meta(&name, generation, owner_uid),
        spec: None,
        status: Some(JobStatus {
            conditions: match done {
                Done::Running => None,
                Done::Complete => Some(vec![condition("Complete")]),
                Done::Failed => Some(vec![condition("Failed")]),
            },
            ..Default::default()
        }),
    }
}

/// This generation's workspace claim, owned by the build.
pub fn claim(generation: i64, owner_uid: Option<&str>) -> PersistentVolumeClaim {
    let mut ib = build();
    ib.metadata.generation = Some(generation);
    PersistentVolumeClaim {
        metadata: meta(&render::pvc_name(&ib), generation, owner_uid),
        ..Default::default()
    }
}

/// A finished pod of `job` on `node` that reported `result` in its termination message,
/// owned by the Job (else by a stranger's uid).
pub fn pod(job: &str, node: &str, result: &PodResult, owned: bool) -> Pod {
    let owner_uid = if owned {
        format!("uid-of-{job}")
    } else {
        "uid-other".into()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{job}-abcde")),
            namespace: Some("ns".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: job.into(),
                uid: owner_uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "step".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 0,
                        message: serde_json::to_string(result).ok(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// A list as the API server returns it.
pub fn list<T: serde::Serialize>(kind: &str, items: &[T]) -> Value {
    json!({"kind": kind, "apiVersion": "v1", "metadata": {}, "items": items})
}

/// An API status (an error, or a delete's answer).
pub fn status(code: u16, reason: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "reason": reason, "message": reason, "code": code,
    })
}

pub const JOBS: &str = "/apis/batch/v1/namespaces/ns/jobs";
pub const CLAIMS: &str = "/api/v1/namespaces/ns/persistentvolumeclaims";
pub const PODS: &str = "/api/v1/namespaces/ns/pods";

/// One API call the scenario expects, and the answer.
pub struct Call {
    pub method: Method,
    pub path: String,
    /// A part of the query string the call must have (a label selector, say).
    pub query: Option<&'static str>,
    /// What the request body must hold (objects match when every key given matches).
    pub body: Option<Value>,
    pub status: StatusCode,
    pub answer: Value,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>, answer: Value) -> Self {
        Call {
            method,
            path: path.into(),
            query: None,
            body: None,
            status: StatusCode::OK,
            answer,
        }
    }

    pub fn query(self, query: &'static str) -> Self {
        Call {
            query: Some(query),
            ..self
        }
    }

    pub fn body(self, body: Value) -> Self {
        Call {
            body: Some(body),
            ..self
        }
    }

    pub fn status(self, status: StatusCode) -> Self {
        Call { status, ..self }
    }
}

/// Whether `actual` holds everything `expected` says.
fn holds(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| holds(av, v))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| holds(av, ev))
        }
        _ => actual == expected,
    }
}

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The mocked API server's side of a client.
pub struct ApiServerVerifier(ApiServerHandle);

/// A client of a mocked API server.
pub fn mocked_client() -> (Client, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "ns"), ApiServerVerifier(handle))
}

/// The namespace's API handles, on a mocked API server.
pub fn mocked() -> (Apis, ApiServerVerifier) {
    let (client, server) = mocked_client();
    (Apis::namespaced(&client, "ns"), server)
}

impl ApiServerVerifier {
    /// Answers `calls` in order, asserting each; await the handle (with [`timeout`]) to know
    /// that all of them came. A call more than the scenario has fails the client's request
    /// (the mock is closed).
    pub fn run(mut self, calls: Vec<Call>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            for (n, call) in calls.into_iter().enumerate() {
                let (request, send) = self.0.next_request().await.unwrap_or_else(|| {
                    panic!("call {n} ({} {}) never came", call.method, call.path)
                });
                let what = format!("call {n}: {} {}", request.method(), request.uri());
                assert_eq!(request.method(), call.method, "{what}");
                assert_eq!(request.uri().path(), call.path, "{what}");
                if let Some(q) = call.query {
                    let query = request.uri().query().unwrap_or_default().to_string();
                    assert!(query.contains(q), "{what}: query lacks {q}");
                }
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .expect("request body");
                if let Some(expected) = &call.body {
                    let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
                    assert!(
                        holds(&body, expected),
                        "{what}: body {body}\nlacks {expected}"
                    );
                }
                let answer = match &call.answer {
                    Value::String(text) => text.clone().into_bytes(),
                    v => serde_json::to_vec(v).expect("json"),
                };
                let mut response = Response::new(Body::from(answer));
                *response.status_mut() = call.status;
                send.send_response(response);
            }
        })
    }
}

/// Awaits a scenario: every expected call came, within a second.
pub async fn timeout(scenario: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(std::time::Duration::from_secs(1), scenario)
        .await
        .expect("the scenario's calls did not all come in time")
        .expect("the scenario's assertions held");
}

pub const BY_BUILD: &str = "labelSelector=build.slipway.dev%2Fbuild%3Dweb";

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("json")
}

/// The API calls of one named situation, in the order the step makes them.
pub enum Scenario {
    /// observe: nothing of the build exists yet.
    ObserveNothing,
    /// observe: the prepare Job finished; its pod (on `node-a`) reported the graph.
    ObservePrepareFinished,
    /// observe: generation 2's Job and claim are there, and a stranger's generation-3 Job
    /// and claim carry the build's labels.
    ObserveSupersededAndStrangers,
    /// observe: the graph is kept on the prepare Job; stage `base` failed and its pod says
    /// why; stage `app` is not started.
    ObserveStageFailed,
    /// apply: a new build's workspace claim and prepare Job are created.
    ApplyNewBuild,
    /// apply: the graph just read is kept on the prepare Job; the first stage Job starts.
    ApplyGraphRead,
    /// apply: generation 2's Job and claim go (the claim is gone already), the new claim is
    /// created, and the prepare Job's name is held by a stranger's Job: not adopted.
    ApplySupersededThenStranger,
    /// apply: the claim and the Job exist already and are the build's own: adopted.
    ApplyAdoptOwn,
    /// apply: a failed build's running Job is stopped, its finished one left.
    ApplyStop,
    /// The whole reconcile of a new build: observe, apply, then the `Started` event and
    /// the status.
    ReconcileNewBuild,
}

impl Scenario {
    pub fn calls(self) -> Vec<Call> {
        let prepare = |generation, owner, done| job(&Step::Prepare, generation, owner, done);
        let stage = |pos: usize, label: &str, done| {
            job(&Step::Stage(pos, label.into()), 3, Some(UID), done)
        };
        let get = |path: &str, answer| Call::new(Method::GET, path, answer);
        match self {
            Scenario::ObserveNothing => vec![
                get(JOBS, list::<Job>("JobList", &[])).query(BY_BUILD),
                get(
                    CLAIMS,
                    list::<PersistentVolumeClaim>("PersistentVolumeClaimList", &[]),
                )
                .query(BY_BUILD),
            ],
            Scenario::ObservePrepareFinished => {
                let fake = PodResult::Graph(BuildGraph::default());
                vec![
                    get(
                        JOBS,
                        list("JobList", &[prepare(3, Some(UID), Done::Complete)]),
                    ),
                    get(
                        CLAIMS,
                        list("PersistentVolumeClaimList", &[claim(3, Some(UID))]),
                    ),
                    get(
                        PODS,
                        list(
                            "PodList",
                            &[
                                pod("web-3-prepare", "node-a", &PodResult::Graph(graph()), true),
                                // Newer, but not the Job's: ignored.
                                pod("web-3-prepare", "node-b", &fake, false),
                            ],
                        ),
                    )
                    .query(
                        "labelSelector=batch.kubernetes.io%2Fcontroller-uid%3Duid-of-web-3-prepare",
                    ),
                ]
            }
            Scenario::ObserveSupersededAndStrangers => vec![
                get(
                    JOBS,
                    list(
                        "JobList",
                        &[
                            prepare(2, Some(UID), Done::Complete),
                            prepare(3, Some("uid-other"), Done::Running),
                            job(&Step::Push, 2, None, Done::Running),
                        ],
                    ),
                ),
                get(
                    CLAIMS,
                    list(
                        "PersistentVolumeClaimList",
                        &[claim(2, Some(UID)), claim(3, Some("uid-other"))],
                    ),
                ),
            ],
            Scenario::ObserveStageFailed => {
                let mut p = prepare(3, Some(UID), Done::Complete);
                p.metadata.annotations = Some(BTreeMap::from([
                    (
                        render::ANNOTATION_GRAPH.to_string(),
                        serde_json::to_string(&graph()).expect("json"),
                    ),
                    (render::ANNOTATION_NODE.to_string(), "node-a".to_string()),
                ]));
                let failed = PodResult::Failed {
                    reason: slipway_contract::result::Reason::StageFailed,
                    message: "stage \"base\" (#0): Dockerfile:2: RUN false: exit code 1".into(),
                };
                vec![
                    get(JOBS, list("JobList", &[p, stage(0, "base", Done::Failed)])),
                    get(
                        CLAIMS,
                        list("PersistentVolumeClaimList", &[claim(3, Some(UID))]),
                    ),
                    get(
                        PODS,
                        list("PodList", &[pod("web-3-s0-base", "node-a", &failed, true)]),
                    )
                    .query(
                        "labelSelector=batch.kubernetes.io%2Fcontroller-uid%3Duid-of-web-3-s0-base",
                    ),
                ]
            }
            Scenario::ApplyNewBuild => vec![
                Call::new(Method::POST, CLAIMS, to_json(&claim(3, Some(UID))))
                    .body(owned_named("web-3-workspace"))
                    .status(StatusCode::CREATED),
                Call::new(
                    Method::POST,
                    JOBS,
                    to_json(&prepare(3, Some(UID), Done::Running)),
                )
                .body(owned_named("web-3-prepare"))
                .status(StatusCode::CREATED),
            ],
            Scenario::ApplyGraphRead => vec![
                Call::new(
                    Method::PATCH,
                    format!("{JOBS}/web-3-prepare"),
                    to_json(&prepare(3, Some(UID), Done::Complete)),
                )
                .body(json!({"metadata": {"annotations": {
                    render::ANNOTATION_GRAPH: serde_json::to_string(&graph()).expect("json"),
                    render::ANNOTATION_NODE: "node-a",
                }}})),
                Call::new(
                    Method::POST,
                    JOBS,
                    to_json(&stage(0, "base", Done::Running)),
                )
                .body(owned_named("web-3-s0-base"))
                .status(StatusCode::CREATED),
            ],
            Scenario::ApplySupersededThenStranger => vec![
                Call::new(
                    Method::DELETE,
                    format!("{JOBS}/web-2-prepare"),
                    status(200, "deleted"),
                )
                .body(json!({
                    "propagationPolicy": "Background",
                    "preconditions": {"uid": "uid-of-web-2-prepare"},
                })),
                Call::new(
                    Method::DELETE,
                    format!("{CLAIMS}/web-2-workspace"),
                    status(404, "NotFound"),
                )
                .status(StatusCode::NOT_FOUND),
                Call::new(Method::POST, CLAIMS, to_json(&claim(3, Some(UID))))
                    .status(StatusCode::CREATED),
                Call::new(Method::POST, JOBS, status(409, "AlreadyExists"))
                    .body(owned_named("web-3-prepare"))
                    .status(StatusCode::CONFLICT),
                get(
                    &format!("{JOBS}/web-3-prepare"),
                    to_json(&prepare(3, Some("uid-other"), Done::Running)),
                ),
            ],
            Scenario::ApplyAdoptOwn => vec![
                Call::new(Method::POST, CLAIMS, status(409, "AlreadyExists"))
                    .status(StatusCode::CONFLICT),
                get(
                    &format!("{CLAIMS}/web-3-workspace"),
                    to_json(&claim(3, Some(UID))),
                ),
                Call::new(Method::POST, JOBS, status(409, "AlreadyExists"))
                    .status(StatusCode::CONFLICT),
                get(
                    &format!("{JOBS}/web-3-prepare"),
                    to_json(&prepare(3, Some(UID), Done::Running)),
                ),
            ],
            Scenario::ApplyStop => vec![
                Call::new(
                    Method::DELETE,
                    format!("{JOBS}/web-3-s1-app"),
                    status(200, "deleted"),
                )
                .body(json!({"propagationPolicy": "Background"})),
            ],
            Scenario::ReconcileNewBuild => {
                let mut calls = Scenario::ObserveNothing.calls();
                calls.extend(Scenario::ApplyNewBuild.calls());
                calls.push(
                    Call::new(
                        Method::POST,
                        "/apis/events.k8s.io/v1/namespaces/ns/events",
                        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                               "metadata": {"name": "web.1", "namespace": "ns"},
                               "eventTime": null}),
                    )
                    .body(
                        json!({"reason": "Started", "note": "generation 3", "type": "Normal",
                                 "regarding": {"kind": "ImageBuild", "name": "web"}}),
                    )
                    .status(StatusCode::CREATED),
                );
                let mut patched = build();
                patched.status = Some(Default::default());
                calls.push(
                    Call::new(
                        Method::PATCH,
                        "/apis/build.slipway.dev/v1alpha1/namespaces/ns/imagebuilds/web/status",
                        to_json(&patched),
                    )
                    .body(json!({"status": {
                        "phase": "Pending",
                        "observedGeneration": 3,
                        "conditions": ([("Succeeded", "Unknown"), ("Ready", "False"),
                                        ("Reconciling", "True")].map(|(t, s)| json!({
                            "type": t, "status": s, "reason": "Pending",
                            "message": "creating the prepare Job", "observedGeneration": 3}))),
                        "image": null, "stages": null,
                    }})),
                );
                calls
            }
        }
    }
}

/// A request body naming `name` and owned by the build.
fn owned_named(name: &str) -> Value {
    json!({"metadata": {
        "name": name,
        "namespace": "ns",
        "ownerReferences": [{"kind": "ImageBuild", "uid": UID, "controller": true}],
    }})
}

/// Nothing read early: no pod of the fixtures signs its result.
pub fn early() -> super::early::Early {
    super::early::Early::new(futures::channel::mpsc::unbounded().0)
}
