//! The decide step's rules for Jobs that make no progress (see [`pods`](super::pods)): a pod a
//! policy refuses, a Job waiting for its pod, an image the node cannot pull, pods evicted again
//! and again, and a graph too large to keep. Pure, as the decide step is.

use slipway_contract::graph::{BuildGraph, StageJob};
use slipway_contract::result::{PodResult, Reason};

use super::decide::{BuildReason, JobObs, JobState, Limits, Observed, decide};
use super::fixtures;
use super::pods::{MAX_DISRUPTIONS, PodsSeen};
use crate::api::Phase;

pub(super) fn limits(max_parallel: usize, timeout: &str) -> Limits {
    Limits {
        max_parallel,
        timeout: timeout.into(),
        timed_out: false,
        cancel: false,
    }
}

pub(super) fn obs(state: JobState) -> JobObs {
    JobObs {
        name: "j".into(),
        state,
        start: None,
        completion: None,
        result: None,
        pods: PodsSeen::default(),
    }
}

/// Four independent stages `a`..`d`, then `final` on them; prepare done.
fn fanout() -> Observed {
    let sj = |stage: usize, name: &str, needs: &[usize]| StageJob {
        stages: vec![stage],
        names: vec![Some(name.to_string())],
        needs: needs.to_vec(),
        image: Some("img@sha256:00".into()),
        ..Default::default()
    };
    Observed {
        prepare: Some(obs(JobState::Succeeded)),
        graph: Some(BuildGraph {
            cache: None,
            target: 4,
            jobs: vec![
                sj(0, "a", &[]),
                sj(1, "b", &[]),
                sj(2, "c", &[]),
                sj(3, "d", &[]),
                sj(4, "final", &[0, 1, 2, 3]),
            ],
            inputs: Some(fixtures::inputs()),
            source_time: None,
            source_revision: None,
        }),
        outputs: fixtures::outputs_of(0..5),
        ..Default::default()
    }
}

fn stuck_with(pods: PodsSeen) -> JobObs {
    JobObs {
        pods,
        ..obs(JobState::Running)
    }
}

const PSA: &str = "Error creating: pods \"web-1-s0-a-x7k2p\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)";

#[test]
fn a_pod_a_policy_refuses_fails_the_build_at_once() {
    let refused = PodsSeen {
        none: true,
        create_failed: Some(PSA.into()),
        ..Default::default()
    };
    let mut o = fanout();
    o.stages.insert(0, stuck_with(refused.clone()));
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(
        (d.phase, d.reason),
        (Phase::Failed, BuildReason::PodRejected)
    );
    assert_eq!(
        d.message,
        "stage \"a\": pod rejected: violates PodSecurity \"restricted:latest\": runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"
    );
    assert!(d.stop && !d.soon);
    let o = Observed {
        prepare: Some(stuck_with(refused)),
        ..Default::default()
    };
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(d.reason, BuildReason::PodRejected);
    assert!(
        d.message
            .starts_with("the prepare step: pod rejected: violates PodSecurity")
    );
}

#[test]
fn a_job_without_a_pod_is_looked_at_soon_and_a_quota_is_shown_while_it_waits() {
    let o = Observed {
        prepare: Some(stuck_with(PodsSeen {
            none: true,
            ..Default::default()
        })),
        ..Default::default()
    };
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(d.phase, Phase::Preparing);
    assert!(d.soon);
    let mut o = fanout();
    o.stages.insert(
        1,
        stuck_with(PodsSeen {
            none: true,
            create_failed: Some(
                "Error creating: pods \"p\" is forbidden: exceeded quota: q, requested: pods=1"
                    .into(),
            ),
            ..Default::default()
        }),
    );
    let d = decide(&o, &limits(1, "1h"));
    assert_eq!(d.phase, Phase::Building);
    assert!(d.soon && !d.stop);
    assert!(
        d.message
            .ends_with("; stage \"b\" has no pod yet: exceeded quota: q, requested: pods=1"),
        "{}",
        d.message
    );
    o.stages.insert(1, obs(JobState::Running));
    assert!(!decide(&o, &limits(1, "1h")).soon);
}

#[test]
fn a_pod_evicted_again_and_again_ends_the_build() {
    let lost = |n| PodsSeen {
        disrupted: n,
        last_disruption: Some("Evicted: The node was low on resource: ephemeral-storage.".into()),
        ..Default::default()
    };
    let mut o = fanout();
    o.stages.insert(2, stuck_with(lost(MAX_DISRUPTIONS - 1)));
    assert_eq!(decide(&o, &limits(4, "1h")).phase, Phase::Building);
    o.stages.insert(2, stuck_with(lost(MAX_DISRUPTIONS)));
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!((d.phase, d.reason.as_str()), (Phase::Failed, "Evicted"));
    assert_eq!(
        d.message,
        "stage \"c\": stopped after its pod was evicted or disrupted 3 times (the last: Evicted: The node was low on resource: ephemeral-storage.)"
    );
    assert!(d.stop);
    let mut o = fanout();
    for pos in 0..5 {
        o.stages.insert(pos, obs(JobState::Succeeded));
    }
    o.push = Some(stuck_with(lost(4)));
    let d = decide(&o, &limits(4, "1h"));
    assert!(
        d.message.starts_with("the push step: stopped after"),
        "{}",
        d.message
    );
}

#[test]
fn a_graph_too_large_to_keep_fails_with_the_prepare_steps_reason() {
    let mut p = obs(JobState::Succeeded);
    p.result = Some(PodResult::Failed {
        reason: Reason::SourceFailed,
        message: "pod x: its result is over the 64 KiB the controller reads".into(),
    });
    let o = Observed {
        prepare: Some(p),
        ..Default::default()
    };
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(d.reason, BuildReason::Pod(Reason::SourceFailed));
    assert!(d.message.contains("64 KiB"));
}

/// Later pods are given the digests of what they read (H1): a build whose prepare step or
/// a finished stage did not report them goes no further.
#[test]
fn a_step_that_reports_no_digests_ends_the_build() {
    let mut o = fanout();
    if let Some(g) = o.graph.as_mut() {
        g.inputs = None;
    }
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(
        (d.phase, d.reason.as_str()),
        (Phase::Failed, "SourceFailed")
    );
    assert_eq!(
        d.message,
        "the prepare step finished without reporting the digests of the files it wrote"
    );
    assert!(d.create.is_empty());
    let mut o = fanout();
    o.outputs.remove(&1);
    o.stages.insert(0, obs(JobState::Succeeded));
    o.stages.insert(1, obs(JobState::Succeeded));
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!((d.phase, d.reason.as_str()), (Phase::Failed, "StageFailed"));
    assert_eq!(
        d.message,
        "stage \"b\" finished without reporting the digests of the files it wrote"
    );
    assert!(d.create.is_empty() && d.stop);
}

#[test]
fn the_bases_the_graph_pinned_are_reported_until_the_end() {
    let mut o = fanout();
    if let Some(g) = o.graph.as_mut() {
        g.jobs[4].base = Some("busybox:1".into());
    }
    let d = decide(&o, &limits(4, "1h"));
    let bases: Vec<(&str, &str, bool)> = d
        .bases
        .iter()
        .map(|b| (b.name.as_str(), b.digest.as_str(), b.target))
        .collect();
    assert_eq!(bases, [("busybox:1", "sha256:00", true)]);
    // A build stopped at its timeout still says what it was built on.
    let mut late = limits(4, "1h");
    late.timed_out = true;
    let d = decide(&o, &late);
    assert_eq!((d.phase, d.bases.len()), (Phase::Failed, 1));
}

#[test]
fn a_cancelled_build_creates_nothing_and_stops_what_runs() {
    let cancel = Limits {
        cancel: true,
        ..limits(4, "1h")
    };
    // Cancelled before anything ran: no prepare Job.
    let d = decide(&Observed::default(), &cancel);
    assert_eq!(
        (d.phase, d.reason),
        (Phase::Cancelled, BuildReason::Cancelled)
    );
    assert!(d.create.is_empty() && d.stop);
    assert!(d.message.contains("spec.cancel"), "{}", d.message);
    // Cancelled while stages run (the same generation, as a restarted controller may find
    // it): nothing more starts, the running Jobs are stopped.
    let mut o = fanout();
    o.stages.insert(0, obs(JobState::Running));
    assert!(!decide(&o, &limits(4, "1h")).create.is_empty());
    let d = decide(&o, &cancel);
    assert_eq!(d.phase, Phase::Cancelled);
    assert!(d.create.is_empty() && d.stop);
    // Neither a timeout nor a finished push turns it into something else.
    let late = Limits {
        timed_out: true,
        ..cancel.clone()
    };
    assert_eq!(decide(&o, &late).reason, BuildReason::Cancelled);
    o.push = Some(JobObs {
        result: Some(PodResult::Pushed {
            awaited: Default::default(),
            cache: None,
            digest: "sha256:ab".into(),
            refs: vec!["r/x:1".into()],
            size: None,
        }),
        ..obs(JobState::Succeeded)
    });
    let d = decide(&o, &cancel);
    assert_eq!((d.phase, d.image), (Phase::Cancelled, None));
}

#[test]
fn the_commit_the_prepare_step_found_is_reported() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let mut o = fanout();
    if let Some(g) = o.graph.as_mut() {
        g.source_revision = Some(sha.into());
    }
    assert_eq!(decide(&o, &limits(4, "1h")).revision.as_deref(), Some(sha));
    // Something else in its place is not taken.
    if let Some(g) = o.graph.as_mut() {
        g.source_revision = Some("main; rm -rf /".into());
    }
    assert_eq!(decide(&o, &limits(4, "1h")).revision, None);
}

/// The fan-out with the layer cache: `a`, `b` and `c` restored by the prepare step, so the
/// graph's Jobs are `d` and `final` only.
fn cached_fanout() -> Observed {
    use slipway_contract::graph::{CachePlan, CachedStage, KeyKind};
    let mut o = fanout();
    let g = o.graph.as_mut().expect("graph");
    let cached = |index: usize, name: &str| CachedStage {
        index,
        name: Some(name.into()),
        outputs: fixtures::outputs_of([index])
            .remove(&index)
            .expect("outputs"),
        key: KeyKind::Fast,
        layers: 2,
        bytes: 1000,
        base: Some("img".into()),
        image: Some("img@sha256:00".into()),
    };
    g.jobs.drain(0..3);
    g.cache = Some(CachePlan {
        cached: vec![cached(0, "a"), cached(1, "b"), cached(2, "c")],
        misses: vec![3, 4],
        uncacheable: vec![],
        // `d` starts from a checkpoint: its layers from the cache are said as it runs.
        resumed: vec![slipway_contract::graph::ResumedStage {
            index: 3,
            steps: 2,
            layers: 1,
            bytes: 500,
        }],
    });
    // What observe seeds from the graph: the restored stages' digests.
    o.outputs = fixtures::outputs_of(0..3);
    o
}

#[test]
fn restored_stages_count_as_done_and_run_no_job() {
    use crate::api::StagePhase;
    let o = cached_fanout();
    let d = decide(&o, &limits(4, "1h"));
    // `d` is the only Job ready: `final` waits for it, not for the restored three.
    assert_eq!(d.create, vec![super::decide::Create::Stage(0)]);
    let phases: Vec<(i32, StagePhase, Option<i32>)> = d
        .stages
        .iter()
        .map(|s| (s.index, s.phase, s.cached_layers))
        .collect();
    assert_eq!(
        phases,
        vec![
            (0, StagePhase::Cached, Some(2)),
            (1, StagePhase::Cached, Some(2)),
            (2, StagePhase::Cached, Some(2)),
            (3, StagePhase::Pending, Some(1)),
            (4, StagePhase::Pending, None),
        ]
    );
    // The restored stages' base is still reported, though no Job starts from it.
    let bases: Vec<(String, String)> = d
        .bases
        .iter()
        .map(|b| (b.name.clone(), b.digest.clone()))
        .collect();
    assert_eq!(bases, vec![("img".to_string(), "sha256:00".to_string())]);
    let c = d.cache.expect("cache status");
    assert_eq!((c.hits, c.misses, c.bytes_reused), (3, 2, 3500));
    assert_eq!(c.stored, None);
}

#[test]
fn a_build_whose_stages_all_hit_goes_straight_to_the_push() {
    use slipway_contract::graph::{CachePlan, CachedStage, KeyKind};
    use slipway_contract::result::CacheWrite;
    let mut o = fanout();
    let g = o.graph.as_mut().expect("graph");
    g.jobs.clear();
    g.cache = Some(CachePlan {
        cached: (0..5)
            .map(|index| CachedStage {
                index,
                name: None,
                outputs: fixtures::outputs_of([index]).remove(&index).expect("o"),
                key: KeyKind::Fast,
                layers: 1,
                bytes: 10,
                base: None,
                image: None,
            })
            .collect(),
        ..Default::default()
    });
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(d.phase, Phase::Pushing);
    assert_eq!(d.create, vec![super::decide::Create::Push]);
    // The push step reports what it stored (nothing ran: nothing to store).
    let mut push = obs(JobState::Succeeded);
    push.result = Some(PodResult::Pushed {
        awaited: Default::default(),
        digest: "sha256:ab".into(),
        refs: vec!["r/x:1".into()],
        size: None,
        cache: Some(CacheWrite {
            stored: 0,
            failed: 1,
            warning: Some("stage #9: denied".into()),
        }),
    });
    o.push = Some(push);
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(d.phase, Phase::Succeeded);
    let c = d.cache.expect("cache status");
    assert_eq!((c.hits, c.misses, c.stored), (5, 0, Some(0)));
    assert_eq!(c.write_error.as_deref(), Some("stage #9: denied"));
}

#[test]
fn an_image_the_node_cannot_pull_ends_the_build_naming_it() {
    use super::pods::PullFailed;
    let failed = |container: &str| PodsSeen {
        pull_failed: Some(PullFailed {
            container: container.into(),
            image: "reg:5000/slim@sha256:ab".into(),
            why: "ImagePullBackOff: Back-off pulling image \"reg:5000/slim@sha256:ab\"".into(),
        }),
        ..Default::default()
    };
    let mut o = fanout();
    o.stages.insert(1, stuck_with(failed("stage")));
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(
        (d.phase, d.reason.as_str()),
        (Phase::Failed, "ImagePullFailed")
    );
    assert_eq!(
        d.message,
        "stage \"b\": the node cannot pull image reg:5000/slim@sha256:ab: ImagePullBackOff: Back-off pulling image \"reg:5000/slim@sha256:ab\""
    );
    assert!(d.stop);
    // Pulled ahead for a later stage: said so, since the stage named is not the one on it.
    o.stages.insert(1, stuck_with(failed("pull-ahead-0")));
    let d = decide(&o, &limits(4, "1h"));
    assert!(
        d.message
            .starts_with("stage \"b\": the node cannot pull image reg:5000/slim@sha256:ab (pulled ahead for a later stage): "),
        "{}",
        d.message
    );
    // The prepare and push steps' own image (the builder's).
    let o = Observed {
        prepare: Some(stuck_with(failed("fetch"))),
        ..Default::default()
    };
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(d.reason.as_str(), "ImagePullFailed");
    assert!(
        d.message
            .starts_with("the prepare step: the node cannot pull image "),
        "{}",
        d.message
    );
}
