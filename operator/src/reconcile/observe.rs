//! The observe step: what exists of a build. It lists the build's Jobs and workspace claims
//! (only those this ImageBuild owns count: see [`owned_by`]), sorts them into this generation's
//! and superseded ones, reads each Job's state, and reads a finished pod's result when the
//! decision needs it (the prepare pod's graph once, a failed pod's reason). Reads only: what
//! to change is for [`apply`](super::apply).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ContainerStateTerminated, ContainerStatus, PersistentVolumeClaim, Pod,
};
use kube::api::{ListParams, LogParams};
use kube::{Api, Resource, ResourceExt};
use slipway_contract::graph::BuildGraph;
use slipway_contract::result::{PodResult, Reason};
use tracing::debug;

use super::apply::owned_by;
use super::context::{Apis, Error};
use super::decide::{JobObs, JobState, Observed};
use super::render::{self, ANNOTATION_GRAPH, ANNOTATION_NODE, LABEL_BUILD, LABEL_GENERATION, Step};
use super::validate::Build;
use crate::api::ImageBuild;

/// A build's objects in the cluster.
#[derive(Debug, Default)]
pub struct Existing {
    /// This generation's Jobs, by name.
    pub jobs: BTreeMap<String, Job>,
    /// Jobs of another generation: the new spec builds instead.
    pub superseded_jobs: Vec<Job>,
    /// Workspace claims of another generation.
    pub superseded_claims: Vec<PersistentVolumeClaim>,
    /// This generation's workspace claim exists.
    pub workspace: bool,
}

/// What the observe step found.
#[derive(Debug, Default)]
pub struct Observation {
    pub existing: Existing,
    /// The Jobs' states and results, for [`decide`](super::decide).
    pub observed: Observed,
    /// The node the prepare pod ran on: later pods follow it (the workspace is there).
    pub node: Option<String>,
    /// The prepare pod's graph was read from its result just now: apply keeps it on the Job,
    /// so that the pod is read once.
    pub graph_read: bool,
}

/// Lists the build's objects and reads the results its Jobs' pods reported.
pub async fn observe(apis: &Apis, ib: &ImageBuild, build: &Build) -> Result<Observation, Error> {
    read(apis, ib, build).await.map_err(Error::Observe)
}

async fn read(apis: &Apis, ib: &ImageBuild, build: &Build) -> Result<Observation, kube::Error> {
    let mine = ListParams::default().labels(&format!("{LABEL_BUILD}={}", build.name));
    let (jobs, superseded_jobs) = sort(apis.jobs.list(&mine).await?.items, build);
    let (claims, superseded_claims) = sort(apis.pvcs.list(&mine).await?.items, build);
    let existing = Existing {
        workspace: claims.contains_key(&render::pvc_name(ib)),
        jobs,
        superseded_jobs,
        superseded_claims,
    };
    let mut seen = Observation::default();
    let prep_name = render::job_name(ib, &Step::Prepare);
    if let Some(j) = existing.jobs.get(&prep_name) {
        let mut obs = job_obs(j);
        let ann = j.annotations();
        seen.observed.graph = ann
            .get(ANNOTATION_GRAPH)
            .and_then(|g| serde_json::from_str::<BuildGraph>(g).ok());
        seen.node = ann.get(ANNOTATION_NODE).cloned();
        if obs.state != JobState::Running && seen.observed.graph.is_none() {
            let (result, node) = pod_result(&apis.pods, j, Reason::SourceFailed).await?;
            if let Some(PodResult::Graph(g)) = &result {
                seen.observed.graph = Some(g.clone());
                seen.node = node;
                seen.graph_read = true;
            }
            obs.result = result;
        }
        seen.observed.prepare = Some(obs);
    }
    if let Some(g) = &seen.observed.graph {
        for (pos, sj) in g.jobs.iter().enumerate() {
            let name = render::job_name(ib, &Step::Stage(pos, sj.label()));
            if let Some(j) = existing.jobs.get(&name) {
                let mut obs = job_obs(j);
                if matches!(obs.state, JobState::Failed { .. }) {
                    obs.result = pod_result(&apis.pods, j, Reason::StageFailed).await?.0;
                }
                seen.observed.stages.insert(pos, obs);
            }
        }
    }
    let push_name = render::job_name(ib, &Step::Push);
    if let Some(j) = existing.jobs.get(&push_name) {
        let mut obs = job_obs(j);
        if obs.state != JobState::Running {
            obs.result = pod_result(&apis.pods, j, Reason::PushFailed).await?.0;
        }
        seen.observed.push = Some(obs);
    }
    seen.existing = existing;
    Ok(seen)
}

/// The build's objects: this generation's by name, and other generations'.
/// Objects the ImageBuild does not own are left out: they are not the build's to use or
/// remove (apply refuses to adopt one in the way of a name it needs).
pub fn sort<K: Resource>(items: Vec<K>, build: &Build) -> (BTreeMap<String, K>, Vec<K>) {
    let generation = build.generation.to_string();
    let mut current = BTreeMap::new();
    let mut superseded = Vec::new();
    for o in items {
        if !owned_by(o.meta(), &build.uid) {
            debug!(build = %build.key(), object = %o.name_any(), "not owned by this build: left alone");
        } else if o.labels().get(LABEL_GENERATION) == Some(&generation) {
            current.insert(o.name_any(), o);
        } else {
            superseded.push(o);
        }
    }
    (current, superseded)
}

/// A Job's state from its conditions.
pub fn job_obs(job: &Job) -> JobObs {
    let status = job.status.clone().unwrap_or_default();
    let conds = status.conditions.unwrap_or_default();
    let on = |t: &str| conds.iter().find(|c| c.type_ == t && c.status == "True");
    let state = if on("Complete").or(on("SuccessCriteriaMet")).is_some() {
        JobState::Succeeded
    } else if let Some(c) = on("Failed").or(on("FailureTarget")) {
        JobState::Failed {
            deadline: c.reason.as_deref() == Some("DeadlineExceeded"),
            message: c
                .message
                .clone()
                .or(c.reason.clone())
                .unwrap_or_else(|| "failed".into()),
        }
    } else {
        JobState::Running
    };
    // SuccessCriteriaMet and FailureTarget come before completionTime is set: their time
    // stands in, so a stage's duration is known the first time it is seen done.
    let completion = status.completion_time.or_else(|| {
        on("Complete")
            .or(on("SuccessCriteriaMet"))
            .or(on("Failed"))
            .or(on("FailureTarget"))
            .and_then(|c| c.last_transition_time.clone())
    });
    JobObs {
        name: job.name_any(),
        state,
        start: status.start_time,
        completion,
        result: None,
    }
}

/// The result a finished Job's pod reported: its termination message, else its log. A pod
/// that died without one (killed, crashed) is described by its exit and last log line.
/// Also the node the pod ran on. Only the Job's own pods count (their ownerReference is the
/// Job's uid): a pod someone else labelled like them is no source of results.
pub async fn pod_result(
    pods: &Api<Pod>,
    job: &Job,
    reason: Reason,
) -> Result<(Option<PodResult>, Option<String>), kube::Error> {
    let selector = format!("batch.kubernetes.io/job-name={}", job.name_any());
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    let job_uid = job.uid().unwrap_or_default();
    let Some(pod) = list
        .items
        .into_iter()
        .filter(|p| owned_by(p.meta(), &job_uid))
        .max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0))
    else {
        return Ok((None, None));
    };
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let (container, terminated) = finished_container(&pod);
    let message = terminated
        .as_ref()
        .and_then(|t| t.message.clone())
        .unwrap_or_default();
    if let Some(r) = PodResult::parse(&message).filter(|_| !PodResult::in_log(&message)) {
        return Ok((Some(r), node));
    }
    let params = LogParams {
        container,
        ..Default::default()
    };
    let log = pods
        .logs(&pod.name_any(), &params)
        .await
        .unwrap_or_default();
    if let Some(r) = PodResult::parse(&log) {
        return Ok((Some(r), node));
    }
    let died = match &terminated {
        Some(t) if t.exit_code != 0 => {
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Some(PodResult::Failed {
                reason,
                message: format!(
                    "pod {} exited with {} ({}): {last}",
                    pod.name_any(),
                    t.exit_code,
                    t.reason.clone().unwrap_or_default()
                ),
            })
        }
        _ => None,
    };
    Ok((died, node))
}

/// The container whose result counts, and how it ended: an init container that failed (the
/// prepare pod's `fetch`: the main container never ran), else the main container (`None`: the
/// pod's only one).
fn finished_container(pod: &Pod) -> (Option<String>, Option<ContainerStateTerminated>) {
    let status = pod.status.as_ref();
    let terminated = |c: &ContainerStatus| c.state.as_ref()?.terminated.clone();
    let failed_init = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| terminated(c).filter(|t| t.exit_code != 0).map(|t| (c, t)));
    if let Some((c, t)) = failed_init {
        return (Some(c.name.clone()), Some(t));
    }
    let main = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(terminated);
    (None, main)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::fixtures::{self, Scenario, mocked, timeout};

    async fn observed(scenario: Scenario) -> Observation {
        let ib = fixtures::build();
        let build = fixtures::validated(&ib, 1_000);
        let (apis, server) = mocked();
        let calls = server.run(scenario.calls());
        let seen = observe(&apis, &ib, &build).await.expect("observed");
        timeout(calls).await;
        seen
    }

    #[tokio::test]
    async fn a_new_build_has_nothing() {
        let seen = observed(Scenario::ObserveNothing).await;
        assert!(seen.existing.jobs.is_empty() && !seen.existing.workspace);
        assert!(seen.observed.prepare.is_none() && !seen.graph_read);
    }

    #[tokio::test]
    async fn a_finished_prepare_pod_reports_the_graph_once() {
        let seen = observed(Scenario::ObservePrepareFinished).await;
        assert!(seen.existing.workspace);
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
        assert!(seen.existing.jobs.is_empty() && !seen.existing.workspace);
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

    #[test]
    fn a_failed_init_container_holds_the_result() {
        use k8s_openapi::api::core::v1::{ContainerState, PodStatus};
        let status = |name: &str, exit: Option<i32>, message: &str| ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: exit.map(|exit_code| ContainerStateTerminated {
                    exit_code,
                    message: Some(message.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = |init: ContainerStatus, main: ContainerStatus| Pod {
            status: Some(PodStatus {
                init_container_statuses: Some(vec![init]),
                container_statuses: Some(vec![main]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // fetch failed: plan never ran.
        let (c, t) = finished_container(&pod(
            status("fetch", Some(1), "fetch's result"),
            status("plan", None, ""),
        ));
        assert_eq!(c.as_deref(), Some("fetch"));
        assert_eq!(t.and_then(|t| t.message).as_deref(), Some("fetch's result"));
        // fetch done: the graph is the main container's.
        let (c, t) = finished_container(&pod(
            status("fetch", Some(0), ""),
            status("plan", Some(0), "the graph"),
        ));
        assert_eq!(c, None);
        assert_eq!(t.and_then(|t| t.message).as_deref(), Some("the graph"));
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
}
