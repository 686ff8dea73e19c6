//! The controller as the keeper of the workspace's digests (security review H1): a finished
//! stage pod's digests are read once, only for the Job's own stages, kept on the Job, and
//! rendered into the arguments of the pods that read those files. Against a mocked API server.

use std::collections::BTreeMap;

use http::Method;
use k8s_openapi::api::batch::v1::Job;
use serde_json::json;
use slipway_contract::result::PodResult;

use super::apply::apply;
use super::decide::{self, Create, JobState};
use super::fixtures::{self, Call, Done, UID, claim, job, list, mocked, timeout};
use super::observe::{Observation, job_obs, observe};
use super::render::{self, ANNOTATION_GRAPH, ANNOTATION_NODE, ANNOTATION_OUTPUTS, Step};

/// The prepare Job with the graph kept on it.
fn prepare() -> Job {
    let mut p = job(&Step::Prepare, 3, Some(UID), Done::Complete);
    p.metadata.annotations = Some(BTreeMap::from([
        (
            ANNOTATION_GRAPH.to_string(),
            serde_json::to_string(&fixtures::graph()).expect("json"),
        ),
        (ANNOTATION_NODE.to_string(), "node-a".to_string()),
    ]));
    p
}

fn base_done() -> Job {
    job(&Step::Stage(0, "base".into()), 3, Some(UID), Done::Complete)
}

async fn observed(calls: Vec<Call>) -> Observation {
    let ib = fixtures::build();
    let build = fixtures::validated(&ib, 1_000);
    let (apis, server) = mocked();
    let calls = server.run(calls);
    let seen = observe(&apis, &ib, &build, &fixtures::early())
        .await
        .expect("observed");
    timeout(calls).await;
    seen
}

fn get(path: &str, answer: serde_json::Value) -> Call {
    Call::new(Method::GET, path, answer)
}

/// The pod of stage Job `base` reports its own digests and, forged, those of stage 1 (the
/// `app` Job's): only its own are taken, to be kept on its Job.
#[tokio::test]
async fn a_stage_pods_digests_are_read_once_and_only_for_its_own_stages() {
    let mut reported = fixtures::outputs_of([0]);
    reported.insert(1, fixtures::outputs(7));
    let r = PodResult::Stage {
        awaited: Default::default(),
        layers: 2,
        outputs: reported,
    };
    let seen = observed(vec![
        get(fixtures::JOBS, list("JobList", &[prepare(), base_done()])),
        get(
            fixtures::CLAIMS,
            list("PersistentVolumeClaimList", &[claim(3, Some(UID))]),
        ),
        get(
            fixtures::PODS,
            list(
                "PodList",
                &[fixtures::pod("web-3-s0-base", "node-a", &r, true)],
            ),
        )
        .query("labelSelector=batch.kubernetes.io%2Fcontroller-uid%3Duid-of-web-3-s0-base"),
    ])
    .await;
    assert_eq!(seen.observed.outputs, fixtures::outputs_of([0]));
    assert_eq!(
        seen.outputs_read,
        vec![("web-3-s0-base".to_string(), fixtures::outputs_of([0]))]
    );
    let d = decide::decide(
        &seen.observed,
        &fixtures::validated(&fixtures::build(), 1_000).limits,
    );
    assert_eq!(d.create, vec![Create::Stage(1)]);
}

/// Digests kept on the Job are taken from there: no pod is read.
#[tokio::test]
async fn kept_digests_are_not_read_again() {
    let mut base = base_done();
    base.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_OUTPUTS.to_string(),
        serde_json::to_string(&fixtures::outputs_of([0])).expect("json"),
    )]));
    let seen = observed(vec![
        get(fixtures::JOBS, list("JobList", &[prepare(), base])),
        get(
            fixtures::CLAIMS,
            list("PersistentVolumeClaimList", &[claim(3, Some(UID))]),
        ),
    ])
    .await;
    assert_eq!(seen.observed.outputs, fixtures::outputs_of([0]));
    assert!(seen.outputs_read.is_empty());
}

/// A finished stage pod that reports no digests ends the build rather than starting a pod
/// that would have nothing to check.
#[tokio::test]
async fn a_stage_pod_without_digests_fails_the_build() {
    let r = PodResult::Stage {
        awaited: Default::default(),
        layers: 2,
        outputs: BTreeMap::new(),
    };
    let seen = observed(vec![
        get(fixtures::JOBS, list("JobList", &[prepare(), base_done()])),
        get(
            fixtures::CLAIMS,
            list("PersistentVolumeClaimList", &[claim(3, Some(UID))]),
        ),
        get(
            fixtures::PODS,
            list(
                "PodList",
                &[fixtures::pod("web-3-s0-base", "node-a", &r, true)],
            ),
        ),
    ])
    .await;
    assert!(seen.observed.outputs.is_empty() && seen.outputs_read.is_empty());
    let d = decide::decide(
        &seen.observed,
        &fixtures::validated(&fixtures::build(), 1_000).limits,
    );
    assert_eq!(d.reason.as_str(), "StageFailed");
    assert!(d.create.is_empty());
}

/// Apply keeps the digests on the stage Job, and the next stage's pod is given them (with the
/// prepare step's); then the push pod gets the plan's, the target's result's and its base's.
#[tokio::test]
async fn digests_are_kept_and_rendered_into_the_next_pods() {
    let ib = fixtures::build();
    let build = fixtures::validated(&ib, 1_000);
    let base = base_done();
    let mut seen = Observation {
        node: Some("node-a".into()),
        outputs_read: vec![("web-3-s0-base".to_string(), fixtures::outputs_of([0]))],
        ..Default::default()
    };
    seen.existing.workspace = Some("web-3-workspace".into());
    seen.observed.prepare = Some(job_obs(&prepare()));
    seen.observed.graph = Some(fixtures::graph());
    seen.observed.stages.insert(0, job_obs(&base));
    seen.observed.outputs = fixtures::outputs_of([0]);
    let d = decide::decide(&seen.observed, &build.limits);
    assert_eq!(d.create, vec![Create::Stage(1)]);
    let objects = render::render(&ib, &fixtures::settings(), &build, &seen, &d).expect("renders");
    let args = objects.jobs[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    let args = args
        .and_then(|p| p.containers[0].args.clone())
        .expect("args");
    let has = |flag: &str, value: String| args.windows(2).any(|w| w[0] == flag && w[1] == value);
    let (plan, dockerfile) = (fixtures::digest('a'), fixtures::digest('b'));
    assert!(has("--plan-digest", plan.to_string()), "{args:?}");
    assert!(has("--dockerfile-digest", dockerfile.to_string()));
    let out = fixtures::outputs(0);
    assert!(has("--result-digest", format!("0={}", out.result)));
    assert!(has(
        "--exports-digest",
        format!("0={}", out.exports.clone().expect("exports"))
    ));
    assert!(
        !args.iter().any(|a| a == "--image-digest"),
        "app reads no image's JSON"
    );
    let (apis, server) = mocked();
    let calls =
        server.run(vec![
        Call::new(
            Method::PATCH,
            format!("{}/web-3-s0-base", fixtures::JOBS),
            serde_json::to_value(&base).expect("json"),
        )
        .body(json!({"metadata": {"annotations": {
            ANNOTATION_OUTPUTS: serde_json::to_string(&fixtures::outputs_of([0])).expect("json"),
        }}})),
        Call::new(
            Method::POST,
            fixtures::JOBS,
            serde_json::to_value(job(&Step::Stage(1, "app".into()), 3, Some(UID), Done::Running))
                .expect("json"),
        )
        .status(http::StatusCode::CREATED),
    ]);
    apply(&apis, &ib, &build, &seen, &d, objects)
        .await
        .expect("applied");
    timeout(calls).await;

    // Both stages done: the push pod's digests.
    seen.observed.stages.insert(1, {
        let mut o = job_obs(&base);
        o.state = JobState::Succeeded;
        o
    });
    seen.observed.outputs = fixtures::outputs_of([0, 1]);
    let d = decide::decide(&seen.observed, &build.limits);
    assert_eq!(d.create, vec![Create::Push]);
    let objects = render::render(&ib, &fixtures::settings(), &build, &seen, &d).expect("renders");
    let pod = objects.jobs[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    let args = pod
        .and_then(|p| p.containers[0].args.clone())
        .expect("args");
    let has = |flag: &str, value: String| args.windows(2).any(|w| w[0] == flag && w[1] == value);
    assert!(has("--plan-digest", plan.to_string()));
    assert!(has(
        "--result-digest",
        format!("1={}", fixtures::outputs(1).result)
    ));
    assert!(has(
        "--image-digest",
        format!("busybox={}", fixtures::digest('c'))
    ));
    assert!(
        !args
            .iter()
            .any(|a| a == "--exports-digest" || a == "--dockerfile-digest")
    );
}
