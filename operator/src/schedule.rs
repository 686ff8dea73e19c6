//! Which stage Jobs may run together: pure logic over the shared plan types.

use std::collections::BTreeSet;

use slipway_builder::plan::Plan;

/// Groups the plan's stages into waves: each wave holds at most `max_parallel` stages whose
/// dependencies all ran in earlier waves, lowest index first.
pub fn waves(plan: &Plan, max_parallel: usize) -> Vec<Vec<usize>> {
    let max_parallel = max_parallel.max(1);
    let mut done = BTreeSet::new();
    let mut left: Vec<_> = plan.stages.iter().collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let wave: Vec<usize> = left
            .iter()
            .filter(|s| s.depends_on.iter().all(|d| done.contains(d)))
            .map(|s| s.index)
            .take(max_parallel)
            .collect();
        if wave.is_empty() {
            break; // a dependency outside the plan: nothing more can start
        }
        left.retain(|s| !wave.contains(&s.index));
        done.extend(wave.iter().copied());
        out.push(wave);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_builder::plan::{PlanOptions, plan};

    #[test]
    fn fan_out_stages_share_a_wave() {
        let df = "FROM busybox AS a\nFROM busybox AS b\nFROM busybox AS c\nFROM a AS d\n\
                  FROM busybox\nCOPY --from=b /b /\nCOPY --from=c /c /\nCOPY --from=d /d /\n";
        let p = plan(df, &PlanOptions::default()).expect("plans");
        assert_eq!(waves(&p, 4), vec![vec![0, 1, 2], vec![3], vec![4]]);
        assert_eq!(waves(&p, 2), vec![vec![0, 1], vec![2, 3], vec![4]]);
    }
}
