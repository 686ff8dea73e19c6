use super::*;
use crate::reconcile::fixtures::{self, Scenario, mocked, timeout};

async fn observed(scenario: Scenario) -> Observation {
    let ib = fixtures::build();
    let build = fixtures::validated(&ib, 1_000);
    let (apis, server) = mocked();
    let calls = server.run(scenario.calls());
    let seen = observe(&apis, &ib, &build, &fixtures::early())
        .await
        .expect("observed");
    timeout(calls).await;
    seen
}

#[tokio::test]
async fn a_new_build_has_nothing() {
    let seen = observed(Scenario::ObserveNothing).await;
    assert!(seen.existing.jobs.is_empty() && seen.existing.workspace.is_none());
    assert!(seen.observed.prepare.is_none() && !seen.graph_read);
}

#[tokio::test]
async fn a_finished_prepare_pod_reports_the_graph_once() {
    let seen = observed(Scenario::ObservePrepareFinished).await;
    assert_eq!(seen.existing.workspace.as_deref(), Some("web-3-workspace"));
    assert_eq!(seen.observed.graph, Some(fixtures::graph()));
    assert_eq!(seen.node.as_deref(), Some("node-a"));
    assert!(seen.graph_read);
    let prep = seen.observed.prepare.expect("prepare");
    assert_eq!(prep.state, JobState::Succeeded);
}

#[tokio::test]
async fn other_generations_are_superseded_and_strangers_left_alone() {
    let seen = observed(Scenario::ObserveSupersededAndStrangers).await;
    let names = |v: &[k8s_openapi::api::batch::v1::Job]| -> Vec<String> {
        v.iter().map(|j| j.name_any()).collect()
    };
    assert_eq!(names(&seen.existing.superseded_jobs), ["web-2-prepare"]);
    let claims: Vec<String> = seen
        .existing
        .superseded_claims
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(claims, ["web-2-workspace"]);
    // The stranger's generation-3 Job and claim are not the build's.
    assert!(seen.existing.jobs.is_empty() && seen.existing.workspace.is_none());
    assert!(seen.observed.prepare.is_none());
}

#[tokio::test]
async fn a_failed_stage_pod_says_why() {
    let seen = observed(Scenario::ObserveStageFailed).await;
    assert!(!seen.graph_read, "the graph was kept on the Job");
    assert_eq!(seen.node.as_deref(), Some("node-a"));
    let base = &seen.observed.stages[&0];
    assert!(matches!(base.state, JobState::Failed { .. }));
    assert!(matches!(
        &base.result,
        Some(PodResult::Failed { reason: Reason::StageFailed, message }) if message.contains("exit code 1")
    ));
    assert!(!seen.observed.stages.contains_key(&1));
}

/// Observes the build against `calls`.
async fn observed_with(calls: Vec<fixtures::Call>) -> Observation {
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

fn get(path: &str, answer: serde_json::Value) -> fixtures::Call {
    fixtures::Call::new(http::Method::GET, path, answer)
}

const THIS_GENERATION: &str =
    "labelSelector=build.slipway.dev%2Fbuild%3Dweb%2Cbuild.slipway.dev%2Fgeneration%3D3";

#[tokio::test]
async fn a_running_job_without_a_pod_says_why_from_its_events() {
    use fixtures::{Done, UID, claim, job, list};
    let psa = "Error creating: pods \"web-3-prepare-x\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true";
    let event = serde_json::json!({
        "metadata": {"name": "e1", "namespace": "ns"},
        "involvedObject": {"kind": "Job", "name": "web-3-prepare", "uid": "uid-of-web-3-prepare"},
        "reason": "FailedCreate", "message": psa, "type": "Warning",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    });
    let seen = observed_with(vec![
        get(
            fixtures::JOBS,
            list(
                "JobList",
                &[job(&Step::Prepare, 3, Some(UID), Done::Running)],
            ),
        ),
        get(
            fixtures::CLAIMS,
            list("PersistentVolumeClaimList", &[claim(3, Some(UID))]),
        ),
        get(fixtures::PODS, list::<Pod>("PodList", &[])).query(THIS_GENERATION),
        get(
            "/api/v1/namespaces/ns/events",
            serde_json::json!({
                "kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": [event],
            }),
        )
        .query("fieldSelector=involvedObject.uid%3Duid-of-web-3-prepare%2Creason%3DFailedCreate"),
    ])
    .await;
    let prep = seen.observed.prepare.clone().expect("prepare");
    assert!(prep.pods.none);
    assert_eq!(prep.pods.create_failed.as_deref(), Some(psa));
    let d = crate::reconcile::decide::decide(
        &seen.observed,
        &fixtures::validated(&fixtures::build(), 1_000).limits,
    );
    assert_eq!(d.reason.as_str(), "PodRejected");
}

#[tokio::test]
async fn a_running_jobs_disrupted_pods_are_counted_and_strangers_ignored() {
    use fixtures::{Done, UID, claim, job, list};
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    let mut p = job(&Step::Prepare, 3, Some(UID), Done::Complete);
    p.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_GRAPH.to_string(),
        serde_json::to_string(&fixtures::graph()).expect("json"),
    )]));
    let evicted = |n: usize, owned: bool| {
        let r = PodResult::Stage {
            awaited: Default::default(),
            layers: 0,
            outputs: BTreeMap::new(),
        };
        let mut pod = fixtures::pod("web-3-s0-base", "node-a", &r, owned);
        pod.metadata.name = Some(format!("web-3-s0-base-{n}"));
        pod.status = Some(PodStatus {
            phase: Some("Failed".into()),
            reason: Some("Evicted".into()),
            message: Some("The node was low on resource: ephemeral-storage.".into()),
            conditions: Some(vec![PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    };
    let pods: Vec<Pod> = vec![
        evicted(1, true),
        evicted(2, true),
        evicted(3, false),
        evicted(4, true),
    ];
    let seen = observed_with(vec![
        get(
            fixtures::JOBS,
            list(
                "JobList",
                &[
                    p,
                    job(&Step::Stage(0, "base".into()), 3, Some(UID), Done::Running),
                ],
            ),
        ),
        get(
            fixtures::CLAIMS,
            list("PersistentVolumeClaimList", &[claim(3, Some(UID))]),
        ),
        get(fixtures::PODS, list("PodList", &pods)).query(THIS_GENERATION),
    ])
    .await;
    let base = &seen.observed.stages[&0];
    assert_eq!(
        base.pods.disrupted, 3,
        "the stranger's pod is not the Job's"
    );
    assert!(!base.pods.none);
    let d = crate::reconcile::decide::decide(
        &seen.observed,
        &fixtures::validated(&fixtures::build(), 1_000).limits,
    );
    assert_eq!(d.reason.as_str(), "Evicted");
    assert!(
        d.message
            .contains("3 times (the last: Evicted: The node was low"),
        "{}",
        d.message
    );
}

#[tokio::test]
async fn a_pods_log_is_read_with_a_cap() {
    use fixtures::{Done, UID, claim, job, list};
    let mut pod = fixtures::pod(
        "web-3-prepare",
        "node-a",
        &PodResult::Stage {
            awaited: Default::default(),
            layers: 0,
            outputs: BTreeMap::new(),
        },
        true,
    );
    if let Some(t) = pod
        .status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
        .and_then(|c| c[0].state.as_mut())
        .and_then(|s| s.terminated.as_mut())
    {
        t.message = Some(r#"{"inLog":true}"#.into());
    }
    // What the API server sends when the result line is longer than the cap.
    let log = format!(
        "slipway-result: {{\"graph\":{{\"jobs\":[{}",
        "x".repeat(LOG_LIMIT as usize)
    );
    let seen = observed_with(vec![
        get(
            fixtures::JOBS,
            list(
                "JobList",
                &[job(&Step::Prepare, 3, Some(UID), Done::Complete)],
            ),
        ),
        get(
            fixtures::CLAIMS,
            list("PersistentVolumeClaimList", &[claim(3, Some(UID))]),
        ),
        get(fixtures::PODS, list("PodList", &[pod])),
        get(
            "/api/v1/namespaces/ns/pods/web-3-prepare-abcde/log",
            serde_json::Value::String(log),
        )
        .query("limitBytes=65536&tailLines=2"),
    ])
    .await;
    assert!(seen.observed.graph.is_none() && !seen.graph_read);
    let prep = seen.observed.prepare.expect("prepare");
    assert!(matches!(
        prep.result,
        Some(PodResult::Failed { reason: Reason::SourceFailed, ref message })
            if message == "pod web-3-prepare-abcde: its result is over the 64 KiB the controller reads"
    ));
}

#[test]
fn job_states_come_from_conditions() {
    use crate::reconcile::fixtures::{Done, job};
    let state = |d| job_obs(&job(&Step::Prepare, 3, None, d)).state;
    assert_eq!(state(Done::Running), JobState::Running);
    assert_eq!(state(Done::Complete), JobState::Succeeded);
    assert_eq!(
        state(Done::Failed),
        JobState::Failed {
            deadline: false,
            message: "failed".into()
        }
    );
}
