//! The observe step: what exists of a build. It lists the build's Jobs and workspace claims
//! (only those this ImageBuild owns count: see [`owned_by`]), sorts them into this generation's
//! and superseded ones, reads each Job's state, what a running Job's pods (and, when it has
//! none, its events) say ([`pods`]), and a finished pod's result when the
//! decision needs it (the prepare pod's graph once, each finished stage pod's digests once, a
//! failed pod's reason). Reads only: what to change is for [`apply`](super::apply).
//!
//! What a pod says is read with a cap (M5, L4): its termination message up to Kubernetes'
//! own 4 KiB limit, the end of its log up to [`LOG_LIMIT`] (a line the prepare or push pod
//! signs is read as it is printed, [`early`](super::early), under the same limit); a graph is
//! kept on the prepare Job, so it fits an annotation.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, LogParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use slipway_contract::graph::{BuildGraph, StageJob};
use slipway_contract::result::{PodResult, Reason, TERMINATION_LIMIT};
use slipway_contract::trust::{AwaitedCheck, Outputs, check_awaited};
use tracing::{debug, warn};

use super::apply::owned_by;
use super::awaited::{self, Awaiting, Verdict};
use super::context::{Apis, Error};
use super::decide::{JobObs, JobState, Observed};
use super::early::Early;
use super::pods::{self, PodsSeen};
use super::render::{
    self, ANNOTATION_GRAPH, ANNOTATION_NODE, ANNOTATION_OUTPUTS, LABEL_GENERATION, Step,
};
use super::validate::Build;
use crate::api::ImageBuild;

/// The most of a pod's log read for its result: the end of it, from the second last line
/// (the result line is the last but for an error line after it). A graph over it is not
/// kept: the build fails saying so (annotations hold 256 KiB).
pub const LOG_LIMIT: i64 = 64 * 1024;

/// A build's objects in the cluster.
#[derive(Debug, Default)]
pub struct Existing {
    /// This generation's Jobs, by name.
    pub jobs: BTreeMap<String, Job>,
    /// Jobs of another generation: the new spec builds instead.
    pub superseded_jobs: Vec<Job>,
    /// Workspace claims of another generation.
    pub superseded_claims: Vec<PersistentVolumeClaim>,
    /// This generation's workspace claim, when it exists: its name (a spare the build took
    /// has its own).
    pub workspace: Option<String>,
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
    /// Finished stage Jobs whose pods' digests were read just now, by Job name: apply keeps
    /// them on each Job.
    pub outputs_read: Vec<(String, BTreeMap<usize, Outputs>)>,
}

/// Lists the build's objects and reads the results its Jobs' pods reported.
pub async fn observe(
    apis: &Apis,
    ib: &ImageBuild,
    build: &Build,
    early: &Early,
) -> Result<Observation, Error> {
    read(apis, ib, build, early).await.map_err(Error::Observe)
}

async fn read(
    apis: &Apis,
    ib: &ImageBuild,
    build: &Build,
    early: &Early,
) -> Result<Observation, kube::Error> {
    let me = ObjectRef::from_obj(ib);
    let mine = ListParams::default().labels(&render::build_selector(&build.name));
    let (jobs, superseded_jobs) = sort(apis.jobs.list(&mine).await?.items, build);
    let (claims, superseded_claims) = sort(apis.pvcs.list(&mine).await?.items, build);
    let mut running = running_pods(apis, build, &jobs).await?;
    let mut obs_of = |j: &Job| {
        let pods = running.remove(&j.name_any()).unwrap_or_default();
        let mut obs = job_obs(j);
        // Its pod succeeded: the Job will say so in a second; the build goes on now.
        if obs.state == JobState::Running
            && let Some(done) = &pods.succeeded
        {
            obs.state = JobState::Succeeded;
            obs.completion = Some(done.clone());
        }
        JobObs { pods, ..obs }
    };
    let existing = Existing {
        workspace: workspace(ib, &jobs, claims),
        jobs,
        superseded_jobs,
        superseded_claims,
    };
    let mut seen = Observation::default();
    let prep_name = render::job_name(ib, &Step::Prepare);
    if let Some(j) = existing.jobs.get(&prep_name) {
        let mut obs = obs_of(j);
        let ann = j.annotations();
        seen.observed.graph = ann
            .get(ANNOTATION_GRAPH)
            .and_then(|g| serde_json::from_str::<BuildGraph>(g).ok());
        seen.node = ann.get(ANNOTATION_NODE).cloned();
        if obs.state == JobState::Running {
            if seen.observed.graph.is_some() {
                // Kept from its signed line while the pod was still ending: it is done.
                obs.state = JobState::Succeeded;
            } else if let Some((PodResult::Graph(g), at)) = printed(early, apis, &obs, &me) {
                obs.state = JobState::Succeeded;
                obs.completion = Some(at);
                obs.result = Some(PodResult::Graph(g.clone()));
                seen.node = obs.pods.printing.as_ref().and_then(|p| p.node.clone());
                seen.observed.graph = Some(g);
                seen.graph_read = true;
            }
        } else if seen.observed.graph.is_none() {
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
    // Finished stage Jobs whose digests were read just now: believed once what each took of
    // the stages it awaited agrees with those stages' own reports.
    let mut pending = Vec::new();
    if let Some(g) = &seen.observed.graph {
        // Restored by the prepare step, which checked them: as if their stages had run.
        for c in g.cached_stages() {
            seen.observed.outputs.insert(c.index, c.outputs.clone());
        }
        for (pos, sj) in g.jobs.iter().enumerate() {
            let name = render::job_name(ib, &Step::Stage(pos, sj.label()));
            if let Some(j) = existing.jobs.get(&name) {
                let mut obs = obs_of(j);
                match obs.state {
                    JobState::Failed { .. } => {
                        obs.result = pod_result(&apis.pods, j, Reason::StageFailed).await?.0;
                    }
                    JobState::Succeeded => {
                        if let Some(kept) = kept_outputs(j, sj) {
                            seen.observed.outputs.extend(kept);
                        } else {
                            let result = pod_result(&apis.pods, j, Reason::StageFailed).await?.0;
                            if let Some(PodResult::Stage {
                                outputs, awaited, ..
                            }) = &result
                                && let Some(own) = own_outputs(sj, outputs)
                            {
                                pending.push(Awaiting {
                                    pos,
                                    name,
                                    label: sj.label(),
                                    own,
                                    awaited: awaited.clone(),
                                });
                            }
                            obs.result = result;
                        }
                    }
                    JobState::Running => {}
                }
                seen.observed.stages.insert(pos, obs);
            }
        }
    }
    believe(&mut seen, pending);
    let push_name = render::job_name(ib, &Step::Push);
    if let Some(j) = existing.jobs.get(&push_name) {
        let mut obs = obs_of(j);
        if obs.state != JobState::Running {
            obs.result = pod_result(&apis.pods, j, Reason::PushFailed).await?.0;
        } else if let Some((r @ PodResult::Pushed { .. }, at)) = printed(early, apis, &obs, &me) {
            obs.state = JobState::Succeeded;
            obs.completion = Some(at);
            obs.result = Some(r);
        }
        if let Some(PodResult::Pushed { awaited, .. }) = &obs.result {
            match check_awaited(awaited, &seen.observed.outputs) {
                AwaitedCheck::Agrees => {}
                AwaitedCheck::Unknown(_) => {
                    obs.state = JobState::Running;
                    obs.result = None;
                }
                AwaitedCheck::Differs(n) => {
                    let m = awaited::differs("the push step", n);
                    awaited::fail(&mut obs, Reason::PushFailed, m);
                }
            }
        }
        seen.observed.push = Some(obs);
    }
    seen.existing = existing;
    Ok(seen)
}

/// The result a running prepare or push Job's pod has printed, signed, before it ended
/// ([`early`]); the first look starts following its log.
fn printed(
    early: &Early,
    apis: &Apis,
    obs: &JobObs,
    build: &ObjectRef<ImageBuild>,
) -> Option<(PodResult, Time)> {
    let p = obs.pods.printing.as_ref()?;
    early.result(&apis.pods, p, build)
}

/// Settles the stage Jobs read just now ([`awaited::settle`]): those that agree are done and
/// their digests kept; one whose awaited stages have not been seen to end still runs; one
/// that took other outputs than a stage reported failed.
fn believe(seen: &mut Observation, pending: Vec<Awaiting>) {
    for (a, verdict) in awaited::settle(&mut seen.observed.outputs, pending) {
        let Some(obs) = seen.observed.stages.get_mut(&a.pos) else {
            continue;
        };
        match verdict {
            Verdict::Agrees => seen.outputs_read.push((a.name, a.own)),
            Verdict::Unknown => {
                obs.state = JobState::Running;
                obs.result = None;
            }
            Verdict::Differs(n) => {
                let who = format!("stage \"{}\"", a.label);
                awaited::fail(obs, Reason::StageFailed, awaited::differs(&who, n));
            }
        }
    }
}

/// The digests a stage pod reported for its own stages, all of them: a pod speaks for the
/// stages of its Job and no other (what it says of another stage is not taken); `None` when
/// one of its stages is missing.
pub fn own_outputs(
    sj: &StageJob,
    reported: &BTreeMap<usize, Outputs>,
) -> Option<BTreeMap<usize, Outputs>> {
    sj.stages
        .iter()
        .map(|i| reported.get(i).map(|o| (*i, o.clone())))
        .collect()
}

/// The digests kept on a finished stage Job by an earlier reconcile.
fn kept_outputs(job: &Job, sj: &StageJob) -> Option<BTreeMap<usize, Outputs>> {
    let text = job.annotations().get(ANNOTATION_OUTPUTS)?;
    let kept: BTreeMap<usize, Outputs> = serde_json::from_str(text).ok()?;
    own_outputs(sj, &kept)
}

/// What the pods of this generation's running Jobs say, by Job name: one list of the build's
/// pods, and, for a Job without any, its `FailedCreate` events.
async fn running_pods(
    apis: &Apis,
    build: &Build,
    jobs: &BTreeMap<String, Job>,
) -> Result<BTreeMap<String, PodsSeen>, kube::Error> {
    let running: Vec<&Job> = jobs
        .values()
        .filter(|j| job_obs(j).state == JobState::Running)
        .collect();
    if running.is_empty() {
        return Ok(BTreeMap::new());
    }
    let selector = format!(
        "{},{LABEL_GENERATION}={}",
        render::build_selector(&build.name),
        build.generation
    );
    let all = apis
        .pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    let mut out = BTreeMap::new();
    for j in running {
        let uid = j.uid().unwrap_or_default();
        let own: Vec<&Pod> = all.iter().filter(|p| owned_by(p.meta(), &uid)).collect();
        let mut seen = pods::seen(&own);
        if seen.none {
            seen.create_failed = failed_create(&apis.events, j).await;
        }
        out.insert(j.name_any(), seen);
    }
    Ok(out)
}

/// The Job's last `FailedCreate` event's message. Events only explain: one that cannot be
/// read leaves the build waiting, as it would without them.
async fn failed_create(events: &Api<Event>, job: &Job) -> Option<String> {
    let uid = job.uid().unwrap_or_default();
    let lp = ListParams::default().fields(&format!("involvedObject.uid={uid},reason=FailedCreate"));
    match events.list(&lp).await {
        Ok(list) => pods::last_failed_create(&list.items),
        Err(e) => {
            warn!(job = %job.name_any(), "events: {e}");
            None
        }
    }
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

/// This generation's workspace claim: the one its prepare Job mounts, once that exists (what
/// every later Job must mount too); else its own name's, else a spare it took.
pub(super) fn workspace(
    ib: &ImageBuild,
    jobs: &BTreeMap<String, Job>,
    claims: BTreeMap<String, PersistentVolumeClaim>,
) -> Option<String> {
    let mounted = jobs
        .get(&render::job_name(ib, &Step::Prepare))
        .and_then(render::claim_of);
    mounted
        .into_iter()
        .chain([render::pvc_name(ib)])
        .find(|c| claims.contains_key(c))
        .or_else(|| claims.into_keys().next())
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
        pods: PodsSeen::default(),
    }
}

/// The result a finished Job's pod reported: its termination message, else its log. A pod
/// that died without one (killed, crashed) is described by its exit and last log line.
/// Also the node the pod ran on. Only the Job's own pods count (their ownerReference is the
/// Job's uid, and so is their controller-uid label): a pod someone else labelled like them is
/// no source of results (L4).
pub async fn pod_result(
    pods: &Api<Pod>,
    job: &Job,
    reason: Reason,
) -> Result<(Option<PodResult>, Option<String>), kube::Error> {
    let job_uid = job.uid().unwrap_or_default();
    let selector = format!("batch.kubernetes.io/controller-uid={job_uid}");
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    let Some(pod) = list
        .items
        .into_iter()
        .filter(|p| owned_by(p.meta(), &job_uid))
        .max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0))
    else {
        return Ok((None, None));
    };
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let (container, terminated) = pods::finished_container(&pod);
    // The kubelet keeps 4 KiB of it: more is not a message of ours.
    let message = terminated
        .as_ref()
        .and_then(|t| t.message.clone())
        .filter(|m| m.len() <= TERMINATION_LIMIT)
        .unwrap_or_default();
    if let Some(r) = PodResult::parse(&message).filter(|_| !PodResult::in_log(&message)) {
        return Ok((Some(r), node));
    }
    let params = LogParams {
        container,
        tail_lines: Some(2),
        limit_bytes: Some(LOG_LIMIT),
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
        // A pod that finished with a result longer than what is read of its log.
        Some(_) if log.len() as i64 >= LOG_LIMIT => Some(PodResult::Failed {
            reason,
            message: format!(
                "pod {}: its result is over the {} KiB the controller reads",
                pod.name_any(),
                LOG_LIMIT / 1024
            ),
        }),
        _ => None,
    };
    Ok((died, node))
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
