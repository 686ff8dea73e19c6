//! The build's conditions, from its phase: `Succeeded` (Tekton and Knative's, which
//! `kubectl wait --for=condition=Succeeded` and Argo CD's health script read), and the set
//! kstatus defines for generic tools. kstatus (Flux's health checks) reads only
//! `status.observedGeneration`, `Reconciling=True` (in progress) and `Stalled=True` (failed);
//! `Ready` is the summary other tools and `kubectl wait --for=condition=Ready` look for.
//! Reconciling and Stalled are "abnormal-true": set only while they hold, absent otherwise.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::Phase;

/// The condition types the controller writes, in the order the status lists them
/// (`Succeeded` first: scripts read `conditions[0]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Succeeded,
    Ready,
    Reconciling,
    Stalled,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Succeeded => "Succeeded",
            Kind::Ready => "Ready",
            Kind::Reconciling => "Reconciling",
            Kind::Stalled => "Stalled",
        }
    }
}

/// A condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    pub fn as_str(self) -> &'static str {
        match self {
            Truth::True => "True",
            Truth::False => "False",
            Truth::Unknown => "Unknown",
        }
    }
}

/// What the build says of itself in every condition it writes.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub phase: Phase,
    /// CamelCase: the phase's own while running, the failure's, or `Pushed`.
    pub reason: &'a str,
    /// Already bounded to what a condition may hold.
    pub message: &'a str,
    pub generation: i64,
}

/// The conditions a phase sets, with their status; the ones absent are not listed.
pub fn truths(phase: Phase) -> Vec<(Kind, Truth)> {
    match phase {
        Phase::Succeeded => vec![(Kind::Succeeded, Truth::True), (Kind::Ready, Truth::True)],
        // A failed or cancelled build does nothing more until its spec changes: stalled, in
        // kstatus' words (Flux's health check fails on it rather than waiting for it).
        Phase::Failed | Phase::Cancelled => vec![
            (Kind::Succeeded, Truth::False),
            (Kind::Ready, Truth::False),
            (Kind::Stalled, Truth::True),
        ],
        Phase::Pending | Phase::Preparing | Phase::Building | Phase::Pushing => vec![
            (Kind::Succeeded, Truth::Unknown),
            // Not Unknown: the build is known not to be ready yet (kstatus' convention).
            (Kind::Ready, Truth::False),
            (Kind::Reconciling, Truth::True),
        ],
    }
}

/// The conditions for `outcome`, each keeping its `lastTransitionTime` from `old` while its
/// status stays the same; conditions the phase does not set are dropped.
pub fn conditions(old: &[Condition], outcome: Outcome<'_>, now: &Time) -> Vec<Condition> {
    truths(outcome.phase)
        .into_iter()
        .map(|(kind, truth)| {
            let since = old
                .iter()
                .find(|c| c.type_ == kind.as_str() && c.status == truth.as_str())
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: kind.as_str().into(),
                status: truth.as_str().into(),
                reason: outcome.reason.into(),
                message: outcome.message.into(),
                last_transition_time: since,
                observed_generation: Some(outcome.generation),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(t: i64) -> Time {
        Time(Timestamp::from_second(t).expect("time"))
    }

    fn outcome(phase: Phase, reason: &'static str) -> Outcome<'static> {
        Outcome {
            phase,
            reason,
            message: "m",
            generation: 7,
        }
    }

    /// `type=status` of each condition, in order.
    fn summary(cs: &[Condition]) -> Vec<String> {
        cs.iter()
            .map(|c| format!("{}={}", c.type_, c.status))
            .collect()
    }

    #[test]
    fn every_phase_sets_its_conditions() {
        let running = ["Succeeded=Unknown", "Ready=False", "Reconciling=True"];
        for (phase, want) in [
            (Phase::Pending, &running[..]),
            (Phase::Preparing, &running[..]),
            (Phase::Building, &running[..]),
            (Phase::Pushing, &running[..]),
            (Phase::Succeeded, &["Succeeded=True", "Ready=True"][..]),
            (
                Phase::Failed,
                &["Succeeded=False", "Ready=False", "Stalled=True"][..],
            ),
            (
                Phase::Cancelled,
                &["Succeeded=False", "Ready=False", "Stalled=True"][..],
            ),
        ] {
            let cs = conditions(&[], outcome(phase, phase.as_str()), &at(10));
            assert_eq!(summary(&cs), want, "{phase:?}");
            for c in &cs {
                assert_eq!(c.observed_generation, Some(7), "{phase:?} {}", c.type_);
                assert_eq!(
                    (c.reason.as_str(), c.message.as_str()),
                    (phase.as_str(), "m")
                );
            }
        }
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let building = conditions(&[], outcome(Phase::Building, "Building"), &at(10));
        let pushing = conditions(&building, outcome(Phase::Pushing, "Pushing"), &at(20));
        assert!(pushing.iter().all(|c| c.last_transition_time == at(10)));
        assert_eq!(pushing[1].reason, "Pushing");
        let done = conditions(&pushing, outcome(Phase::Succeeded, "Pushed"), &at(30));
        assert_eq!(summary(&done), ["Succeeded=True", "Ready=True"]);
        assert!(done.iter().all(|c| c.last_transition_time == at(30)));
        // Ready stays False from Building to Failed: its time stays too; Stalled is new.
        let failed = conditions(&building, outcome(Phase::Failed, "StageFailed"), &at(40));
        let times: Vec<i64> = failed
            .iter()
            .map(|c| c.last_transition_time.0.as_second())
            .collect();
        assert_eq!(times, [40, 10, 40]);
    }
}
