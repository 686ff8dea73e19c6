//! The status step: what the build reports after a decision. The next status (phase, the
//! [`conditions`](super::conditions), times, stages, image, bases), the events for what
//! changed since the last status (phase and stage transitions), the metrics of builds and
//! stages that just finished, and the status patch (only when it changed). The first three
//! are pure and unit-tested.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::Resource;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use super::conditions::{Outcome, conditions};
use super::context::{Apis, Ctx, Error};
use super::decide::Decision;
use super::text::{MESSAGE_LIMIT, bounded};
use super::validate::Build;
use crate::api::{BuildRecord, ImageBuild, ImageBuildStatus, Phase, StagePhase};
use crate::metrics::Metrics;

/// Reports the decision: events, metrics, then the status patch.
pub async fn report(
    ctx: &Ctx,
    apis: &Apis,
    ib: &ImageBuild,
    build: &Build,
    d: &Decision,
) -> Result<(), Error> {
    let old = ib.status.clone().unwrap_or_default();
    let status = next_status(build, &old, d, Time(k8s_openapi::jiff::Timestamp::now()));
    let reference = ib.object_ref(&());
    for ev in events(build, &old, &status, d) {
        if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
            warn!(build = %build.key(), "event: {e}");
        }
    }
    record_metrics(&ctx.metrics, build, &old, &status, d);
    patch(&apis.builds, &build.name, &old, &status)
        .await
        .map_err(Error::Status)?;
    if d.phase.finished() {
        ctx.ended.record(ib);
        info!(build = %build.key(), phase = d.phase.as_str(), reason = %d.reason, "build finished");
    }
    Ok(())
}

/// Writes `new` when it differs from `old`.
async fn patch(
    builds: &Api<ImageBuild>,
    name: &str,
    old: &ImageBuildStatus,
    new: &ImageBuildStatus,
) -> Result<(), kube::Error> {
    if serde_json::to_value(new).ok() == serde_json::to_value(old).ok() {
        return Ok(());
    }
    let mut value = serde_json::to_value(new).unwrap_or_default();
    // A new generation clears what the previous one reported.
    if let Some(obj) = value.as_object_mut() {
        for k in [
            "image",
            "completionTime",
            "duration",
            "stages",
            "baseImages",
            "sourceRevision",
            "cache",
        ] {
            obj.entry(k).or_insert(serde_json::Value::Null);
        }
    }
    builds
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": value })),
        )
        .await?;
    Ok(())
}

/// The status after decision `d`, at `now`.
pub fn next_status(
    build: &Build,
    old: &ImageBuildStatus,
    d: &Decision,
    now: Time,
) -> ImageBuildStatus {
    let same = build.same_generation;
    let old_conditions: &[_] = if same { &old.conditions } else { &[] };
    // A pod's message may be megabytes (a RUN line): the patch must not be refused.
    let message = bounded(&d.message, MESSAGE_LIMIT);
    let outcome = Outcome {
        phase: d.phase,
        reason: d.reason.as_str(),
        message: &message,
        generation: build.generation,
    };
    let conditions = conditions(old_conditions, outcome, &now);
    let completion = d
        .phase
        .finished()
        .then(|| old.completion_time.clone().filter(|_| same).unwrap_or(now));
    let duration = completion
        .as_ref()
        .map(|c| format_duration(c.0.as_second() - build.start.0.as_second()));
    let mut status = ImageBuildStatus {
        phase: Some(d.phase),
        conditions,
        observed_generation: Some(build.generation),
        start_time: Some(build.start.clone()),
        completion_time: completion,
        duration,
        stages: d.stages.clone(),
        image: d.image.clone(),
        base_images: d.bases.clone(),
        source_revision: d.revision.clone(),
        history: vec![],
        cache: d.cache.clone(),
    };
    status.history = history(old, &status, d.reason.as_str());
    status
}

/// How many ended builds `status.history` keeps (kpack keeps 10 of each kind).
pub const HISTORY_LIMIT: usize = 10;

/// What `status` says of its build, once it ended.
fn record(status: &ImageBuildStatus, reason: &str) -> Option<BuildRecord> {
    let phase = status.phase.filter(|p| p.finished())?;
    Some(BuildRecord {
        generation: status.observed_generation?,
        phase,
        reason: reason.into(),
        digest: status.image.as_ref().map(|i| i.digest.clone()),
        source_revision: status.source_revision.clone(),
        start_time: status.start_time.clone(),
        completion_time: status.completion_time.clone(),
    })
}

/// `status.history` after `new`: its build first once it ended (in place of an entry of its
/// generation already there), then the earlier ones, newest first, at most [`HISTORY_LIMIT`].
/// A status written before there was a history has its ended build kept when a new
/// generation replaces it.
pub fn history(old: &ImageBuildStatus, new: &ImageBuildStatus, reason: &str) -> Vec<BuildRecord> {
    let mut out = old.history.clone();
    let known = |out: &[BuildRecord], g: Option<i64>| out.iter().any(|r| Some(r.generation) == g);
    if old.observed_generation != new.observed_generation && !known(&out, old.observed_generation) {
        let old_reason = old
            .conditions
            .iter()
            .find(|c| c.type_ == super::conditions::Kind::Succeeded.as_str())
            .map_or("", |c| c.reason.as_str());
        if let Some(r) = record(old, old_reason) {
            out.insert(0, r);
        }
    }
    if let Some(r) = record(new, reason) {
        out.retain(|e| e.generation != r.generation);
        out.insert(0, r);
    }
    out.truncate(HISTORY_LIMIT);
    out
}

/// The events for what changed from `old` to `new`: the phase, then each stage.
pub fn events(
    build: &Build,
    old: &ImageBuildStatus,
    new: &ImageBuildStatus,
    d: &Decision,
) -> Vec<Event> {
    let mut events = Vec::new();
    let same = build.same_generation;
    let old_phase = old.phase.filter(|_| same);
    if old_phase != new.phase {
        let (type_, reason, note) = match d.phase {
            Phase::Pending => (
                EventType::Normal,
                "Started",
                format!("generation {}", new.observed_generation.unwrap_or(1)),
            ),
            Phase::Failed => (
                EventType::Warning,
                "Failed",
                format!("{}: {}", d.reason, d.message),
            ),
            Phase::Succeeded => (EventType::Normal, "Pushed", d.message.clone()),
            Phase::Cancelled => (EventType::Normal, "Cancelled", d.message.clone()),
            p => (EventType::Normal, p.as_str(), d.message.clone()),
        };
        events.push((type_, reason.to_string(), note));
    }
    let old_cache = old.cache.as_ref().filter(|_| same);
    if let (None, Some(c)) = (old_cache, &new.cache) {
        events.push((
            EventType::Normal,
            "Cache".to_string(),
            format!(
                "layer cache: {} stages restored, {} to run, {} not cacheable, {} bytes reused",
                c.hits, c.misses, c.not_cacheable, c.bytes_reused
            ),
        ));
    }
    if let Some(e) = new.cache.as_ref().and_then(|c| c.write_error.as_ref())
        && old_cache.and_then(|c| c.write_error.as_ref()).is_none()
    {
        events.push((
            EventType::Warning,
            "CacheWriteFailed".to_string(),
            format!("the image is pushed; storing in the layer cache failed: {e}"),
        ));
    }
    let old_stages: BTreeMap<i32, StagePhase> = if same {
        old.stages.iter().map(|s| (s.index, s.phase)).collect()
    } else {
        BTreeMap::new()
    };
    for s in &new.stages {
        if old_stages.get(&s.index) != Some(&s.phase) && s.phase != StagePhase::Pending {
            let label = s.name.clone().unwrap_or_else(|| format!("#{}", s.index));
            let type_ = if s.phase == StagePhase::Failed {
                EventType::Warning
            } else {
                EventType::Normal
            };
            let phase = s.phase.as_str();
            events.push((
                type_,
                format!("Stage{phase}"),
                format!("stage {label}: {phase}"),
            ));
        }
    }
    events
        .into_iter()
        .map(|(type_, reason, note)| Event {
            type_,
            reason,
            note: Some(bounded(&note, MESSAGE_LIMIT)),
            action: "Build".into(),
            secondary: None,
        })
        .collect()
}

/// Counts a build that just finished, and the stage Jobs that just succeeded.
pub fn record_metrics(
    metrics: &Metrics,
    build: &Build,
    old: &ImageBuildStatus,
    new: &ImageBuildStatus,
    d: &Decision,
) {
    let same = build.same_generation;
    let was_finished = same && old.phase.is_some_and(Phase::finished);
    if d.phase.finished() && !was_finished {
        let secs = match (&new.start_time, &new.completion_time) {
            (Some(s), Some(c)) => Some((c.0.as_second() - s.0.as_second()) as f64),
            _ => None,
        };
        let result = match d.phase {
            Phase::Succeeded => "succeeded",
            Phase::Cancelled => "cancelled",
            _ => "failed",
        };
        metrics.build_finished(result, d.reason.as_str(), secs);
        if let Some(c) = &new.cache {
            metrics.cache_outcome(c.hits, c.misses);
        }
    }
    let old_done: Vec<&str> = if same {
        old.stages
            .iter()
            .filter(|s| s.phase == StagePhase::Succeeded)
            .filter_map(|s| s.job.as_deref())
            .collect()
    } else {
        vec![]
    };
    // A fused Job reports each of its stages: it is counted once.
    let mut seen = BTreeSet::new();
    for s in &new.stages {
        if s.phase != StagePhase::Succeeded {
            continue;
        }
        let Some(job) = s.job.as_deref() else {
            continue;
        };
        if old_done.contains(&job) || !seen.insert(job) {
            continue;
        }
        if let (Some(a), Some(b)) = (&s.start_time, &s.completion_time) {
            metrics.stage_finished((b.0.as_second() - a.0.as_second()) as f64);
        }
    }
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
    use crate::api::StageStatus;
    use crate::reconcile::decide::{BuildReason, Create};
    use crate::reconcile::fixtures;
    use k8s_openapi::jiff::Timestamp;

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
            stop: false,
            stages: vec![],
            bases: vec![],
            image: None,
            revision: None,
            soon: false,
        }
    }

    fn stage(index: i32, phase: StagePhase, job: &str) -> StageStatus {
        StageStatus {
            cached_layers: None,
            name: Some(format!("s{index}")),
            index,
            phase,
            job: Some(job.into()),
            start_time: Some(at(100)),
            completion_time: Some(at(130)),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(83), "1m23s");
        assert_eq!(format_duration(7), "7s");
        assert_eq!(format_duration(3723), "1h2m3s");
    }

    #[test]
    fn a_finished_build_gets_its_completion_duration_and_condition() {
        let mut b = fixtures::validated(&fixtures::build(), 100);
        b.same_generation = true;
        let old = ImageBuildStatus {
            phase: Some(Phase::Pushing),
            observed_generation: Some(3),
            ..Default::default()
        };
        let mut d = decision(Phase::Succeeded, BuildReason::Pushed, "pushed r@sha256:ab");
        d.bases = vec![crate::api::BaseImage {
            name: "busybox".into(),
            digest: "sha256:cd".into(),
            target: true,
        }];
        let s = next_status(&b, &old, &d, at(183));
        assert_eq!(s.base_images, d.bases);
        assert_eq!(s.phase, Some(Phase::Succeeded));
        assert_eq!(s.duration.as_deref(), Some("1m23s"));
        assert_eq!(s.completion_time, Some(at(183)));
        let c = &s.conditions[0];
        assert_eq!((c.type_.as_str(), c.status.as_str()), ("Succeeded", "True"));
        assert_eq!(
            (c.reason.as_str(), c.observed_generation),
            ("Pushed", Some(3))
        );
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["phase"], "Succeeded");
    }

    #[test]
    fn events_say_what_changed() {
        let b = fixtures::validated(&fixtures::build(), 100);
        let old = ImageBuildStatus::default();
        let mut d = decision(
            Phase::Pending,
            BuildReason::Pending,
            "creating the prepare Job",
        );
        d.create = vec![Create::Prepare];
        let new = next_status(&b, &old, &d, at(100));
        let evs = events(&b, &old, &new, &d);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].reason, "Started");
        assert_eq!(evs[0].note.as_deref(), Some("generation 3"));

        let mut b = b;
        b.same_generation = true;
        let mut d = decision(
            Phase::Failed,
            BuildReason::Pod(slipway_contract::result::Reason::StageFailed),
            "exit code 3",
        );
        d.stages = vec![
            stage(0, StagePhase::Succeeded, "j0"),
            stage(1, StagePhase::Failed, "j1"),
            stage(2, StagePhase::Pending, "j2"),
        ];
        let old = ImageBuildStatus {
            phase: Some(Phase::Building),
            observed_generation: Some(3),
            stages: vec![stage(0, StagePhase::Succeeded, "j0")],
            ..Default::default()
        };
        let new = next_status(&b, &old, &d, at(200));
        let evs: Vec<(EventType, String, Option<String>)> = events(&b, &old, &new, &d)
            .into_iter()
            .map(|e| (e.type_, e.reason, e.note))
            .collect();
        assert_eq!(
            evs,
            [
                (
                    EventType::Warning,
                    "Failed".to_string(),
                    Some("StageFailed: exit code 3".to_string())
                ),
                (
                    EventType::Warning,
                    "StageFailed".to_string(),
                    Some("stage s1: Failed".to_string())
                ),
            ]
        );
    }

    #[test]
    fn builds_and_stage_jobs_are_counted_once() {
        let m = Metrics::default();
        let mut b = fixtures::validated(&fixtures::build(), 100);
        b.same_generation = true;
        let old = ImageBuildStatus {
            phase: Some(Phase::Pushing),
            observed_generation: Some(3),
            stages: vec![stage(0, StagePhase::Succeeded, "j0")],
            ..Default::default()
        };
        let mut d = decision(Phase::Succeeded, BuildReason::Pushed, "pushed");
        // Stages 1 and 2 ran as one fused Job.
        d.stages = vec![
            stage(0, StagePhase::Succeeded, "j0"),
            stage(1, StagePhase::Succeeded, "j12"),
            stage(2, StagePhase::Succeeded, "j12"),
        ];
        let new = next_status(&b, &old, &d, at(160));
        record_metrics(&m, &b, &old, &new, &d);
        // Finished already: not counted again.
        record_metrics(&m, &b, &new, &new, &d);
        let text = m.render();
        assert!(text.contains("slipway_builds_total{result=\"succeeded\",reason=\"Pushed\"} 1"));
        assert!(text.contains("slipway_build_duration_seconds_sum 60.0"));
        assert!(text.contains("slipway_stage_duration_seconds_count 1\n"));
    }

    /// A status of `generation` after decision `d` over `old`, at `now`.
    fn after(old: &ImageBuildStatus, generation: i64, d: &Decision, now: i64) -> ImageBuildStatus {
        let mut b = fixtures::validated(&fixtures::build(), 100);
        b.generation = generation;
        b.same_generation = old.observed_generation == Some(generation);
        next_status(&b, old, d, at(now))
    }

    fn pushed(digest: &str) -> Decision {
        let mut d = decision(Phase::Succeeded, BuildReason::Pushed, "pushed");
        d.image = Some(crate::api::PushedImage::new("r/x:1".into(), digest.into()));
        d.revision = Some("ab".repeat(20));
        d
    }

    #[test]
    fn a_rebuild_keeps_the_earlier_builds_digest_in_the_history() {
        let building = decision(Phase::Building, BuildReason::Building, "");
        let first = after(&ImageBuildStatus::default(), 3, &building, 100);
        assert!(first.history.is_empty(), "nothing ended yet");
        let first = after(&first, 3, &pushed("sha256:aa"), 150);
        // Reported again (a later reconcile): one entry still.
        let first = after(&first, 3, &pushed("sha256:aa"), 160);
        assert_eq!(first.history.len(), 1);
        let h = &first.history[0];
        assert_eq!(
            (
                h.generation,
                h.phase,
                h.reason.as_str(),
                h.digest.as_deref()
            ),
            (3, Phase::Succeeded, "Pushed", Some("sha256:aa"))
        );
        assert_eq!(h.source_revision.as_deref(), Some("ab".repeat(20).as_str()));
        // spec.rebuild changed: generation 4 builds; the image of 3 is gone from `image`
        // but not from the history.
        let second = after(&first, 4, &building, 200);
        assert_eq!(second.image, None);
        assert_eq!(second.history, first.history);
        let second = after(&second, 4, &pushed("sha256:bb"), 250);
        let digests: Vec<(i64, Option<&str>)> = second
            .history
            .iter()
            .map(|r| (r.generation, r.digest.as_deref()))
            .collect();
        assert_eq!(digests, [(4, Some("sha256:bb")), (3, Some("sha256:aa"))]);
        // Cancelled, then failed: recorded too, without a digest.
        let cancelled = after(
            &second,
            5,
            &decision(Phase::Cancelled, BuildReason::Cancelled, "cancelled"),
            300,
        );
        assert_eq!(cancelled.history[0].phase, Phase::Cancelled);
        assert_eq!(cancelled.history[0].reason, "Cancelled");
        assert_eq!(cancelled.history[0].digest, None);
        assert_eq!(cancelled.history.len(), 3);
    }

    #[test]
    fn the_history_keeps_the_last_ten_builds() {
        let mut s = ImageBuildStatus::default();
        for g in 1..=13 {
            s = after(&s, g, &pushed(&format!("sha256:{g:02}")), 100 + g);
        }
        assert_eq!(s.history.len(), HISTORY_LIMIT);
        assert_eq!(s.history[0].generation, 13);
        assert_eq!(s.history[9].generation, 4);
    }

    #[test]
    fn a_status_from_before_the_history_keeps_its_build_when_the_spec_changes() {
        let mut b = fixtures::validated(&fixtures::build(), 100);
        b.same_generation = true;
        let mut old = next_status(
            &b,
            &ImageBuildStatus::default(),
            &pushed("sha256:aa"),
            at(150),
        );
        old.history.clear();
        let next = after(
            &old,
            4,
            &decision(Phase::Pending, BuildReason::Pending, ""),
            200,
        );
        assert_eq!(next.history.len(), 1);
        assert_eq!(
            (next.history[0].generation, next.history[0].reason.as_str()),
            (3, "Pushed")
        );
    }
}
