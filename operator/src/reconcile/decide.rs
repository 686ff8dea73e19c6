//! The decide step: where a build stands and what comes next, from what [`observe`](super::observe)
//! found of its Jobs and the limits [`validate`](super::validate) read from the spec. Pure
//! logic, unit-tested without a cluster; the steps around it do the I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Serialize, Serializer};
use slipway_contract::graph::BuildGraph;
use slipway_contract::result::{PodResult, Reason};
use slipway_contract::trust::Outputs;

use super::bases::base_images;
use super::pods::{self, Blocked, MAX_DISRUPTIONS, PodsSeen};
use super::render::pull_ahead;
use super::stage_status::{cache_status, stage_statuses};
use crate::api::{BaseImage, CacheStatus, Phase, PushedImage, StageStatus};

/// The `Succeeded` condition's reason: a build pod's own, or one of the controller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildReason {
    /// A failure a build pod reported, or the step's own when its pod said nothing.
    Pod(Reason),
    /// The build ran past `spec.timeout`.
    Timeout,
    /// A Pod Security level or an admission policy refused a build pod.
    PodRejected,
    /// A build pod was lost to disruptions (evictions) too many times.
    Evicted,
    /// The node cannot pull one of a build pod's images.
    ImagePullFailed,
    /// The API server refused an object of the build (its spec, say).
    Invalid,
    /// `spec.cancel` stopped the build.
    Cancelled,
    Pending,
    Preparing,
    Building,
    Pushing,
    Pushed,
}

impl BuildReason {
    /// The wire string, as the condition, events and metrics carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildReason::Pod(r) => r.as_str(),
            BuildReason::Timeout => "Timeout",
            BuildReason::PodRejected => "PodRejected",
            BuildReason::Evicted => "Evicted",
            BuildReason::ImagePullFailed => "ImagePullFailed",
            BuildReason::Invalid => "Invalid",
            BuildReason::Cancelled => "Cancelled",
            BuildReason::Pending => "Pending",
            BuildReason::Preparing => "Preparing",
            BuildReason::Building => "Building",
            BuildReason::Pushing => "Pushing",
            BuildReason::Pushed => "Pushed",
        }
    }
}

impl fmt::Display for BuildReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for BuildReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl From<Reason> for BuildReason {
    fn from(r: Reason) -> Self {
        BuildReason::Pod(r)
    }
}

/// What [`validate`](super::validate) read from the spec that the decision depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// At most this many stage Jobs at once.
    pub max_parallel: usize,
    /// `spec.timeout` as written, for messages.
    pub timeout: String,
    /// The build ran past its timeout.
    pub timed_out: bool,
    /// `spec.cancel`: no Job runs.
    pub cancel: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Running,
    Succeeded,
    /// `deadline`: the Job ran out of `activeDeadlineSeconds`.
    Failed {
        deadline: bool,
        message: String,
    },
}

/// One Job as observed, with its pod's result once it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct JobObs {
    pub name: String,
    pub state: JobState,
    pub start: Option<Time>,
    pub completion: Option<Time>,
    pub result: Option<PodResult>,
    /// What its pods say, while it runs.
    pub pods: PodsSeen,
}

#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub prepare: Option<JobObs>,
    pub graph: Option<BuildGraph>,
    /// Stage Jobs by their position in the graph.
    pub stages: BTreeMap<usize, JobObs>,
    /// The digests of what each finished stage wrote, by stage index: what later pods are
    /// given to check what they read of it.
    pub outputs: BTreeMap<usize, Outputs>,
    pub push: Option<JobObs>,
}

/// A Job to create next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Create {
    Prepare,
    Stage(usize),
    Push,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub phase: Phase,
    /// The conditions' reason and message ([`conditions`](super::conditions) derives their
    /// status from the phase).
    pub reason: BuildReason,
    pub message: String,
    pub create: Vec<Create>,
    /// Delete the Jobs still running (the build failed).
    pub stop: bool,
    pub stages: Vec<StageStatus>,
    /// The base images the prepare step pinned, once it reported its graph.
    pub bases: Vec<BaseImage>,
    pub image: Option<PushedImage>,
    /// The git commit the prepare step checked out, once it reported its graph.
    pub revision: Option<String>,
    /// What the layer cache did, once the prepare step reported it (and the push step what
    /// it stored).
    pub cache: Option<CacheStatus>,
    /// A running Job has no pod yet: look again soon (its `FailedCreate` events do not wake
    /// the controller).
    pub soon: bool,
    /// Stages of Jobs whose pods are on the node and not done: the Jobs created now await
    /// their outputs in the workspace (`--await-outputs`).
    pub running: BTreeSet<usize>,
}

impl Decision {
    fn new(phase: Phase, reason: BuildReason, message: impl Into<String>) -> Self {
        Decision {
            phase,
            reason,
            message: message.into(),
            create: vec![],
            stop: matches!(phase, Phase::Failed | Phase::Cancelled),
            stages: vec![],
            bases: vec![],
            image: None,
            revision: None,
            cache: None,
            soon: false,
            running: BTreeSet::new(),
        }
    }

    /// The build failed for `reason` outside the Jobs' own results (an object the API
    /// server refused); the stages as they stand.
    pub fn failed(&self, reason: BuildReason, message: String) -> Decision {
        Decision {
            stages: self.stages.clone(),
            bases: self.bases.clone(),
            revision: self.revision.clone(),
            cache: self.cache.clone(),
            ..Decision::new(Phase::Failed, reason, message)
        }
    }

    /// This decision, with `message` saying what the build waits for.
    pub fn waiting(&self, message: String) -> Decision {
        Decision {
            message,
            ..self.clone()
        }
    }
}

/// A running Job that cannot go on: its pod is refused by a policy, the node cannot pull one
/// of its images, or it lost too many to disruptions. `what` names the step (`stage "x"`).
fn stuck(obs: &JobObs, what: &str) -> Option<Decision> {
    if obs.state != JobState::Running {
        return None;
    }
    if let Some(Blocked::Rejected(why)) = obs.pods.create_failed.as_deref().map(pods::blocked) {
        return Some(Decision::new(
            Phase::Failed,
            BuildReason::PodRejected,
            format!("{what}: pod rejected: {why}"),
        ));
    }
    if let Some(f) = &obs.pods.pull_failed {
        let ahead = if pull_ahead::is_pull_ahead(&f.container) {
            " (pulled ahead for a later stage)"
        } else {
            ""
        };
        return Some(Decision::new(
            Phase::Failed,
            BuildReason::ImagePullFailed,
            format!(
                "{what}: the node cannot pull image {}{ahead}: {}",
                f.image, f.why
            ),
        ));
    }
    let n = obs.pods.disrupted;
    (n >= MAX_DISRUPTIONS).then(|| {
        let last = obs.pods.last_disruption.as_deref().unwrap_or("disrupted");
        Decision::new(
            Phase::Failed,
            BuildReason::Evicted,
            format!("{what}: stopped after its pod was evicted or disrupted {n} times (the last: {last})"),
        )
    })
}

/// Why a running Job has no pod yet, when the Job controller said (a quota, say).
fn waiting(obs: &JobObs) -> Option<String> {
    match obs.pods.create_failed.as_deref().map(pods::blocked) {
        Some(Blocked::Waiting(why)) if obs.state == JobState::Running => Some(why),
        _ => None,
    }
}

/// Why a failed Job failed: the build's deadline, else the reason its pod reported, else the
/// Job's own.
fn failure(obs: &JobObs, fallback: Reason, what: &str, timeout: &str) -> Decision {
    match (&obs.result, &obs.state) {
        (_, JobState::Failed { deadline: true, .. }) => Decision::new(
            Phase::Failed,
            BuildReason::Timeout,
            format!("{what} was stopped: the build did not finish within its timeout of {timeout}"),
        ),
        (Some(PodResult::Failed { reason, message }), _) => {
            Decision::new(Phase::Failed, (*reason).into(), message.clone())
        }
        (_, JobState::Failed { message, .. }) => Decision::new(
            Phase::Failed,
            fallback.into(),
            format!("{what} failed: {message}"),
        ),
        _ => Decision::new(Phase::Failed, fallback.into(), format!("{what} failed")),
    }
}

/// The message of a cancelled build.
pub const CANCELLED: &str =
    "cancelled by spec.cancel: its Jobs were stopped and none starts while it is set";

pub fn decide(observed: &Observed, limits: &Limits) -> Decision {
    let timeout = limits.timeout.as_str();
    let mut d = if limits.cancel {
        // Final: nothing is created, and whatever runs is stopped (setting spec.cancel makes a
        // new generation: the Jobs it stops are the superseded ones apply removes).
        Decision::new(Phase::Cancelled, BuildReason::Cancelled, CANCELLED)
    } else {
        decide_phase(observed, limits.max_parallel, timeout)
    };
    d.stages = stage_statuses(observed);
    d.cache = cache_status(observed);
    d.bases = observed.graph.as_ref().map(base_images).unwrap_or_default();
    d.revision = observed
        .graph
        .as_ref()
        .and_then(|g| g.revision())
        .map(str::to_string);
    d.soon = !d.phase.finished()
        && observed
            .prepare
            .iter()
            .chain(observed.stages.values())
            .chain(&observed.push)
            .any(|j| j.state == JobState::Running && j.pods.none);
    if limits.timed_out && !d.phase.finished() {
        let mut t = Decision::new(
            Phase::Failed,
            BuildReason::Timeout,
            format!("the build did not finish within its timeout of {timeout}"),
        );
        t.stages = d.stages;
        t.bases = d.bases;
        t.revision = d.revision;
        t.cache = d.cache;
        return t;
    }
    d
}

fn decide_phase(o: &Observed, max_parallel: usize, timeout: &str) -> Decision {
    let Some(prep) = &o.prepare else {
        let mut d = Decision::new(
            Phase::Pending,
            BuildReason::Pending,
            "creating the prepare Job",
        );
        d.create.push(Create::Prepare);
        return d;
    };
    match prep.state {
        JobState::Running => {
            let what = "the prepare step";
            if let Some(d) = stuck(prep, what) {
                return d;
            }
            let message = match waiting(prep) {
                Some(why) => format!("{what} has no pod yet: {why}"),
                None => "fetching the source, planning, resolving base images".into(),
            };
            return Decision::new(Phase::Preparing, BuildReason::Preparing, message);
        }
        JobState::Failed { .. } => {
            return failure(prep, Reason::SourceFailed, "the prepare step", timeout);
        }
        JobState::Succeeded => {}
    }
    let Some(graph) = &o.graph else {
        // Its result was not a graph it could keep (over the size the controller reads).
        if let Some(PodResult::Failed { reason, message }) = &prep.result {
            return Decision::new(Phase::Failed, (*reason).into(), message.clone());
        }
        return Decision::new(
            Phase::Failed,
            Reason::SourceFailed.into(),
            "the prepare step finished without reporting the stage graph",
        );
    };
    if graph.inputs.is_none() {
        // Later pods would have nothing to check the workspace against.
        return Decision::new(
            Phase::Failed,
            Reason::SourceFailed.into(),
            "the prepare step finished without reporting the digests of the files it wrote",
        );
    }
    // Restored from the layer cache: done before anything runs.
    let mut done: BTreeSet<usize> = graph.cached_stages().map(|c| c.index).collect();
    let mut running = 0;
    // Stages whose pods are on the node: a Job that needs them starts beside them and takes
    // their outputs the moment they are written, not a pod start after they end.
    let mut on_node = BTreeSet::new();
    let mut no_pod = None;
    for (pos, j) in graph.jobs.iter().enumerate() {
        if let Some(obs) = o.stages.get(&pos) {
            match obs.state {
                JobState::Succeeded if j.stages.iter().all(|s| o.outputs.contains_key(s)) => {
                    done.extend(j.stages.iter().copied())
                }
                JobState::Succeeded => {
                    return Decision::new(
                        Phase::Failed,
                        Reason::StageFailed.into(),
                        format!(
                            "stage \"{}\" finished without reporting the digests of the files it wrote",
                            j.label()
                        ),
                    );
                }
                JobState::Running => {
                    let what = format!("stage \"{}\"", j.label());
                    if let Some(d) = stuck(obs, &what) {
                        return d;
                    }
                    if let Some(why) = waiting(obs) {
                        no_pod.get_or_insert(format!("; {what} has no pod yet: {why}"));
                    }
                    if obs.pods.scheduled {
                        on_node.extend(j.stages.iter().copied());
                    }
                    running += 1;
                }
                JobState::Failed { .. } => {
                    return failure(
                        obs,
                        Reason::StageFailed,
                        &format!("stage {}", j.label()),
                        timeout,
                    );
                }
            }
        }
    }
    let all_done = graph
        .jobs
        .iter()
        .all(|j| j.stages.iter().all(|s| done.contains(s)));
    if !all_done {
        let mut d = Decision::new(Phase::Building, BuildReason::Building, "");
        let room = max_parallel.max(1).saturating_sub(running);
        let started: BTreeSet<usize> = o.stages.keys().copied().collect();
        let available: BTreeSet<usize> = done.union(&on_node).copied().collect();
        d.create.extend(
            graph
                .ready(&available, &started, room)
                .into_iter()
                .map(Create::Stage),
        );
        // The push, too, starts beside the last stages and awaits them; the build is done
        // once every stage Job has been seen to finish and to agree with it (observe).
        let all_on_node = graph
            .jobs
            .iter()
            .all(|j| j.stages.iter().all(|s| available.contains(s)));
        match &o.push {
            None if all_on_node => d.create.push(Create::Push),
            Some(p) if matches!(p.state, JobState::Failed { .. }) => {
                return failure(p, Reason::PushFailed, "the push step", timeout);
            }
            _ => {}
        }
        d.running = on_node;
        let busy: Vec<String> = graph
            .jobs
            .iter()
            .enumerate()
            .filter(|(pos, _)| {
                o.stages
                    .get(pos)
                    .is_some_and(|s| s.state == JobState::Running)
                    || d.create.contains(&Create::Stage(*pos))
            })
            .map(|(_, j)| j.label())
            .collect();
        let succeeded = o
            .stages
            .values()
            .filter(|s| s.state == JobState::Succeeded)
            .count();
        d.message = format!(
            "{succeeded} of {} stage Jobs done; running: {}{}",
            graph.jobs.len(),
            busy.join(", "),
            no_pod.unwrap_or_default()
        );
        return d;
    }
    let Some(push) = &o.push else {
        let mut d = Decision::new(
            Phase::Pushing,
            BuildReason::Pushing,
            "creating the push Job",
        );
        d.create.push(Create::Push);
        return d;
    };
    match &push.state {
        JobState::Running => {
            let what = "the push step";
            if let Some(d) = stuck(push, what) {
                return d;
            }
            let message = match waiting(push) {
                Some(why) => format!("{what} has no pod yet: {why}"),
                None => "pushing the image".into(),
            };
            Decision::new(Phase::Pushing, BuildReason::Pushing, message)
        }
        JobState::Failed { .. } => failure(push, Reason::PushFailed, "the push step", timeout),
        JobState::Succeeded => match &push.result {
            Some(PodResult::Pushed {
                digest, refs, size, ..
            }) => {
                let reference = refs.first().cloned().unwrap_or_default();
                let mut d = Decision::new(
                    Phase::Succeeded,
                    BuildReason::Pushed,
                    format!("pushed {reference}@{digest}"),
                );
                d.image = Some(PushedImage {
                    size: size.and_then(|n| i64::try_from(n).ok()),
                    ..PushedImage::new(reference, digest.clone())
                });
                d
            }
            _ => Decision::new(
                Phase::Failed,
                Reason::PushFailed.into(),
                "the push step finished without reporting a digest",
            ),
        },
    }
}

#[cfg(test)]
#[path = "decide_flow_tests.rs"]
mod tests;
