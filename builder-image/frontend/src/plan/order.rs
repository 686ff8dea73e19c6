//! The stage graph, once each stage's direct needs are known (and found acyclic): every
//! stage's transitive needs, the order the needed stages are built in, what each exports to
//! the stages after it, and the FROM-chains that can run in one container.

use std::collections::{BTreeMap, BTreeSet};

use super::{Base, Plan};

/// Every stage's transitive needs, from each stage's direct ones. The graph must be acyclic.
pub(super) fn transitive_needs(needs: &[BTreeSet<usize>]) -> Vec<BTreeSet<usize>> {
    fn close(i: usize, needs: &[BTreeSet<usize>], memo: &mut [Option<BTreeSet<usize>>]) {
        if memo[i].is_some() {
            return;
        }
        let mut all = BTreeSet::new();
        for &d in &needs[i] {
            close(d, needs, memo);
            all.insert(d);
            all.extend(memo[d].iter().flatten().copied());
        }
        memo[i] = Some(all);
    }
    let mut memo = vec![None; needs.len()];
    for i in 0..needs.len() {
        close(i, needs, &mut memo);
    }
    memo.into_iter().map(Option::unwrap_or_default).collect()
}

/// The needed stages in build order: repeatedly the lowest-index one whose needs are all
/// placed.
pub(super) fn build_order(needed: &BTreeSet<usize>, needs: &[BTreeSet<usize>]) -> Vec<usize> {
    let mut order = Vec::with_capacity(needed.len());
    let mut placed = BTreeSet::new();
    while placed.len() < needed.len() {
        let next = needed
            .iter()
            .copied()
            .find(|i| !placed.contains(i) && needs[*i].iter().all(|d| placed.contains(d)));
        let Some(i) = next else { break };
        placed.insert(i);
        order.push(i);
    }
    order
}

/// The paths each stage must export, from the (stage, path) pairs the needed stages copy.
pub(super) fn exports<'a>(
    copies: impl IntoIterator<Item = &'a (usize, String)>,
) -> BTreeMap<usize, BTreeSet<String>> {
    let mut exports: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (src, path) in copies {
        exports.entry(*src).or_default().insert(path.clone());
    }
    exports
}

impl Plan {
    /// The stages grouped into linear FROM-chains that can run one after the other in one
    /// container (or Job): a stage joins its FROM parent's chain when nothing else waits on
    /// the parent alone and the stage needs nothing the parent did not. Chains come in plan
    /// order, each after the chains it depends on.
    pub fn fused_chains(&self) -> Vec<Vec<usize>> {
        let mut chains: Vec<Vec<usize>> = Vec::new();
        for s in &self.stages {
            let joins = match s.from {
                Base::Stage(p) => {
                    let parent = self.stage(p);
                    let only_through_s = self.stages.iter().all(|t| {
                        t.index == s.index
                            || !t.depends_on.contains(&p)
                            || t.depends_on.contains(&s.index)
                    });
                    let needs_nothing_more = parent.is_some_and(|pp| {
                        s.depends_on
                            .iter()
                            .all(|d| *d == p || pp.depends_on.contains(d))
                    });
                    (only_through_s && needs_nothing_more)
                        .then(|| chains.iter().position(|c| c.last() == Some(&p)))
                        .flatten()
                }
                Base::Image(_) => None,
            };
            match joins {
                Some(i) => chains[i].push(s.index),
                None => chains.push(vec![s.index]),
            }
        }
        chains
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(xs: &[usize]) -> BTreeSet<usize> {
        xs.iter().copied().collect()
    }

    #[test]
    fn needs_close_transitively_and_order_by_index() {
        // 0 <- 1 <- 3, 2 alone, 4 needs 3 and 2.
        let needs = [set(&[]), set(&[0]), set(&[]), set(&[1]), set(&[3, 2])];
        let all = transitive_needs(&needs);
        assert_eq!(all[3], set(&[0, 1]));
        assert_eq!(all[4], set(&[0, 1, 2, 3]));
        assert_eq!(build_order(&set(&[0, 1, 2, 3, 4]), &needs), [0, 1, 2, 3, 4]);
        // A later stage needed by an earlier one is placed first.
        let needs = [set(&[2]), set(&[]), set(&[])];
        assert_eq!(build_order(&set(&[0, 1, 2]), &needs), [1, 2, 0]);
    }

    #[test]
    fn exports_collect_paths_per_stage() {
        let copies = [(0, "/a".to_string()), (1, "/b".into()), (0, "/a".into())];
        let e = exports(&copies);
        assert_eq!(e[&0], BTreeSet::from(["/a".to_string()]));
        assert_eq!(e[&1], BTreeSet::from(["/b".to_string()]));
    }
}
