//! Pods that awaited stages still running (`--await-outputs`, see the engine's `awaited`):
//! what such a pod took from the workspace is believed only once it agrees with what those
//! stages' own pods reported when they ended. Until then its Job counts as running; a
//! disagreement (a RUN step wrote `outputs.json` ahead of its stage's end) fails it. Pure.

use std::collections::BTreeMap;

use slipway_contract::result::{PodResult, Reason};
use slipway_contract::trust::{Awaited, AwaitedCheck, Outputs, check_awaited};

use super::decide::{JobObs, JobState};

/// A finished stage Job whose pod took what it awaited, its own outputs not believed yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Awaiting {
    /// The Job's position in the graph.
    pub pos: usize,
    /// The Job's name and its stages' label, for messages.
    pub name: String,
    pub label: String,
    /// What it reported of its own stages.
    pub own: BTreeMap<usize, Outputs>,
    pub awaited: Awaited,
}

/// What became of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Believed: its outputs joined the known ones.
    Agrees,
    /// Stage N's `outputs.json` said other than its pod reported.
    Differs(usize),
    /// A stage it awaited has not been seen to end yet.
    Unknown,
}

/// Checks each of `pending` against `known`, adding the outputs of those that agree (so that
/// a Job that awaited another awaiting Job is believed in the same pass).
pub fn settle(
    known: &mut BTreeMap<usize, Outputs>,
    mut pending: Vec<Awaiting>,
) -> Vec<(Awaiting, Verdict)> {
    let mut out = Vec::new();
    loop {
        let mut believed = false;
        let mut left = Vec::new();
        for a in pending {
            match check_awaited(&a.awaited, known) {
                AwaitedCheck::Agrees => {
                    known.extend(a.own.clone());
                    believed = true;
                    out.push((a, Verdict::Agrees));
                }
                AwaitedCheck::Differs(n) => out.push((a, Verdict::Differs(n))),
                AwaitedCheck::Unknown(_) => left.push(a),
            }
        }
        pending = left;
        if !believed || pending.is_empty() {
            break;
        }
    }
    out.extend(pending.into_iter().map(|a| (a, Verdict::Unknown)));
    out
}

/// The message of a pod whose awaited outputs disagree (`who`: the step).
pub fn differs(who: &str, stage: usize) -> String {
    format!(
        "{who} took the outputs of stage #{stage} from the workspace, and they are not what \
         stage #{stage}'s pod reported: the workspace was modified"
    )
}

/// `obs` as failed with `reason` and `message`.
pub fn fail(obs: &mut JobObs, reason: Reason, message: String) {
    obs.state = JobState::Failed {
        deadline: false,
        message: message.clone(),
    };
    obs.result = Some(PodResult::Failed { reason, message });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::fixtures;

    fn awaiting(pos: usize, own: usize, awaited: &[(usize, Outputs)]) -> Awaiting {
        Awaiting {
            pos,
            name: format!("j{pos}"),
            label: format!("s{own}"),
            own: fixtures::outputs_of(own..own + 1),
            awaited: awaited.iter().cloned().collect(),
        }
    }

    #[test]
    fn what_a_pod_awaited_is_believed_once_the_stages_own_pods_agree() {
        let reported = fixtures::outputs_of(0..2);
        let mut known = fixtures::outputs_of(0..1);
        let mut forged = reported[&0].clone();
        forged.result = reported[&1].result.clone();
        let pending = vec![
            // Awaits stage 2, which awaited stage 1, not seen to end yet.
            awaiting(3, 3, &[(2, fixtures::outputs_of(2..3)[&2].clone())]),
            awaiting(2, 2, &[(1, reported[&1].clone())]),
            awaiting(4, 4, &[(0, forged)]),
            awaiting(5, 5, &[(0, reported[&0].clone())]),
        ];
        let v = settle(&mut known, pending.clone());
        let verdict = |pos| v.iter().find(|(a, _)| a.pos == pos).map(|(_, v)| v.clone());
        assert_eq!(verdict(5), Some(Verdict::Agrees));
        assert_eq!(verdict(4), Some(Verdict::Differs(0)));
        assert_eq!(
            (verdict(2), verdict(3)),
            (Some(Verdict::Unknown), Some(Verdict::Unknown))
        );
        assert!(known.contains_key(&5) && !known.contains_key(&4) && !known.contains_key(&2));
        // Stage 1's pod is seen to end: 2 is believed, and 3, which took 2's, with it.
        known.insert(1, reported[&1].clone());
        let v = settle(&mut known, pending[..2].to_vec());
        assert!(v.iter().all(|(_, v)| *v == Verdict::Agrees), "{v:?}");
        assert!(known.contains_key(&3));
        assert!(differs("the push step", 4).contains("stage #4's pod reported"));
    }
}
