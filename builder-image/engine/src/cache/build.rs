//! The layer cache over one build: each Job's stages are looked up when the Job is ready (local
//! mode's host) or all at once before any runs (the cluster's prepare step, which can only use
//! hits found by fast keys or from other hits); a Job whose stages all hit runs no container;
//! a hit's files go into the workspace only when a stage that runs (or the push) reads them;
//! the stages that ran are stored once the image is pushed (local mode here; on a cluster, the
//! push step, [`super::cluster`]).

use std::collections::{BTreeMap, BTreeSet};

use slipway_contract::graph::StageJob;
use slipway_contract::trust::Outputs;
use slipway_frontend::plan::Plan;

use crate::cache::entry::{Hit, KeyKind, PrefixHit};
use crate::cache::keys::{Keyed, Keys};
use crate::cache::store::{CacheError, Outcome, Store};
use crate::net::RuntimeError;
use crate::trusted::lineage;
use crate::workspace::Workspace;

/// Restoring a hit a stage that runs needs failed: the build cannot go on without it.
#[derive(Debug, thiserror::Error)]
#[error("cache: restoring stage #{index}: {source}")]
pub struct RestoreError {
    pub index: usize,
    #[source]
    pub source: CacheError,
}

pub struct BuildCache<'a> {
    pub store: Store<'a>,
    pub keys: Keys,
    plan: &'a Plan,
    hits: BTreeMap<usize, Hit>,
    /// Fast-key lookups made ahead, together ([`BuildCache::prefetch`]): by stage, what the
    /// cache held (a failed lookup, already warned about, is `None`).
    prefetched: BTreeMap<usize, Option<Hit>>,
    restored: BTreeSet<usize>,
    ran: Vec<usize>,
    /// Checkpoints stages that run start from (prefix hits), by stage.
    prefix_hits: BTreeMap<usize, PrefixHit>,
}

/// Registry requests in flight at once when lookups go together.
const IN_FLIGHT: usize = 8;

/// A cache operation run to completion from synchronous code (the host, the prepare and push
/// steps).
pub(crate) fn run<T>(fut: impl Future<Output = Result<T, CacheError>>) -> Result<T, CacheError> {
    crate::net::block_on(fut).map_err(|RuntimeError(e)| CacheError::Io {
        path: "the async runtime".into(),
        source: e,
    })?
}

impl<'a> BuildCache<'a> {
    pub fn new(store: Store<'a>, keys: Keys, plan: &'a Plan) -> Self {
        BuildCache {
            store,
            keys,
            plan,
            hits: BTreeMap::new(),
            prefetched: BTreeMap::new(),
            restored: BTreeSet::new(),
            ran: Vec::new(),
            prefix_hits: BTreeMap::new(),
        }
    }

    /// Looks the stages of a ready Job up, parent first (each by its fast key, else by its
    /// slow key from what the stages it needs left, or their hits say they left), up to the
    /// first miss. Returns the digests of what the hits leave, and the Job that is left to
    /// run: `None` when every stage hit; else the chain from the first miss on, which starts
    /// from the last hit's result (restored before it runs) as a chain whose parent ran in
    /// another Job does.
    pub fn try_job(
        &mut self,
        job: &StageJob,
        outputs: &BTreeMap<usize, Outputs>,
    ) -> (BTreeMap<usize, Outputs>, Option<StageJob>) {
        let mut seen = outputs.clone();
        let mut hits = BTreeMap::new();
        for &i in &job.stages {
            let Some((hit, out)) = self
                .lookup(i, &seen)
                .and_then(|h| h.outputs().ok().map(|o| (h, o)))
            else {
                break;
            };
            eprintln!(
                "cache: stage #{i} hit ({} key): {} bytes not made again",
                hit.kind.as_str(),
                hit.bytes()
            );
            seen.insert(i, out.clone());
            hits.insert(i, out);
            self.hits.insert(i, hit);
        }
        let k = hits.len();
        if k == job.stages.len() {
            return (hits, None);
        }
        let mut rest = job.clone();
        rest.stages = job.stages[k..].to_vec();
        rest.names = job.names.get(k..).map(<[_]>::to_vec).unwrap_or_default();
        rest.needs.extend(job.stages[..k].iter().copied());
        for &i in &rest.stages {
            self.try_prefixes(i);
        }
        (hits, Some(rest))
    }

    /// Looks a stage that runs up by its checkpoints' keys (together): the longest found is
    /// where it starts.
    fn try_prefixes(&mut self, index: usize) {
        use futures::StreamExt;
        let tries = self.keys.prefixes(index);
        if tries.is_empty() {
            return;
        }
        let store = &self.store;
        let found = run(async {
            Ok(futures::stream::iter(
                tries
                    .iter()
                    .map(|(steps, k)| async move { store.lookup_prefix(index, *steps, k).await }),
            )
            .buffered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await)
        });
        let Ok(found) = found else { return };
        // Longest first: the first found is the one to start from.
        for r in found {
            match r {
                Ok(Some(hit)) => {
                    eprintln!(
                        "cache: stage #{index} starts after its instruction {} ({} bytes not made again)",
                        hit.steps,
                        hit.bytes_reused()
                    );
                    self.prefix_hits.insert(index, hit);
                    return;
                }
                Ok(None) => {}
                Err(e) => eprintln!("warning: cache: stage #{index}: {e}; treated as a miss"),
            }
        }
    }

    /// Looks every stage's fast key up at once (a fast key needs no stage's output), so a
    /// build that hits everywhere waits for one round of requests, not one per stage.
    pub fn prefetch(&mut self) {
        use futures::StreamExt;
        let tries: Vec<(usize, Vec<usize>, bool, Keyed)> = self
            .plan
            .stages
            .iter()
            .filter_map(|s| {
                let k = self.keys.fast(s.index)?;
                let needs = self.plan.layers_read(s.index);
                Some((s.index, lineage(self.plan, s.index), needs, k.clone()))
            })
            .collect();
        let store = &self.store;
        let found = run(async {
            Ok(
                futures::stream::iter(tries.iter().map(|(i, chain, needs, k)| async move {
                    (*i, store.lookup(*i, chain, *needs, KeyKind::Fast, k).await)
                }))
                .buffer_unordered(IN_FLIGHT)
                .collect::<Vec<_>>()
                .await,
            )
        });
        let Ok(found) = found else { return }; // no runtime: each lookup will say so
        for (i, r) in found {
            let hit = r.unwrap_or_else(|e| {
                eprintln!("warning: cache: stage #{i}: {e}; treated as a miss");
                None
            });
            self.prefetched.insert(i, hit);
        }
    }

    fn lookup(&self, index: usize, outputs: &BTreeMap<usize, Outputs>) -> Option<Hit> {
        let chain = lineage(self.plan, index);
        let needs = self.plan.layers_read(index);
        let fast = self.keys.fast(index);
        let slow = self.keys.slow(index, outputs);
        let tries = fast
            .map(|k| (KeyKind::Fast, k.clone()))
            .into_iter()
            .chain(slow.map(|k| (KeyKind::Slow, k)));
        for (kind, keyed) in tries {
            let found = match (kind, self.prefetched.get(&index)) {
                (KeyKind::Fast, Some(prefetched)) => Ok(prefetched.clone()),
                _ => run(self.store.lookup(index, &chain, needs, kind, &keyed)),
            };
            match found {
                Ok(Some(hit)) => return Some(hit),
                Ok(None) => {}
                Err(e) => eprintln!("warning: cache: stage #{index}: {e}; treated as a miss"),
            }
        }
        None
    }

    /// The Job runs: the hits it reads (the stages it needs) go into the workspace first, and
    /// the checkpoints its stages start from, their digests into the Job.
    pub fn before_run(&mut self, ws: &Workspace, job: &mut StageJob) -> Result<(), RestoreError> {
        self.ran.extend(job.stages.iter().copied());
        let needs: BTreeSet<usize> = job
            .stages
            .iter()
            .filter_map(|i| self.plan.stage(*i))
            .flat_map(|s| s.depends_on.iter().copied())
            .filter(|i| !job.stages.contains(i))
            .collect();
        for i in needs {
            self.restore(ws, i)?;
        }
        let mut resumes = BTreeMap::new();
        let mut failed = Vec::new();
        for &i in &job.stages {
            let Some(hit) = self.prefix_hits.get(&i) else {
                continue;
            };
            // A checkpoint that cannot be restored is a miss: the stage runs from the start.
            match run(self.store.restore_prefix(ws, hit)) {
                Ok(digest) => {
                    resumes.insert(i, digest);
                }
                Err(e) => {
                    eprintln!(
                        "warning: cache: stage #{i}: restoring its checkpoint: {e}; running every instruction"
                    );
                    failed.push(i);
                }
            }
        }
        for i in failed {
            self.prefix_hits.remove(&i);
        }
        job.resumes = resumes;
        Ok(())
    }

    /// The push reads the target and the stages it is built on.
    pub fn before_push(&mut self, ws: &Workspace) -> Result<(), RestoreError> {
        for i in lineage(self.plan, self.plan.target_index) {
            self.restore(ws, i)?;
        }
        Ok(())
    }

    fn restore(&mut self, ws: &Workspace, index: usize) -> Result<(), RestoreError> {
        if self.restored.contains(&index) {
            return Ok(());
        }
        let Some(hit) = self.hits.get(&index) else {
            return Ok(()); // it ran
        };
        run(self.store.restore(ws, hit)).map_err(|source| RestoreError { index, source })?;
        self.restored.insert(index);
        Ok(())
    }

    /// Stores every stage that ran (by both keys), and a hit found only by its slow key under
    /// its fast key too. Failures are warnings: the image is already pushed.
    pub fn write(&self, ws: &Workspace, outputs: &BTreeMap<usize, Outputs>) {
        let before = self.store.registry.tally();
        for &i in &self.ran {
            let fast = self.keys.fast(i);
            let slow = self.keys.slow(i, outputs);
            if fast.is_none() && slow.is_none() {
                continue;
            }
            let chain = lineage(self.plan, i);
            let exports = outputs.get(&i).and_then(|o| o.exports.as_ref());
            match run(self
                .store
                .write(ws, i, &chain, exports, fast, slow.as_ref()))
            {
                Ok(()) => eprintln!(
                    "cache: stage #{i} stored under {}",
                    fast.into_iter()
                        .chain(slow.as_ref())
                        .map(|k| k.key.tag())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                Err(e) => {
                    // As on the cluster: no checkpoints of a stage not stored itself.
                    eprintln!("warning: cache: storing stage #{i}: {e}");
                    continue;
                }
            }
            // Its checkpoints, but those it started from (the cache has them).
            let after = self.prefix_hits.get(&i).map_or(0, |h| h.steps);
            let prefixes: BTreeMap<usize, Keyed> = self
                .keys
                .prefixes(i)
                .into_iter()
                .filter(|(steps, _)| *steps > after)
                .collect();
            let Some(out) = outputs.get(&i) else { continue };
            if prefixes.is_empty() {
                continue;
            }
            match run(self.store.write_prefixes(ws, i, &chain, out, &prefixes)) {
                Ok(0) => {}
                Ok(n) => eprintln!("cache: stage #{i}: {n} checkpoints stored"),
                Err(e) => eprintln!("warning: cache: storing stage #{i}'s checkpoints: {e}"),
            }
        }
        for (i, hit) in &self.hits {
            if hit.kind != KeyKind::Slow {
                continue;
            }
            if let (Some(fast), Some(slow)) = (self.keys.fast(*i), self.keys.slow(*i, outputs))
                && let Err(e) = run(self.store.alias(hit, fast, &slow))
            {
                eprintln!("warning: cache: storing stage #{i} under its fast key: {e}");
            }
        }
        eprintln!(
            "cache: write: {}",
            self.store.registry.tally().since(before)
        );
    }

    /// The instructions each stage that starts from a checkpoint skips, by stage.
    pub fn resumed(&self) -> BTreeMap<usize, usize> {
        self.prefix_hits
            .iter()
            .map(|(i, h)| (*i, h.steps))
            .collect()
    }

    /// The checkpoint stage `index` starts from, if one was found.
    pub fn prefix_hit(&self, index: usize) -> Option<&PrefixHit> {
        self.prefix_hits.get(&index)
    }

    /// The hit of stage `index`, if it was found.
    pub fn hit(&self, index: usize) -> Option<&Hit> {
        self.hits.get(&index)
    }

    pub fn outcome(&self) -> Outcome {
        let mut o = Outcome::default();
        for s in &self.plan.stages {
            let i = s.index;
            if let Some(hit) = self.hits.get(&i) {
                o.hits.insert(i, hit.kind);
                o.bytes_reused += hit.bytes();
            } else if self.keys.uncacheable(i).is_some() {
                o.uncacheable.push(i);
            } else {
                // A stage started from a checkpoint is a miss that reused its layers.
                o.bytes_reused += self.prefix_hits.get(&i).map_or(0, |p| p.bytes_reused());
                o.misses.push(i);
            }
        }
        o
    }
}
