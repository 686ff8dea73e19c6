//! The decide step's flow: prepare, stages in graph order up to the parallel limit, push,
//! failures and timeouts.
use super::*;
use crate::api::StagePhase;
use crate::reconcile::decide_tests::{limits, obs};
use crate::reconcile::fixtures;
use slipway_contract::graph::StageJob;

fn sj(stages: &[usize], name: &str, needs: &[usize]) -> StageJob {
    StageJob {
        stages: stages.to_vec(),
        names: stages.iter().map(|_| Some(name.to_string())).collect(),
        needs: needs.to_vec(),
        image: Some("img@sha256:00".into()),
        ..Default::default()
    }
}

fn fanout() -> Observed {
    Observed {
        prepare: Some(obs(JobState::Succeeded)),
        graph: Some(BuildGraph {
            cache: None,
            target: 4,
            jobs: vec![
                sj(&[0], "a", &[]),
                sj(&[1], "b", &[]),
                sj(&[2], "c", &[]),
                sj(&[3], "d", &[]),
                sj(&[4], "final", &[0, 1, 2, 3]),
            ],
            inputs: Some(fixtures::inputs()),
            source_time: None,
            source_revision: None,
        }),
        outputs: fixtures::outputs_of(0..5),
        ..Default::default()
    }
}

#[test]
fn a_new_build_creates_its_prepare_job() {
    let d = decide(&Observed::default(), &limits(4, "1h"));
    assert_eq!(d.phase, Phase::Pending);
    assert_eq!(d.create, vec![Create::Prepare]);
}

#[test]
fn independent_stages_start_together_up_to_the_limit() {
    let mut o = fanout();
    let d = decide(&o, &limits(3, "1h"));
    assert_eq!(d.phase, Phase::Building);
    assert_eq!(
        d.create,
        vec![Create::Stage(0), Create::Stage(1), Create::Stage(2)]
    );
    o.stages.insert(0, obs(JobState::Succeeded));
    o.stages.insert(1, obs(JobState::Running));
    o.stages.insert(2, obs(JobState::Running));
    assert_eq!(decide(&o, &limits(3, "1h")).create, vec![Create::Stage(3)]);
    o.stages.insert(3, obs(JobState::Succeeded));
    assert!(
        decide(&o, &limits(3, "1h")).create.is_empty(),
        "final waits for b, c"
    );
    o.stages.insert(1, obs(JobState::Succeeded));
    o.stages.insert(2, obs(JobState::Succeeded));
    assert_eq!(decide(&o, &limits(3, "1h")).create, vec![Create::Stage(4)]);
    o.stages.insert(4, obs(JobState::Succeeded));
    let d = decide(&o, &limits(3, "1h"));
    assert_eq!((d.phase, d.create), (Phase::Pushing, vec![Create::Push]));
    let mut p = obs(JobState::Succeeded);
    p.result = Some(PodResult::Pushed {
        awaited: Default::default(),
        cache: None,
        digest: "sha256:ab".into(),
        refs: vec!["r/x:1".into()],
        size: Some(4096),
    });
    o.push = Some(p);
    let d = decide(&o, &limits(3, "1h"));
    assert_eq!(d.phase, Phase::Succeeded);
    let image = d.image.expect("image");
    assert_eq!(
        (image.digest.as_str(), image.size),
        ("sha256:ab", Some(4096))
    );
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
    let d = decide(&o, &limits(4, "1h"));
    assert_eq!(d.phase, Phase::Failed);
    assert_eq!(d.reason.as_str(), "StageFailed");
    assert!(d.message.contains("exit code 3"));
    assert!(d.stop && d.create.is_empty());
    assert_eq!(d.stages[1].phase, StagePhase::Failed);
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
    assert_eq!(
        decide(&o, &limits(1, "1h")).reason,
        BuildReason::Pod(Reason::InvalidDockerfile)
    );
    o.prepare = Some(obs(JobState::Failed {
        deadline: true,
        message: "DeadlineExceeded".into(),
    }));
    assert_eq!(decide(&o, &limits(1, "1h")).reason, BuildReason::Timeout);
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
    let d = decide(&o, &limits(1, "20s"));
    assert_eq!(d.reason, BuildReason::Timeout);
    assert!(d.message.contains("20s"), "{}", d.message);
    let mut o = fanout();
    o.stages.insert(0, obs(JobState::Running));
    let timed_out = Limits {
        timed_out: true,
        ..limits(1, "10m")
    };
    let d = decide(&o, &timed_out);
    assert_eq!((d.phase, d.reason.as_str()), (Phase::Failed, "Timeout"));
    assert!(d.message.contains("10m") && d.stop);
}

#[test]
fn reasons_keep_their_wire_strings() {
    let all = [
        (BuildReason::Pod(Reason::SourceFailed), "SourceFailed"),
        (
            BuildReason::Pod(Reason::InvalidDockerfile),
            "InvalidDockerfile",
        ),
        (
            BuildReason::Pod(Reason::BaseImageNotFound),
            "BaseImageNotFound",
        ),
        (BuildReason::Pod(Reason::StageFailed), "StageFailed"),
        (BuildReason::Pod(Reason::PushFailed), "PushFailed"),
        (BuildReason::Timeout, "Timeout"),
        (BuildReason::PodRejected, "PodRejected"),
        (BuildReason::Evicted, "Evicted"),
        (BuildReason::ImagePullFailed, "ImagePullFailed"),
        (BuildReason::Invalid, "Invalid"),
        (BuildReason::Cancelled, "Cancelled"),
        (BuildReason::Pending, "Pending"),
        (BuildReason::Preparing, "Preparing"),
        (BuildReason::Building, "Building"),
        (BuildReason::Pushing, "Pushing"),
        (BuildReason::Pushed, "Pushed"),
    ];
    for (r, s) in all {
        assert_eq!(r.to_string(), s);
        assert_eq!(serde_json::to_value(r).ok(), Some(s.into()));
    }
}

fn on_node() -> JobObs {
    let mut o = obs(JobState::Running);
    o.pods.scheduled = true;
    o
}

#[test]
fn a_job_starts_beside_the_stages_it_needs_once_their_pods_are_on_the_node() {
    let mut o = fanout();
    for pos in 0..4 {
        o.stages.insert(pos, obs(JobState::Running));
    }
    o.outputs.clear();
    let d = decide(&o, &limits(8, "1h"));
    assert!(
        d.create.is_empty(),
        "not before every pod it needs is bound"
    );
    assert!(d.running.is_empty());
    o.stages.insert(0, obs(JobState::Succeeded));
    o.outputs = fixtures::outputs_of(0..1);
    for pos in 1..4 {
        o.stages.insert(pos, on_node());
    }
    let d = decide(&o, &limits(8, "1h"));
    assert_eq!(d.create, vec![Create::Stage(4)]);
    assert_eq!(d.running, BTreeSet::from([1, 2, 3]), "awaited, not given");
    assert_eq!(d.phase, Phase::Building);
    // The parallel limit counts the pods that wait.
    assert!(decide(&o, &limits(3, "1h")).create.is_empty());
}

#[test]
fn the_push_starts_beside_the_last_stages_and_the_build_ends_when_all_are_seen_done() {
    let mut o = fanout();
    o.outputs = fixtures::outputs_of(0..4);
    for pos in 0..4 {
        o.stages.insert(pos, obs(JobState::Succeeded));
    }
    o.stages.insert(4, obs(JobState::Running));
    let d = decide(&o, &limits(8, "1h"));
    assert!(
        d.create.is_empty(),
        "the last stage's pod is not on the node yet"
    );
    o.stages.insert(4, on_node());
    let d = decide(&o, &limits(8, "1h"));
    assert_eq!(
        (d.phase, d.create.clone()),
        (Phase::Building, vec![Create::Push])
    );
    assert_eq!(d.running, BTreeSet::from([4]));
    // Pushed before the last stage's end was seen: not done until it is.
    let mut p = obs(JobState::Succeeded);
    p.result = Some(PodResult::Pushed {
        awaited: fixtures::outputs_of(4..5),
        cache: None,
        digest: "sha256:ab".into(),
        refs: vec!["r/x:1".into()],
        size: None,
    });
    o.push = Some(p);
    let d = decide(&o, &limits(8, "1h"));
    assert_eq!(d.phase, Phase::Building);
    assert!(d.create.is_empty());
    o.stages.insert(4, obs(JobState::Succeeded));
    o.outputs = fixtures::outputs_of(0..5);
    assert_eq!(decide(&o, &limits(8, "1h")).phase, Phase::Succeeded);
    // A push that fails while the last stage runs fails the build at once.
    o.stages.insert(4, on_node());
    o.outputs = fixtures::outputs_of(0..4);
    let mut p = obs(JobState::Failed {
        deadline: false,
        message: "BackoffLimitExceeded".into(),
    });
    p.result = Some(PodResult::Failed {
        reason: Reason::PushFailed,
        message: "stages/4/outputs.json: a symlink (not followed)".into(),
    });
    o.push = Some(p);
    let d = decide(&o, &limits(8, "1h"));
    assert_eq!((d.phase, d.reason.as_str()), (Phase::Failed, "PushFailed"));
    assert!(
        d.message.contains("outputs.json") && d.stop,
        "{}",
        d.message
    );
}
