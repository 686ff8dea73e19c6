//! `rebuild` and `cancel`: the JSON merge patches they send and what they decide from a
//! build's state. Pure; [`crate::commands`] sends the patches.
//!
//! Each patch carries the `metadata.resourceVersion` of the object it was made from: the API
//! server applies it only to that version and answers 409 Conflict otherwise, so two
//! `rebuild`s at once cannot both write the same counter (one is read again and counts on
//! from the other's value), and a `cancel` decided on a running build cannot land on one that
//! has just ended.

use serde_json::{Map, Value, json};
use slipway_api::{ImageBuild, Phase};

use crate::output::finished;

/// The counter after `current`: one more, or 0 after the largest value (still a change).
pub fn next_rebuild(current: Option<i64>) -> i64 {
    current.unwrap_or(0).checked_add(1).unwrap_or(0)
}

/// `metadata.resourceVersion` as a precondition, when the object read has one.
fn precondition(ib: &ImageBuild) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(rv) = &ib.metadata.resource_version {
        m.insert("resourceVersion".into(), rv.clone().into());
    }
    m
}

/// Counts `spec.rebuild` of `ib` (as read) up by one. A cancelled build's `spec.cancel` is
/// removed too: while it is set the controller starts no build, so a rebuild would end
/// Cancelled at once.
pub fn rebuild_patch(ib: &ImageBuild) -> Value {
    let mut spec = Map::new();
    spec.insert("rebuild".into(), next_rebuild(ib.spec.rebuild).into());
    if ib.spec.cancel {
        spec.insert("cancel".into(), Value::Null);
    }
    json!({"metadata": precondition(ib), "spec": spec})
}

/// Sets `spec.cancel` on `ib` (as read).
pub fn cancel_patch(ib: &ImageBuild) -> Value {
    json!({"metadata": precondition(ib), "spec": {"cancel": true}})
}

/// What `cancel` does with a build as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelPlan {
    /// It runs, waits, or its current generation has not started: set `spec.cancel`.
    Patch,
    /// `spec.cancel` is set and the controller has not said Cancelled yet: wait for it.
    Wait,
    /// The current generation is Cancelled already: nothing to do.
    AlreadyCancelled,
    /// The current generation Succeeded or Failed: there is nothing to cancel (and setting
    /// `spec.cancel` would start a new generation only to cancel it).
    Ended(Phase),
}

pub fn cancel_plan(ib: &ImageBuild) -> CancelPlan {
    match finished(ib) {
        Some(Phase::Cancelled) => CancelPlan::AlreadyCancelled,
        Some(p) => CancelPlan::Ended(p),
        None if ib.spec.cancel => CancelPlan::Wait,
        None => CancelPlan::Patch,
    }
}

/// How `cancel` ends once the build it cancelled is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelEnd {
    /// Cancelled (exit 0).
    Cancelled,
    /// It ended otherwise before the controller saw the cancel (an error naming the phase).
    EndedFirst(Phase),
}

/// `phase`: the final phase of the generation `cancel` followed.
pub fn cancel_end(phase: Phase) -> CancelEnd {
    match phase {
        Phase::Cancelled => CancelEnd::Cancelled,
        p => CancelEnd::EndedFirst(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_api::ImageBuildStatus;

    fn ib(
        generation: i64,
        observed: Option<i64>,
        phase: Option<Phase>,
        rebuild: Option<i64>,
        cancel: bool,
    ) -> ImageBuild {
        let mut ib = ImageBuild::new(
            "web",
            serde_json::from_value(json!({
                "source": {"inline": {"dockerfile": "FROM x"}},
                "output": {"image": "r/web:1"}
            }))
            .expect("spec"),
        );
        ib.metadata.generation = Some(generation);
        ib.metadata.resource_version = Some("4711".into());
        ib.spec.rebuild = rebuild;
        ib.spec.cancel = cancel;
        ib.status = Some(ImageBuildStatus {
            phase,
            observed_generation: observed,
            ..Default::default()
        });
        ib
    }

    #[test]
    fn rebuild_counts_up_from_what_was_read() {
        assert_eq!(next_rebuild(None), 1);
        assert_eq!(next_rebuild(Some(0)), 1);
        assert_eq!(next_rebuild(Some(41)), 42);
        assert_eq!(next_rebuild(Some(i64::MAX)), 0);
        let b = ib(3, Some(3), Some(Phase::Succeeded), Some(2), false);
        assert_eq!(
            rebuild_patch(&b),
            json!({"metadata": {"resourceVersion": "4711"}, "spec": {"rebuild": 3}})
        );
        let b = ib(1, Some(1), Some(Phase::Succeeded), None, false);
        assert_eq!(rebuild_patch(&b)["spec"], json!({"rebuild": 1}));
    }

    #[test]
    fn rebuild_of_a_cancelled_build_clears_cancel() {
        let b = ib(2, Some(2), Some(Phase::Cancelled), Some(1), true);
        assert_eq!(
            rebuild_patch(&b),
            json!({"metadata": {"resourceVersion": "4711"}, "spec": {"rebuild": 2, "cancel": null}})
        );
    }

    #[test]
    fn without_a_resource_version_no_precondition() {
        let mut b = ib(1, None, None, None, false);
        b.metadata.resource_version = None;
        assert_eq!(
            rebuild_patch(&b),
            json!({"metadata": {}, "spec": {"rebuild": 1}})
        );
        assert_eq!(
            cancel_patch(&b),
            json!({"metadata": {}, "spec": {"cancel": true}})
        );
    }

    #[test]
    fn cancel_patch_is_conditional() {
        let b = ib(1, Some(1), Some(Phase::Building), None, false);
        assert_eq!(
            cancel_patch(&b),
            json!({"metadata": {"resourceVersion": "4711"}, "spec": {"cancel": true}})
        );
    }

    #[test]
    fn what_cancel_does() {
        use CancelPlan::*;
        for p in [
            Phase::Pending,
            Phase::Preparing,
            Phase::Building,
            Phase::Pushing,
        ] {
            assert_eq!(
                cancel_plan(&ib(1, Some(1), Some(p), None, false)),
                Patch,
                "{p:?}"
            );
        }
        // Not seen by the controller yet.
        assert_eq!(cancel_plan(&ib(1, None, None, None, false)), Patch);
        // A rebuild requested: the status still says generation 1 Succeeded.
        assert_eq!(
            cancel_plan(&ib(2, Some(1), Some(Phase::Succeeded), Some(1), false)),
            Patch
        );
        // Cancel requested, the controller not there yet.
        assert_eq!(
            cancel_plan(&ib(2, Some(1), Some(Phase::Building), None, true)),
            Wait
        );
        assert_eq!(
            cancel_plan(&ib(2, Some(2), Some(Phase::Cancelled), None, true)),
            AlreadyCancelled
        );
        assert_eq!(
            cancel_plan(&ib(1, Some(1), Some(Phase::Succeeded), None, false)),
            Ended(Phase::Succeeded)
        );
        assert_eq!(
            cancel_plan(&ib(1, Some(1), Some(Phase::Failed), None, false)),
            Ended(Phase::Failed)
        );
    }

    #[test]
    fn how_cancel_ends() {
        assert_eq!(cancel_end(Phase::Cancelled), CancelEnd::Cancelled);
        assert_eq!(
            cancel_end(Phase::Succeeded),
            CancelEnd::EndedFirst(Phase::Succeeded)
        );
        assert_eq!(
            cancel_end(Phase::Failed),
            CancelEnd::EndedFirst(Phase::Failed)
        );
    }
}
