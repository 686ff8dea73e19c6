//! The layer cache on a cluster (`spec.cache.repository`), in the two trusted pods of a build:
//!
//! - the prepare step ([`prepare`]) computes every stage's keys from the context it just
//!   fetched, looks the Jobs up before any runs (fast keys, and slow keys from other hits),
//!   restores the hits that the Jobs left to run or the push read, and drops from the graph
//!   what hit: a Job whose stages all hit is no Job at all, one whose first stages hit starts
//!   after them. It writes `cache-keys.json` (the stages' inputs) for the push step, and its
//!   digest with the others it reports;
//! - the push step ([`store`]) stores every stage that ran under the same keys (fast and,
//!   from the digests the controller holds of what each stage left, slow), reading only what
//!   those digests vouch for: the stages beside the image's FROM-chain while the image is
//!   pushed, the chain's once it is (their layers are mounted from it, not uploaded again).
//!
//! Stage pods never see the cache or its credentials.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use futures::StreamExt;

use slipway_contract::digest::Digest;
use slipway_contract::graph::{
    BuildGraph, CachePlan, CachedStage, ResumedStage, StageJob, root_image,
};
use slipway_contract::pod::Digests;
use slipway_contract::result::CacheWrite;
use slipway_contract::trust::Outputs;
use slipway_frontend::plan::Plan;

use crate::cache::build::BuildCache;
use crate::cache::keys::{KeyError, Keys, KeysFile};
use crate::cache::store::{CacheError, Outcome, Store};
use crate::registry::client::Registry;
use crate::trusted::{self, TrustError};
use crate::workspace::{self, ImageInfo, JSON_CAP, Workspace};

/// `cache-keys.json`, beside `plan.json`.
pub const KEYS_FILE: &str = "cache-keys.json";

/// What the prepare step leaves for the rest of the build.
pub struct Prepared {
    /// The Jobs left to run, and the cache's part of the graph.
    pub graph: BuildGraph,
    /// `cache-keys.json`'s digest, `None` when the keys could not be computed (then nothing
    /// is stored either).
    pub keys_file: Option<Digest>,
}

/// Looks the graph's Jobs up in `repository` (through `registry`, with the prepare step's pull
/// credentials), restores what the rest reads, and trims the graph. Every failure is a warning
/// and a build without (part of) the cache, never a failed build.
pub fn prepare(
    ws: &Workspace,
    plan: &Plan,
    graph: BuildGraph,
    images: &BTreeMap<String, ImageInfo>,
    registry: &Registry,
    repository: &str,
    epoch: Option<u64>,
) -> Prepared {
    let keys = std::env::current_exe()
        .map_err(|source| KeyError::Read {
            what: "slipway-builder".into(),
            source,
        })
        .and_then(|exe| crate::cache::keys::builder_identity(&exe))
        .and_then(|b| Keys::compute(ws, &ws.context(), plan, images, epoch, &b));
    let keys = match keys {
        Ok(k) => k,
        Err(e) => {
            eprintln!("warning: cache: {e}; building without the cache");
            return Prepared {
                graph,
                keys_file: None,
            };
        }
    };
    let store = Store {
        registry,
        repository: repository.to_string(),
        mount_from: Vec::new(),
    };
    let mut cache = BuildCache::new(store, keys, plan);
    cache.prefetch();
    let (mut jobs, cached) = trim(&mut cache, &graph);
    let restored = jobs
        .iter_mut()
        .try_for_each(|j| cache.before_run(ws, j))
        .and_then(|()| cache.before_push(ws));
    let (jobs, cached, resumed) = match restored {
        Ok(()) => (jobs, cached, cache.resumed()),
        Err(e) => {
            // Start over without hits: every stage runs, from clean folders.
            eprintln!("warning: {e}; building without the cache");
            for s in &plan.stages {
                let dir = ws.stage_dir(s.index);
                let _ = fs::remove_dir_all(&dir);
                let _ = fs::create_dir_all(&dir);
                let _ = fs::remove_dir_all(ws.resume_dir(s.index));
            }
            (graph.jobs.clone(), BTreeMap::new(), BTreeMap::new())
        }
    };
    let cached_stages: Vec<CachedStage> = cached
        .iter()
        .filter_map(|(i, out)| {
            let hit = cache.hit(*i)?;
            let base = root_image(plan, *i);
            Some(CachedStage {
                image: base
                    .as_ref()
                    .and_then(|b| images.get(b))
                    .map(|info| info.pinned.clone()),
                index: *i,
                name: plan.stage(*i).and_then(|s| s.name.clone()),
                outputs: out.clone(),
                key: hit.kind,
                layers: hit.layers.len(),
                bytes: hit.bytes(),
                base,
            })
        })
        .collect();
    let keys_file = write_keys(
        ws,
        &cache
            .keys
            .to_file(cached.keys().copied().collect(), resumed),
    );
    // Every stage not restored runs (a hit dropped by a failed restore too).
    let uncacheable: Vec<usize> = plan
        .stages
        .iter()
        .map(|s| s.index)
        .filter(|i| cache.keys.uncacheable(*i).is_some())
        .collect();
    let resumed_stages: Vec<ResumedStage> = jobs
        .iter()
        .flat_map(|j| j.resumes.keys())
        .filter_map(|i| {
            let hit = cache.prefix_hit(*i)?;
            Some(ResumedStage {
                index: *i,
                steps: hit.steps,
                layers: hit.resume.layers.len(),
                bytes: hit.bytes_reused(),
            })
        })
        .collect();
    let plan_part = CachePlan {
        resumed: resumed_stages,
        misses: plan
            .stages
            .iter()
            .map(|s| s.index)
            .filter(|i| !cached.contains_key(i) && !uncacheable.contains(i))
            .collect(),
        uncacheable,
        cached: cached_stages,
    };
    let said = Outcome {
        hits: plan_part.cached.iter().map(|c| (c.index, c.key)).collect(),
        misses: plan_part.misses.clone(),
        uncacheable: plan_part.uncacheable.clone(),
        bytes_reused: plan_part.bytes_reused(),
    };
    eprintln!("{said}");
    Prepared {
        graph: BuildGraph {
            jobs,
            cache: Some(plan_part),
            ..graph
        },
        keys_file,
    }
}

/// Writes `cache-keys.json` and returns its digest; `None` (and a warning) when it cannot be
/// written, and then nothing is stored.
fn write_keys(ws: &Workspace, file: &KeysFile) -> Option<Digest> {
    let warn = |e: &dyn std::fmt::Display| {
        eprintln!("warning: cache: {e}; the stages that run will not be stored");
    };
    if let Err(e) = workspace::write_json(&ws.root.join(KEYS_FILE), file) {
        warn(&e);
        return None;
    }
    trusted::digest_file(&ws.root, std::path::Path::new(KEYS_FILE))
        .map_err(|e| warn(&e))
        .ok()
}

/// The Jobs in the order they can run, each looked up (its hits' outputs feed the slow keys of
/// the Jobs after it): the Jobs left to run, and the outputs of every stage that hit.
fn trim(
    cache: &mut BuildCache<'_>,
    graph: &BuildGraph,
) -> (Vec<StageJob>, BTreeMap<usize, Outputs>) {
    let mut cached = BTreeMap::new();
    let mut left = Vec::new();
    for pos in graph.waves(usize::MAX).into_iter().flatten() {
        let (hits, rest) = cache.try_job(&graph.jobs[pos], &cached);
        cached.extend(hits);
        left.extend(rest.map(|r| (pos, r)));
    }
    // The graph's own order, so that positions (Job names) follow the Dockerfile.
    left.sort_by_key(|(pos, _)| *pos);
    let left = needed(left.into_iter().map(|(_, j)| j).collect(), graph.target);
    (left, cached)
}

/// The Jobs something still reads: the target's, and those a Job left to run needs. A stage
/// only restored stages needed is not run (its readers' results are in the cache already).
fn needed(mut jobs: Vec<StageJob>, target: usize) -> Vec<StageJob> {
    loop {
        let wanted: BTreeSet<usize> = jobs
            .iter()
            .flat_map(|j| j.needs.iter().copied())
            .chain([target])
            .collect();
        let before = jobs.len();
        jobs.retain(|j| j.stages.iter().any(|s| wanted.contains(s)));
        if jobs.len() == before {
            return jobs;
        }
    }
}

/// Which stages that ran a call of [`store`] stores, by the FROM-chain of the target (whose
/// layers are the image's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The others: while the image is pushed.
    Beside { target: usize },
    /// The chain: once the image is pushed, so that its layers are mounted from there.
    Chain { target: usize },
}

impl Part {
    fn takes(self, keys: &Keys, index: usize) -> bool {
        match self {
            Part::Beside { target } => !keys.lineage(target).contains(&index),
            Part::Chain { target } => keys.lineage(target).contains(&index),
        }
    }
}

/// What the push step stores, read once for both parts: the keys, the stages the prepare
/// step restored (or started from a checkpoint), and what each stage that ran left.
pub struct Ran {
    keys: Keys,
    cached: BTreeSet<usize>,
    resumed: BTreeMap<usize, usize>,
    outputs: BTreeMap<usize, Outputs>,
}

/// Why the keys file cannot be used: the cache write's one failure.
#[derive(Debug, thiserror::Error)]
pub enum RanError {
    #[error("cache: {0}")]
    Read(#[from] TrustError),
    #[error("cache: {0}")]
    Keys(#[from] crate::cache::keys::KeyError),
}

/// Reads `cache-keys.json` as the controller's digest vouches for it; the outputs are the
/// digests the controller holds.
pub fn ran(ws: &Workspace, digests: &Digests) -> Result<Ran, RanError> {
    let file = read_keys(ws, digests)?;
    let cached = file.cached.iter().copied().collect();
    let resumed = file.resumed.clone();
    let keys = Keys::from_file(file)?;
    let outputs = digests
        .results
        .iter()
        .map(|r| {
            (
                r.index,
                Outputs {
                    result: r.digest.clone(),
                    exports: digests.exports(r.index).cloned(),
                },
            )
        })
        .collect();
    Ok(Ran {
        keys,
        cached,
        resumed,
        outputs,
    })
}

/// Stores the stages of `part` that ran (those the prepare step did not restore) under their
/// fast and slow keys. Reads each stage's result, layers and exports only as the controller's
/// digests vouch for them.
pub fn store(
    ws: &Workspace,
    ran: &Ran,
    registry: &Registry,
    repository: &str,
    pushed_to: &[String],
    part: Part,
) -> CacheWrite {
    let mut out = CacheWrite::default();
    let Ran {
        keys,
        cached,
        outputs,
        ..
    } = ran;
    let store = Store {
        registry,
        repository: repository.to_string(),
        mount_from: pushed_to.to_vec(),
    };
    let before = registry.tally();
    let todo: Vec<usize> = keys
        .stages()
        .filter(|i| !cached.contains(i) && outputs.contains_key(i) && part.takes(keys, *i))
        .collect();
    // A few round trips each, the registry's time more than ours: stored at once, a few at a
    // time, and reported in stage order.
    let storing = futures::stream::iter(todo)
        .map(|i| store_stage(&store, ws, ran, i))
        .buffered(CONCURRENT_STORES)
        .collect::<Vec<_>>();
    match crate::net::block_on(storing) {
        Ok(stages) => {
            for stored in stages {
                out.stored += usize::from(stored.stored);
                for failure in &stored.failures {
                    out.failure(failure);
                }
            }
        }
        Err(e) => out.failure(&format!("the async runtime: {e}")),
    }
    eprintln!("cache: write: {}", registry.tally().since(before));
    out
}

/// Stages of a part stored at once.
const CONCURRENT_STORES: usize = 4;

/// What storing one stage came to.
struct StageStored {
    stored: bool,
    failures: Vec<String>,
}

/// Stores stage `i` under its keys, then its checkpoints (but those it started from: the
/// cache has them).
async fn store_stage(store: &Store<'_>, ws: &Workspace, ran: &Ran, i: usize) -> StageStored {
    let Ran {
        keys,
        resumed,
        outputs,
        ..
    } = ran;
    let mut out = StageStored {
        stored: false,
        failures: Vec::new(),
    };
    let fast = keys.fast(i);
    let slow = keys.slow(i, outputs);
    if fast.is_none() && slow.is_none() {
        return out;
    }
    let lineage = keys.lineage(i);
    let exports = outputs[&i].exports.as_ref();
    let stored = match check_outputs(ws, i, &outputs[&i]) {
        Ok(()) => {
            store
                .write(ws, i, lineage, exports, fast, slow.as_ref())
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        eprintln!("warning: cache: storing stage #{i}: {e}");
        out.failures.push(format!("stage #{i}: {e}"));
        return out;
    }
    out.stored = true;
    eprintln!("cache: stage #{i} stored");
    let after = resumed.get(&i).copied().unwrap_or(0);
    let prefixes: BTreeMap<usize, _> = keys
        .prefixes(i)
        .into_iter()
        .filter(|(steps, _)| *steps > after)
        .collect();
    if prefixes.is_empty() {
        return out;
    }
    match store
        .write_prefixes(ws, i, lineage, &outputs[&i], &prefixes)
        .await
    {
        Ok(n) => eprintln!("cache: stage #{i}: {n} checkpoints stored"),
        Err(e) => {
            eprintln!("warning: cache: storing stage #{i}'s checkpoints: {e}");
            out.failures.push(format!("stage #{i}'s checkpoints: {e}"));
        }
    }
    out
}

fn read_keys(ws: &Workspace, digests: &Digests) -> Result<KeysFile, TrustError> {
    let rel = std::path::Path::new(KEYS_FILE);
    let bytes = trusted::read_verified(&ws.root, rel, digests.cache_keys.as_ref(), JSON_CAP)?;
    serde_json::from_slice(&bytes).map_err(|source| TrustError::Json {
        file: KEYS_FILE.into(),
        source,
    })
}

/// What stage `index` left is what its pod reported (and the controller holds).
fn check_outputs(ws: &Workspace, index: usize, want: &Outputs) -> Result<(), CacheError> {
    let got = trusted::outputs(ws, index)?;
    if &got != want {
        return Err(CacheError::Modified { index });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(stages: &[usize], needs: &[usize]) -> StageJob {
        StageJob {
            stages: stages.to_vec(),
            needs: needs.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_job_only_restored_stages_read_is_not_run() {
        // The Go example with the final stage (3) restored: [base, builder] is read by no Job
        // left, and is not the target's.
        assert!(needed(vec![job(&[0, 1], &[])], 3).is_empty());
        // The final stage runs: it reads the builder.
        let left = needed(vec![job(&[0, 1], &[]), job(&[3], &[1])], 3);
        assert_eq!(left.len(), 2);
        // A chain of unread Jobs goes whole: 0 is read only by 1, which nothing reads.
        let left = needed(vec![job(&[0], &[]), job(&[1], &[0]), job(&[2], &[])], 2);
        assert_eq!(left, vec![job(&[2], &[])]);
    }
}
