//! What a build's stages and its layer cache did, for `status.stages` and `status.cache`: pure,
//! from what [`observe`](super::observe) found, beside the [`decide`](super::decide) step.

use slipway_contract::result::PodResult;

use super::decide::{JobState, Observed};
use crate::api::{CacheStatus, StagePhase, StageStatus};

/// One entry per planned stage, by index: the Jobs' stages and the restored ones.
pub fn stage_statuses(o: &Observed) -> Vec<StageStatus> {
    let Some(g) = &o.graph else { return vec![] };
    let resumed = |index: usize| {
        let r = g.cache.as_ref()?.resumed(index)?;
        i32::try_from(r.layers).ok()
    };
    let mut out = Vec::new();
    for (pos, j) in g.jobs.iter().enumerate() {
        let obs = o.stages.get(&pos);
        for (k, index) in j.stages.iter().enumerate() {
            out.push(StageStatus {
                name: j.names.get(k).cloned().flatten(),
                index: *index as i32,
                phase: match obs.map(|s| &s.state) {
                    None => StagePhase::Pending,
                    Some(JobState::Running) => StagePhase::Running,
                    Some(JobState::Succeeded) => StagePhase::Succeeded,
                    Some(JobState::Failed { .. }) => StagePhase::Failed,
                },
                job: obs.map(|s| s.name.clone()),
                start_time: obs.and_then(|s| s.start.clone()),
                completion_time: obs.and_then(|s| s.completion.clone()),
                // A stage that runs from a cache checkpoint: the layers it did not make.
                cached_layers: resumed(*index),
            });
        }
    }
    for c in g.cached_stages() {
        out.push(StageStatus {
            name: c.name.clone(),
            index: c.index as i32,
            phase: StagePhase::Cached,
            cached_layers: i32::try_from(c.layers).ok(),
            ..Default::default()
        });
    }
    out.sort_by_key(|s| s.index);
    out
}

/// What the layer cache did: the prepare step's lookups, and what the push step stored once
/// it reported.
pub fn cache_status(o: &Observed) -> Option<CacheStatus> {
    let plan = o.graph.as_ref()?.cache.as_ref()?;
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let mut status = CacheStatus {
        hits: count(plan.cached.len()),
        misses: count(plan.misses.len()),
        not_cacheable: count(plan.uncacheable.len()),
        bytes_reused: i64::try_from(plan.bytes_reused()).unwrap_or(i64::MAX),
        stored: None,
        write_error: None,
    };
    if let Some(PodResult::Pushed { cache: Some(w), .. }) =
        o.push.as_ref().and_then(|p| p.result.as_ref())
    {
        status.stored = Some(count(w.stored));
        status.write_error = w.warning.clone();
    }
    Some(status)
}
