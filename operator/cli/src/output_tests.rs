use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use slipway_api::{ImageBuildSpec, ImageBuildStatus, PushedImage, StageStatus};

const PLAIN: Style = Style { color: false };

fn build(phase: Option<Phase>, stages: &[(i32, Option<&str>, StagePhase)]) -> ImageBuild {
    let mut ib = ImageBuild::new(
        "go-x1",
        ImageBuildSpec {
            source: Default::default(),
            dockerfile: None,
            target: None,
            build_args: vec![],
            output: Default::default(),
            pull_secrets: vec![],
            workspace: None,
            resources: None,
            timeout: None,
            max_parallel_stages: None,
            rebuild: None,
            cancel: false,
            secrets: vec![],
            cache_volume: None,
            cache: None,
            source_date_epoch: None,
            ttl_seconds_after_finished: None,
        },
    );
    ib.metadata.namespace = Some("ci".into());
    ib.metadata.generation = Some(1);
    ib.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(1_000).expect("t")));
    ib.status = Some(ImageBuildStatus {
        phase,
        observed_generation: Some(1),
        stages: stages
            .iter()
            .map(|(i, n, p)| StageStatus {
                name: n.map(str::to_string),
                index: *i,
                phase: *p,
                job: None,
                start_time: None,
                completion_time: None,
                cached_layers: None,
            })
            .collect(),
        ..Default::default()
    });
    ib
}

fn failed() -> ImageBuild {
    let mut ib = build(
        Some(Phase::Failed),
        &[(0, Some("build"), StagePhase::Failed)],
    );
    let s = ib.status.as_mut().expect("status");
    s.duration = Some("41s".into());
    s.conditions.push(Condition {
        type_: "Succeeded".into(),
        status: "False".into(),
        reason: "StageFailed".into(),
        message: "stage \"build\" (#0): Dockerfile:2: RUN exit 3: exit code 3".into(),
        last_transition_time: Time(jiff::Timestamp::from_second(1_041).expect("t")),
        observed_generation: Some(1),
    });
    ib
}

fn pushed() -> ImageBuild {
    let mut ib = build(
        Some(Phase::Succeeded),
        &[
            (0, Some("builder"), StagePhase::Succeeded),
            (1, None, StagePhase::Succeeded),
        ],
    );
    let s = ib.status.as_mut().expect("status");
    s.duration = Some("1m23s".into());
    s.image = Some(PushedImage::new(
        "r:5000/demo/go:1".into(),
        format!("sha256:{}", "ab".repeat(32)),
    ));
    ib
}

#[test]
fn a_pushed_build_ends_with_ref_at_digest() {
    let s = Summary::of(&pushed(), jiff::Timestamp::from_second(1_200).expect("t"));
    let want = format!("r:5000/demo/go:1@sha256:{}", "ab".repeat(32));
    assert_eq!(s.result_line(PLAIN), want);
    assert_eq!(s.age.as_deref(), Some("3m"));
    assert_eq!(s.stages[1].name, "1");
    let v = serde_json::to_value(Change::Result(s)).expect("json");
    assert_eq!(v["event"], "result");
    assert_eq!(v["phase"], "Succeeded");
    assert_eq!(v["image"], want.as_str());
    assert!(v.get("reason").is_none());
}

#[test]
fn a_failed_build_says_its_reason_and_message() {
    let s = Summary::of(&failed(), jiff::Timestamp::from_second(1_100).expect("t"));
    assert_eq!(
        s.result_line(PLAIN),
        "error: build go-x1 failed: StageFailed: stage \"build\" (#0): Dockerfile:2: RUN exit 3: exit code 3"
    );
    assert_eq!(
        s.result_line(Style { color: true }),
        "\x1b[31merror:\x1b[0m build go-x1 failed: StageFailed: stage \"build\" (#0): Dockerfile:2: RUN exit 3: exit code 3"
    );
    let d = s.detail(PLAIN);
    assert!(
        d.contains("Phase:     Failed\nReason:    StageFailed\nMessage:   stage"),
        "{d}"
    );
    assert!(
        d.contains("Stages:\n  0   build                Failed"),
        "{d}"
    );
}

#[test]
fn finished_needs_the_current_generation() {
    assert_eq!(finished(&pushed()), Some(Phase::Succeeded));
    let mut old = pushed();
    old.metadata.generation = Some(2);
    assert_eq!(
        finished(&old),
        None,
        "the status is the previous generation's"
    );
    assert_eq!(finished(&build(Some(Phase::Building), &[])), None);
    assert_eq!(finished(&build(None, &[])), None);
}

#[test]
fn a_cancelled_build_says_its_reason() {
    let mut ib = build(
        Some(Phase::Cancelled),
        &[(0, Some("build"), StagePhase::Running)],
    );
    ib.status
        .as_mut()
        .expect("status")
        .conditions
        .push(Condition {
            type_: "Succeeded".into(),
            status: "False".into(),
            reason: "Cancelled".into(),
            message: "spec.cancel is set".into(),
            last_transition_time: Time(jiff::Timestamp::from_second(1_041).expect("t")),
            observed_generation: Some(1),
        });
    let s = Summary::of(&ib, jiff::Timestamp::from_second(1_100).expect("t"));
    assert_eq!(
        (s.reason.as_str(), s.message.as_str()),
        ("Cancelled", "spec.cancel is set")
    );
    assert_eq!(
        s.result_line(PLAIN),
        "error: build go-x1 failed: Cancelled: spec.cancel is set"
    );
    let v = serde_json::to_value(Change::Result(s)).expect("json");
    assert_eq!(
        (v["phase"].as_str(), v["reason"].as_str()),
        (Some("Cancelled"), Some("Cancelled"))
    );
}

#[test]
fn a_status_of_an_earlier_generation_is_stale() {
    assert!(!stale(&pushed()));
    let mut old = pushed();
    old.metadata.generation = Some(2);
    assert!(stale(&old), "rebuild requested, not yet seen");
    let mut fresh = build(None, &[]);
    fresh.status = None;
    assert!(!stale(&fresh), "no status yet: nothing stale to hide");
}

#[test]
fn rebuild_and_cancel_events() {
    let r = Change::Rebuild {
        name: "web".into(),
        namespace: "ci".into(),
        rebuild: 2,
        generation: 5,
    };
    assert_eq!(
        r.plain(PLAIN),
        "imagebuild/web in namespace ci: rebuild 2 requested (generation 5)"
    );
    assert_eq!(
        r.json(),
        r#"{"event":"rebuild","name":"web","namespace":"ci","rebuild":2,"generation":5}"#
    );
    let c = Change::Cancel {
        name: "web".into(),
        namespace: "ci".into(),
    };
    assert_eq!(
        c.plain(PLAIN),
        "imagebuild/web in namespace ci: cancel requested"
    );
    assert_eq!(
        c.json(),
        r#"{"event":"cancel","name":"web","namespace":"ci"}"#
    );
}

#[test]
fn the_list_is_a_table_like_kubectl_s() {
    let now = jiff::Timestamp::from_second(1_000 + 7200).expect("t");
    let rows = [
        Summary::of(&pushed(), now),
        Summary::of(&failed(), now),
        Summary::of(&build(None, &[]), now),
    ];
    assert_eq!(
        table(&rows, PLAIN),
        "NAME    PHASE       REASON        DIGEST         DURATION   AGE\n\
         go-x1   Succeeded   -             abababababab   1m23s      2h\n\
         go-x1   Failed      StageFailed   -              41s        2h\n\
         go-x1   -           -             -              -          2h"
    );
}

#[test]
fn changes_are_the_phase_and_the_stages_that_moved() {
    let a = build(
        Some(Phase::Building),
        &[
            (0, Some("base"), StagePhase::Running),
            (1, None, StagePhase::Pending),
        ],
    );
    let b = build(
        Some(Phase::Building),
        &[
            (0, Some("base"), StagePhase::Succeeded),
            (1, None, StagePhase::Running),
        ],
    );
    assert_eq!(
        changes(None, &a),
        [
            Change::Phase {
                phase: "Building".into()
            },
            Change::Stage {
                stage: "base".into(),
                phase: "Running".into()
            }
        ]
    );
    let lines: Vec<String> = changes(Some(&a), &b)
        .iter()
        .map(|c| c.plain(PLAIN))
        .collect();
    assert_eq!(lines, ["stage base Succeeded", "stage 1 Running"]);
    assert_eq!(
        Change::Stage {
            stage: "base".into(),
            phase: "Running".into()
        }
        .json(),
        r#"{"event":"stage","stage":"base","phase":"Running"}"#
    );
    assert!(changes(Some(&b), &b).is_empty());
}

#[test]
fn the_progress_line() {
    let a = build(
        Some(Phase::Building),
        &[
            (0, Some("base"), StagePhase::Succeeded),
            (1, None, StagePhase::Running),
            (2, Some("t"), StagePhase::Pending),
        ],
    );
    assert_eq!(
        progress(&a, 65, PLAIN, 80),
        "Building 1m05s  ✓ base  ▶ 1  · t"
    );
    assert_eq!(progress(&a, 65, PLAIN, 12), "Building 1…");
    assert_eq!(
        progress(&a, 65, Style { color: true }, 80),
        "\x1b[1mBuilding\x1b[0m \x1b[2m1m05s\x1b[0m  ✓ base  ▶ 1  · t"
    );
    assert_eq!(
        progress(&build(None, &[]), 3, PLAIN, 80),
        "Waiting for the controller 3s"
    );
}

#[test]
fn log_lines_are_coloured_by_stage_only_on_a_terminal() {
    let l = LogLine {
        prefix: "base".into(),
        text: "hello".into(),
        header: false,
    };
    assert_eq!(PLAIN.log_line(&l), "[base] hello");
    let c = Style { color: true }.log_line(&l);
    assert!(
        c.starts_with("\x1b[") && c.ends_with("[base]\x1b[0m hello"),
        "{c:?}"
    );
    let h = LogLine {
        prefix: "base".into(),
        text: "[base 1/2] FROM x".into(),
        header: true,
    };
    assert_eq!(PLAIN.log_line(&h), "[base 1/2] FROM x");
}

#[test]
fn ages_and_elapsed_times() {
    assert_eq!(age(5), "5s");
    assert_eq!(age(125), "2m");
    assert_eq!(age(3 * 3600 + 5), "3h");
    assert_eq!(age(2 * 86400), "2d");
    assert_eq!(age(-3), "0s");
    assert_eq!(elapsed(42), "42s");
    assert_eq!(elapsed(185), "3m05s");
}
