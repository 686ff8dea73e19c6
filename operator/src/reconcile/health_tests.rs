//! GitOps health of real statuses: every phase's status as [`next_status`] writes it, read
//! by kstatus' rules (what Flux's health checks run) and recorded in
//! `tests/health/statuses.json`, which tests/health/run.sh hands Argo CD's health script
//! (charts/slipway/argocd/health.lua) in a Lua interpreter. The file is regenerated with
//! `SLIPWAY_UPDATE_STATUSES=1 cargo test -p slipway-operator health`; a stale one fails here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use slipway_contract::result::Reason;

use super::decide::{BuildReason, Decision};
use super::fixtures;
use super::status::next_status;
use crate::api::{BaseImage, ImageBuildStatus, Phase, PushedImage, StagePhase, StageStatus};

const RECORDED: &str = "/../tests/health/statuses.json";

/// kstatus' verdict on an object (sigs.k8s.io/cli-utils/pkg/kstatus/status, `Compute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
}

/// kstatus' generic rules, in its order, for a custom resource (it has no rules of its own
/// for one): deletion, then `metadata.generation` against `status.observedGeneration` (only
/// when the latter is set), then the first condition that is `Reconciling=True` or
/// `Stalled=True`; anything else is Current. It never reads `Ready`.
fn kstatus(obj: &Value) -> KStatus {
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return KStatus::Terminating;
    }
    let observed = &obj["status"]["observedGeneration"];
    if !observed.is_null() && *observed != obj["metadata"]["generation"] {
        return KStatus::InProgress;
    }
    let conditions = obj["status"]["conditions"].as_array().cloned();
    for c in conditions.unwrap_or_default() {
        match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Reconciling"), Some("True")) => return KStatus::InProgress,
            (Some("Stalled"), Some("True")) => return KStatus::Failed,
            _ => {}
        }
    }
    KStatus::Current
}

fn at(t: i64) -> Time {
    Time(Timestamp::from_second(t).expect("time"))
}

fn decision(phase: Phase, reason: BuildReason, message: &str) -> Decision {
    Decision {
        running: Default::default(),
        cache: None,
        phase,
        reason,
        message: message.into(),
        create: vec![],
        stop: matches!(phase, Phase::Failed | Phase::Cancelled),
        stages: vec![],
        bases: vec![],
        image: None,
        revision: None,
        soon: false,
    }
}

fn stage(index: i32, phase: StagePhase) -> StageStatus {
    StageStatus {
        cached_layers: None,
        name: Some(["deps", "build", "runtime"][index as usize % 3].into()),
        index,
        phase,
        job: Some(format!("web-3-s{index}")),
        start_time: Some(at(1_700_000_010)),
        completion_time: (phase == StagePhase::Succeeded).then(|| at(1_700_000_070)),
    }
}

/// What the prepare step pinned, once it reported its graph.
fn bases() -> Vec<BaseImage> {
    let base = |name: &str, hex: &str, target| BaseImage {
        name: name.into(),
        digest: format!("sha256:{}", hex.repeat(32)),
        target,
    };
    vec![
        base("golang:1.22", "a1", false),
        base("gcr.io/distroless/static", "b2", true),
    ]
}

/// One recorded case: a name, the object, and what Argo CD and kstatus must say of it.
struct Case {
    name: &'static str,
    generation: i64,
    status: Option<ImageBuildStatus>,
    argo: &'static str,
    kstatus: KStatus,
}

/// The status of generation 3 (the fixture's) after `d`, reported over `old`.
fn status_after(old: &ImageBuildStatus, d: &Decision, now: i64) -> ImageBuildStatus {
    let mut b = fixtures::validated(&fixtures::build(), 1_700_000_000);
    b.same_generation = old.observed_generation == Some(b.generation);
    next_status(&b, old, d, at(now))
}

/// Every phase, as a build goes through them, and a spec changed after each end.
fn cases() -> Vec<Case> {
    let pending = status_after(
        &ImageBuildStatus::default(),
        &decision(
            Phase::Pending,
            BuildReason::Pending,
            "creating the prepare Job",
        ),
        1_700_000_000,
    );
    let preparing = status_after(
        &pending,
        &decision(
            Phase::Preparing,
            BuildReason::Preparing,
            "fetching the source and planning",
        ),
        1_700_000_005,
    );
    let mut d = decision(
        Phase::Building,
        BuildReason::Building,
        "running stage build",
    );
    d.stages = vec![
        stage(0, StagePhase::Succeeded),
        stage(1, StagePhase::Running),
        stage(2, StagePhase::Pending),
    ];
    d.bases = bases();
    let building = status_after(&preparing, &d, 1_700_000_040);
    let mut d = decision(Phase::Pushing, BuildReason::Pushing, "pushing the image");
    d.stages = (0..3).map(|i| stage(i, StagePhase::Succeeded)).collect();
    d.bases = bases();
    let pushing = status_after(&building, &d, 1_700_000_080);
    let digest = format!("sha256:{}", "3f9a".repeat(16));
    let reference = "reg:5000/team/web:1.0".to_string();
    let mut d = decision(
        Phase::Succeeded,
        BuildReason::Pushed,
        &format!("pushed {reference}@{digest}"),
    );
    d.stages = pushing.stages.clone();
    d.bases = bases();
    d.image = Some(PushedImage {
        size: Some(31_457_280),
        ..PushedImage::new(reference, digest)
    });
    d.revision = Some("9c1b".repeat(10));
    let succeeded = status_after(&pushing, &d, 1_700_000_083);
    let mut d = decision(
        Phase::Failed,
        Reason::StageFailed.into(),
        "stage \"build\" (#1): Dockerfile:5: RUN make: exit code 2",
    );
    d.stages = vec![
        stage(0, StagePhase::Succeeded),
        stage(1, StagePhase::Failed),
        stage(2, StagePhase::Pending),
    ];
    d.bases = bases();
    let failed = status_after(&building, &d, 1_700_000_050);
    let timed_out = status_after(
        &preparing,
        &decision(
            Phase::Failed,
            BuildReason::Timeout,
            "the build ran longer than its timeout 10m",
        ),
        1_700_000_600,
    );
    // spec.cancel set while building: a new generation, stopped at once.
    let cancelled = {
        let mut b = fixtures::validated(&fixtures::build(), 1_700_000_000);
        b.generation = 4;
        b.same_generation = false;
        let d = decision(
            Phase::Cancelled,
            BuildReason::Cancelled,
            super::decide::CANCELLED,
        );
        next_status(&b, &building, &d, at(1_700_000_045))
    };
    // A rebuild (spec.rebuild changed) of a build that succeeded: its digest is in the
    // history while generation 4 builds.
    let rebuilding = {
        let mut b = fixtures::validated(&fixtures::build(), 1_700_000_100);
        b.generation = 4;
        b.same_generation = false;
        let mut d = decision(
            Phase::Building,
            BuildReason::Building,
            "running stage build",
        );
        d.stages = vec![stage(0, StagePhase::Running)];
        d.bases = bases();
        next_status(&b, &succeeded, &d, at(1_700_000_140))
    };
    let case = |name, status: &ImageBuildStatus, argo, kstatus| Case {
        name,
        generation: 3,
        status: Some(status.clone()),
        argo,
        kstatus,
    };
    use KStatus::*;
    vec![
        // kstatus has nothing to go by before the controller's first status: it says Current.
        Case {
            name: "created",
            generation: 1,
            status: None,
            argo: "Progressing",
            kstatus: Current,
        },
        case("pending", &pending, "Progressing", InProgress),
        case("preparing", &preparing, "Progressing", InProgress),
        case("building", &building, "Progressing", InProgress),
        case("pushing", &pushing, "Progressing", InProgress),
        case("succeeded", &succeeded, "Healthy", Current),
        case("failed-stage", &failed, "Degraded", Failed),
        case("failed-timeout", &timed_out, "Degraded", Failed),
        // The spec changed after the build ended; the controller has not seen it yet.
        Case {
            generation: 4,
            ..case(
                "succeeded-spec-changed",
                &succeeded,
                "Progressing",
                InProgress,
            )
        },
        Case {
            generation: 4,
            ..case("failed-spec-changed", &failed, "Progressing", InProgress)
        },
        // Cancelled: stopped on purpose, final until the spec changes again. Argo CD's
        // Suspended (as for a suspended Job), kstatus' Failed (Stalled: it will not become
        // ready by itself; kstatus has no suspended state).
        Case {
            generation: 4,
            ..case("cancelled", &cancelled, "Suspended", Failed)
        },
        Case {
            generation: 5,
            ..case(
                "cancelled-spec-changed",
                &cancelled,
                "Progressing",
                InProgress,
            )
        },
        Case {
            generation: 4,
            ..case("rebuilding", &rebuilding, "Progressing", InProgress)
        },
    ]
}

/// A case as the recorded file holds it: the ImageBuild as the API server returns it.
fn record(c: &Case) -> Value {
    let mut ib = fixtures::build();
    ib.metadata.generation = Some(c.generation);
    ib.status = c.status.clone();
    json!({
        "name": c.name,
        "expect": {"argo": c.argo, "kstatus": format!("{:?}", c.kstatus)},
        "object": ib,
    })
}

fn recorded() -> String {
    let all: Vec<Value> = cases().iter().map(record).collect();
    let mut s = serde_json::to_string_pretty(&all).unwrap_or_default();
    s.push('\n');
    s
}

#[test]
fn kstatus_reads_every_phase_as_flux_should() {
    for c in cases() {
        assert_eq!(kstatus(&record(&c)["object"]), c.kstatus, "{}", c.name);
    }
}

#[test]
fn the_kstatus_mirror_can_say_each_verdict() {
    // The rules themselves, on hand-written objects, so a mirror that always answered the
    // same would fail.
    let obj = |generation: i64, conds: Value| {
        json!({"metadata": {"generation": generation},
               "status": {"observedGeneration": 2, "conditions": conds}})
    };
    let cond = |t: &str, s: &str| json!({"type": t, "status": s});
    assert_eq!(kstatus(&obj(2, json!([]))), KStatus::Current);
    assert_eq!(kstatus(&obj(3, json!([]))), KStatus::InProgress);
    let stalled = json!([cond("Ready", "False"), cond("Stalled", "True")]);
    assert_eq!(kstatus(&obj(2, stalled)), KStatus::Failed);
    let not_stalled = json!([cond("Stalled", "False"), cond("Ready", "False")]);
    assert_eq!(kstatus(&obj(2, not_stalled)), KStatus::Current);
    let reconciling = json!([cond("Reconciling", "True"), cond("Stalled", "True")]);
    assert_eq!(kstatus(&obj(2, reconciling)), KStatus::InProgress);
    let mut deleted = obj(2, json!([]));
    deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
    assert_eq!(kstatus(&deleted), KStatus::Terminating);
}

#[test]
fn ready_agrees_with_succeeded_in_every_case() {
    for c in cases() {
        let Some(s) = &c.status else { continue };
        let get = |t: &str| {
            s.conditions
                .iter()
                .find(|x| x.type_ == t)
                .map(|x| (x.status.as_str(), x.reason.as_str(), x.message.as_str()))
        };
        let (succeeded, reason, message) = get("Succeeded").expect("Succeeded");
        let (ready, ready_reason, ready_message) = get("Ready").expect("Ready");
        let want = if succeeded == "True" { "True" } else { "False" };
        assert_eq!(ready, want, "{}", c.name);
        assert_eq!(
            (ready_reason, ready_message),
            (reason, message),
            "{}",
            c.name
        );
        assert_eq!(
            s.conditions[0].type_, "Succeeded",
            "{}: listed first",
            c.name
        );
    }
}

#[test]
fn a_rebuild_and_a_cancel_keep_what_was_pushed_before() {
    let all = cases();
    let of = |name: &str| {
        all.iter()
            .find(|c| c.name == name)
            .and_then(|c| c.status.clone())
            .expect("case")
    };
    let pushed = of("succeeded").image.expect("image").digest;
    let rebuilding = of("rebuilding");
    assert_eq!(rebuilding.image, None);
    assert_eq!(
        rebuilding.history[0].digest.as_deref(),
        Some(pushed.as_str())
    );
    assert_eq!(rebuilding.history[0].generation, 3);
    let cancelled = of("cancelled");
    assert_eq!(cancelled.phase, Some(Phase::Cancelled));
    assert_eq!(cancelled.history[0].phase, Phase::Cancelled);
    assert!(cancelled.completion_time.is_some());
}

#[test]
fn the_recorded_statuses_are_the_operators_own() {
    let path = format!("{}{RECORDED}", env!("CARGO_MANIFEST_DIR"));
    let now = recorded();
    if std::env::var_os("SLIPWAY_UPDATE_STATUSES").is_some() {
        std::fs::write(&path, &now).expect("write the recorded statuses");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == now,
        "tests/health/statuses.json is out of date: run \
         `SLIPWAY_UPDATE_STATUSES=1 cargo test -p slipway-operator health`"
    );
}
