//! Where a build stands and what comes next, from what the controller observed of its Jobs:
//! pure logic, unit-tested without a cluster. The controller does the I/O around it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use slipway_contract::graph::BuildGraph;
use slipway_contract::result::PodResult;

use crate::api::{PushedImage, StageStatus};

pub const CONDITION: &str = "Succeeded";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Preparing,
    Building,
    Pushing,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Preparing => "Preparing",
            Phase::Building => "Building",
            Phase::Pushing => "Pushing",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
    pub fn finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
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
}

#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub prepare: Option<JobObs>,
    pub graph: Option<BuildGraph>,
    /// Stage Jobs by their position in the graph.
    pub stages: BTreeMap<usize, JobObs>,
    pub push: Option<JobObs>,
    /// The build ran past `spec.timeout`.
    pub timed_out: bool,
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
    /// `Succeeded` condition: status, reason, message.
    pub status: &'static str,
    pub reason: String,
    pub message: String,
    pub create: Vec<Create>,
    /// Delete the Jobs still running (the build failed).
    pub stop: bool,
    pub stages: Vec<StageStatus>,
    pub image: Option<PushedImage>,
}

impl Decision {
    fn new(phase: Phase, reason: &str, message: impl Into<String>) -> Self {
        Decision {
            phase,
            status: match phase {
                Phase::Succeeded => "True",
                Phase::Failed => "False",
                _ => "Unknown",
            },
            reason: reason.into(),
            message: message.into(),
            create: vec![],
            stop: phase == Phase::Failed,
            stages: vec![],
            image: None,
        }
    }
}

/// Why a failed Job failed: the build's deadline, else the reason its pod reported, else the
/// Job's own.
fn failure(obs: &JobObs, fallback: &str, what: &str, timeout: &str) -> Decision {
    match (&obs.result, &obs.state) {
        (_, JobState::Failed { deadline: true, .. }) => Decision::new(
            Phase::Failed,
            "Timeout",
            format!("{what} was stopped: the build did not finish within its timeout of {timeout}"),
        ),
        (Some(PodResult::Failed { reason, message }), _) => {
            Decision::new(Phase::Failed, reason.as_str(), message.clone())
        }
        (_, JobState::Failed { message, .. }) => {
            Decision::new(Phase::Failed, fallback, format!("{what} failed: {message}"))
        }
        _ => Decision::new(Phase::Failed, fallback, format!("{what} failed")),
    }
}

pub fn decide(observed: &Observed, max_parallel: usize, timeout: &str) -> Decision {
    let mut d = decide_phase(observed, max_parallel, timeout);
    d.stages = stage_statuses(observed);
    if observed.timed_out && !d.phase.finished() {
        let mut t = Decision::new(
            Phase::Failed,
            "Timeout",
            format!("the build did not finish within its timeout of {timeout}"),
        );
        t.stages = d.stages;
        return t;
    }
    d
}

fn decide_phase(o: &Observed, max_parallel: usize, timeout: &str) -> Decision {
    let Some(prep) = &o.prepare else {
        let mut d = Decision::new(Phase::Pending, "Pending", "creating the prepare Job");
        d.create.push(Create::Prepare);
        return d;
    };
    match prep.state {
        JobState::Running => {
            return Decision::new(
                Phase::Preparing,
                "Preparing",
                "fetching the source, planning, resolving base images",
            );
        }
        JobState::Failed { .. } => {
            return failure(prep, "SourceFailed", "the prepare step", timeout);
        }
        JobState::Succeeded => {}
    }
    let Some(graph) = &o.graph else {
        return Decision::new(
            Phase::Failed,
            "SourceFailed",
            "the prepare step finished without reporting the stage graph",
        );
    };
    let mut done: BTreeSet<usize> = BTreeSet::new();
    let mut running = 0;
    for (pos, j) in graph.jobs.iter().enumerate() {
        if let Some(obs) = o.stages.get(&pos) {
            match obs.state {
                JobState::Succeeded => done.extend(j.stages.iter().copied()),
                JobState::Running => running += 1,
                JobState::Failed { .. } => {
                    return failure(obs, "StageFailed", &format!("stage {}", j.label()), timeout);
                }
            }
        }
    }
    let all_done = graph
        .jobs
        .iter()
        .all(|j| j.stages.iter().all(|s| done.contains(s)));
    if !all_done {
        let mut d = Decision::new(Phase::Building, "Building", "");
        let room = max_parallel.max(1).saturating_sub(running);
        let started: BTreeSet<usize> = o.stages.keys().copied().collect();
        d.create.extend(
            graph
                .ready(&done, &started, room)
                .into_iter()
                .map(Create::Stage),
        );
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
            "{succeeded} of {} stage Jobs done; running: {}",
            graph.jobs.len(),
            busy.join(", ")
        );
        return d;
    }
    let Some(push) = &o.push else {
        let mut d = Decision::new(Phase::Pushing, "Pushing", "creating the push Job");
        d.create.push(Create::Push);
        return d;
    };
    match &push.state {
        JobState::Running => Decision::new(Phase::Pushing, "Pushing", "pushing the image"),
        JobState::Failed { .. } => failure(push, "PushFailed", "the push step", timeout),
        JobState::Succeeded => match &push.result {
            Some(PodResult::Pushed { digest, refs }) => {
                let reference = refs.first().cloned().unwrap_or_default();
                let mut d = Decision::new(
                    Phase::Succeeded,
                    "Pushed",
                    format!("pushed {reference}@{digest}"),
                );
                d.image = Some(PushedImage {
                    reference,
                    digest: digest.clone(),
                });
                d
            }
            _ => Decision::new(
                Phase::Failed,
                "PushFailed",
                "the push step finished without reporting a digest",
            ),
        },
    }
}

/// One entry per planned stage, in graph order.
fn stage_statuses(o: &Observed) -> Vec<StageStatus> {
    let Some(g) = &o.graph else { return vec![] };
    let mut out = Vec::new();
    for (pos, j) in g.jobs.iter().enumerate() {
        let obs = o.stages.get(&pos);
        for (k, index) in j.stages.iter().enumerate() {
            out.push(StageStatus {
                name: j.names.get(k).cloned().flatten(),
                index: *index as i32,
                phase: match obs.map(|s| &s.state) {
                    None => "Pending",
                    Some(JobState::Running) => "Running",
                    Some(JobState::Succeeded) => "Succeeded",
                    Some(JobState::Failed { .. }) => "Failed",
                }
                .into(),
                job: obs.map(|s| s.name.clone()),
                start_time: obs.and_then(|s| s.start.clone()),
                completion_time: obs.and_then(|s| s.completion.clone()),
            });
        }
    }
    out
}

/// The conditions with `new` set: lastTransitionTime moves only when the status changes.
pub fn set_condition(old: &[Condition], mut new: Condition) -> Vec<Condition> {
    let mut out: Vec<Condition> = old
        .iter()
        .filter(|c| c.type_ != new.type_)
        .cloned()
        .collect();
    if let Some(prev) = old.iter().find(|c| c.type_ == new.type_)
        && prev.status == new.status
    {
        new.last_transition_time = prev.last_transition_time.clone();
    }
    out.push(new);
    out
}

/// `30m`, `1h30m`, `90s`, `2h`: Go duration syntax, whole units.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
    }
    num.is_empty().then_some(total)
}

/// `1m23s` for the Duration column.
pub fn format_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_contract::graph::StageJob;
    use slipway_contract::result::Reason;

    fn sj(stages: &[usize], name: &str, needs: &[usize]) -> StageJob {
        StageJob {
            stages: stages.to_vec(),
            names: stages.iter().map(|_| Some(name.to_string())).collect(),
            needs: needs.to_vec(),
            image: Some("img@sha256:00".into()),
            secrets: vec![],
            cache_mounts: false,
        }
    }

    fn obs(state: JobState) -> JobObs {
        JobObs {
            name: "j".into(),
            state,
            start: None,
            completion: None,
            result: None,
        }
    }

    fn fanout() -> Observed {
        Observed {
            prepare: Some(obs(JobState::Succeeded)),
            graph: Some(BuildGraph {
                target: 4,
                jobs: vec![
                    sj(&[0], "a", &[]),
                    sj(&[1], "b", &[]),
                    sj(&[2], "c", &[]),
                    sj(&[3], "d", &[]),
                    sj(&[4], "final", &[0, 1, 2, 3]),
                ],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_build_creates_its_prepare_job() {
        let d = decide(&Observed::default(), 4, "1h");
        assert_eq!(d.phase, Phase::Pending);
        assert_eq!(d.create, vec![Create::Prepare]);
        assert_eq!(d.status, "Unknown");
    }

    #[test]
    fn independent_stages_start_together_up_to_the_limit() {
        let mut o = fanout();
        let d = decide(&o, 3, "1h");
        assert_eq!(d.phase, Phase::Building);
        assert_eq!(
            d.create,
            vec![Create::Stage(0), Create::Stage(1), Create::Stage(2)]
        );
        o.stages.insert(0, obs(JobState::Succeeded));
        o.stages.insert(1, obs(JobState::Running));
        o.stages.insert(2, obs(JobState::Running));
        assert_eq!(decide(&o, 3, "1h").create, vec![Create::Stage(3)]);
        o.stages.insert(3, obs(JobState::Succeeded));
        assert!(
            decide(&o, 3, "1h").create.is_empty(),
            "final waits for b, c"
        );
        o.stages.insert(1, obs(JobState::Succeeded));
        o.stages.insert(2, obs(JobState::Succeeded));
        assert_eq!(decide(&o, 3, "1h").create, vec![Create::Stage(4)]);
        o.stages.insert(4, obs(JobState::Succeeded));
        let d = decide(&o, 3, "1h");
        assert_eq!((d.phase, d.create), (Phase::Pushing, vec![Create::Push]));
        let mut p = obs(JobState::Succeeded);
        p.result = Some(PodResult::Pushed {
            digest: "sha256:ab".into(),
            refs: vec!["r/x:1".into()],
        });
        o.push = Some(p);
        let d = decide(&o, 3, "1h");
        assert_eq!((d.phase, d.status), (Phase::Succeeded, "True"));
        assert_eq!(d.image.map(|i| i.digest), Some("sha256:ab".to_string()));
        assert_eq!(d.stages.len(), 5);
    }

    #[test]
    fn a_failed_stage_fails_the_build_with_its_message_and_stops_the_rest() {
        let mut o = fanout();
        o.stages.insert(0, obs(JobState::Running));
        let mut f = obs(JobState::Failed {
            deadline: false,
            message: "BackoffLimitExceeded".into(),
        });
        f.result = Some(PodResult::Failed {
            reason: Reason::StageFailed,
            message: "stage \"b\" (#1): Dockerfile:4: RUN exit 3: exit code 3".into(),
        });
        o.stages.insert(1, f);
        let d = decide(&o, 4, "1h");
        assert_eq!((d.phase, d.status), (Phase::Failed, "False"));
        assert_eq!(d.reason, "StageFailed");
        assert!(d.message.contains("exit code 3"));
        assert!(d.stop && d.create.is_empty());
        assert_eq!(d.stages[1].phase, "Failed");
    }

    #[test]
    fn prepare_failures_keep_their_reason_and_deadlines_are_timeouts() {
        let mut o = Observed::default();
        let mut p = obs(JobState::Failed {
            deadline: false,
            message: "x".into(),
        });
        p.result = Some(PodResult::Failed {
            reason: Reason::InvalidDockerfile,
            message: "Dockerfile:3: unknown instruction: FORM".into(),
        });
        o.prepare = Some(p);
        assert_eq!(decide(&o, 1, "1h").reason, "InvalidDockerfile");
        o.prepare = Some(obs(JobState::Failed {
            deadline: true,
            message: "DeadlineExceeded".into(),
        }));
        assert_eq!(decide(&o, 1, "1h").reason, "Timeout");
        // A pod stopped by the deadline reports an exit of its own: the deadline wins.
        let mut p = obs(JobState::Failed {
            deadline: true,
            message: "DeadlineExceeded".into(),
        });
        p.result = Some(PodResult::Failed {
            reason: Reason::SourceFailed,
            message: "pod exited with 143".into(),
        });
        o.prepare = Some(p);
        let d = decide(&o, 1, "20s");
        assert_eq!(d.reason, "Timeout");
        assert!(d.message.contains("20s"), "{}", d.message);
        let mut o = fanout();
        o.stages.insert(0, obs(JobState::Running));
        o.timed_out = true;
        let d = decide(&o, 1, "10m");
        assert_eq!((d.phase, d.reason.as_str()), (Phase::Failed, "Timeout"));
        assert!(d.message.contains("10m") && d.stop);
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let c = |status: &str, t: i64, msg: &str| Condition {
            type_: CONDITION.into(),
            status: status.into(),
            reason: "R".into(),
            message: msg.into(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::from_second(t).expect("time")),
            observed_generation: Some(1),
        };
        let one = set_condition(&[], c("Unknown", 10, "a"));
        let two = set_condition(&one, c("Unknown", 20, "b"));
        assert_eq!(two.len(), 1);
        assert_eq!(two[0].last_transition_time.0.as_second(), 10);
        assert_eq!(two[0].message, "b");
        let three = set_condition(&two, c("True", 30, "c"));
        assert_eq!(three[0].last_transition_time.0.as_second(), 30);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("45s"), Some(45));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(format_duration(83), "1m23s");
        assert_eq!(format_duration(7), "7s");
    }
}
