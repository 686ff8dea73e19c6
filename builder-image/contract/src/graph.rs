//! The graph of stage Jobs a build runs, and the one scheduler over it.
//!
//! The prepare pod computes the graph from the plan and hands it to the controller; the
//! controller starts Jobs as [`BuildGraph::ready`] says; local mode runs one container per Job
//! the same way; `slipway-operator schedule` prints [`BuildGraph::waves`]. One function decides
//! readiness for all three, so they cannot disagree.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use slipway_frontend::plan::{Base, Plan};

use crate::digest::Digest;
use crate::trust::{Inputs, Outputs};

/// The stages to run, as Jobs: one per fused FROM-chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildGraph {
    /// The stage whose image is pushed.
    pub target: usize,
    pub jobs: Vec<StageJob>,
    /// The digests of the files the prepare step wrote into the workspace, which every later
    /// pod is given and checks ([`crate::trust`]); `None` from a prepare step that did not
    /// report them (the controller then starts no stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Inputs>,
    /// The commit time (seconds) of a git source, as the fetch step found it: what
    /// `sourceDateEpoch: git` stamps ([`crate::epoch::resolve`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_time: Option<u64>,
    /// The commit a git source was checked out at, as the fetch step found it (full hex):
    /// the status' `sourceRevision` and the image's `org.opencontainers.image.revision`.
    /// Read through [`BuildGraph::revision`], which takes only a well-formed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
    /// What the prepare step found in the layer cache; `None` for a build without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePlan>,
}

/// How a cache entry's key was made: before anything ran (from the keys of the stages it
/// needs), or from what the stages it needs produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyKind {
    Fast,
    Slow,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Fast => "fast",
            KeyKind::Slow => "slow",
        }
    }
}

/// The layer cache's part of a build's graph: the stages restored instead of run (no Job
/// has them: the graph's Jobs are what is left to run), and what was not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachePlan {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cached: Vec<CachedStage>,
    /// Stages looked up and not found, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub misses: Vec<usize>,
    /// Stages never cached (`ADD` of a URL without a checksum, of a git repository).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncacheable: Vec<usize>,
    /// Stages that missed and run from a checkpoint of the cache (a prefix hit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed: Vec<ResumedStage>,
}

/// A stage that runs from a checkpoint the prepare step restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumedStage {
    pub index: usize,
    /// Its instructions the checkpoint covers (not run).
    pub steps: usize,
    /// Its own layers from the cache.
    pub layers: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// A stage restored from the cache into the workspace by the prepare step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedStage {
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The digests of what the restored files are, checked by the prepare step: what later
    /// pods are given, as for a stage that ran.
    pub outputs: Outputs,
    pub key: KeyKind,
    /// Its layers, all from the cache.
    pub layers: usize,
    /// Bytes of layers and exports not made again.
    pub bytes: u64,
    /// The external image at the root of its FROM chain (`None` for scratch): the base of
    /// the image when it is the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// That image pinned by digest, as the Job that would have run it had it for its pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl CachePlan {
    pub fn stage(&self, index: usize) -> Option<&CachedStage> {
        self.cached.iter().find(|c| c.index == index)
    }

    pub fn resumed(&self, index: usize) -> Option<&ResumedStage> {
        self.resumed.iter().find(|r| r.index == index)
    }

    /// Bytes of the restored stages and of the checkpoints stages run from.
    pub fn bytes_reused(&self) -> u64 {
        self.cached.iter().map(|c| c.bytes).sum::<u64>()
            + self.resumed.iter().map(|r| r.bytes).sum::<u64>()
    }
}

/// Whether `s` is a git object id as `git rev-parse` prints it: 40 (SHA-1) or 64 (SHA-256)
/// lowercase hex digits.
pub fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One stage Job: a chain of stages run one after the other in one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageJob {
    /// Stage indices, parent first.
    pub stages: Vec<usize>,
    /// The stages' names (`None` for an unnamed stage), in the same order.
    pub names: Vec<Option<String>>,
    /// Stages of other Jobs that must be done before this Job starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<usize>,
    /// The pod's image: the chain's base pinned by digest; `None` for a FROM scratch chain
    /// (the pod runs the builder image and the engine roots the stage in the workspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Secret ids its RUN commands mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_mounts: bool,
    /// The external image at the root of the chain, as the Dockerfile names it (`None` for
    /// scratch): the base of the image a target in this chain pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The external images whose `images/<key>.json` the chain reads, as the Dockerfile names
    /// them: its first stage's FROM image and the images its stages copy or mount from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// `resume/<N>/checkpoint.json`'s digest, by stage, for each of its stages that starts
    /// from a checkpoint of the layer cache (a prefix hit the trusted side restored).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resumes: BTreeMap<usize, Digest>,
}

impl StageJob {
    /// The Job's name in status and object names: the last stage's name, or its index.
    pub fn label(&self) -> String {
        let last = self.stages.len().saturating_sub(1);
        match self.names.get(last).cloned().flatten() {
            Some(n) => n,
            None => self
                .stages
                .get(last)
                .map(|i| i.to_string())
                .unwrap_or_default(),
        }
    }
}

impl BuildGraph {
    /// The Jobs of a plan whose external images are resolved: `pinned` maps each reference
    /// as written in the Dockerfile to `registry/repository@sha256:...`.
    pub fn new(plan: &Plan, pinned: &BTreeMap<String, String>) -> Self {
        let jobs = plan
            .fused_chains()
            .into_iter()
            .map(|chain| {
                let stages: Vec<_> = chain.iter().filter_map(|i| plan.stage(*i)).collect();
                let mut needs: Vec<usize> = stages
                    .iter()
                    .flat_map(|s| s.depends_on.iter().copied())
                    .filter(|d| !chain.contains(d))
                    .collect();
                needs.sort();
                needs.dedup();
                let mut secrets: Vec<String> =
                    stages.iter().flat_map(|s| s.secrets.clone()).collect();
                secrets.sort();
                secrets.dedup();
                let mut images: Vec<String> =
                    stages.iter().flat_map(|s| s.images.clone()).collect();
                if let Some(Base::Image(n)) = stages.first().map(|s| &s.from)
                    && n != "scratch"
                {
                    images.push(n.clone());
                }
                images.sort();
                images.dedup();
                let image = match stages.first().map(|s| &s.from) {
                    Some(Base::Image(n)) if n != "scratch" => pinned.get(n).cloned(),
                    // A chain starts at an image or at a stage of another chain; the latter's
                    // root image is the pod's image too.
                    Some(Base::Stage(p)) => {
                        root_image(plan, *p).and_then(|n| pinned.get(&n).cloned())
                    }
                    _ => None,
                };
                StageJob {
                    names: stages.iter().map(|s| s.name.clone()).collect(),
                    cache_mounts: stages.iter().any(|s| s.cache_mounts),
                    base: chain.first().and_then(|i| root_image(plan, *i)),
                    stages: chain,
                    needs,
                    image,
                    secrets,
                    images,
                    resumes: BTreeMap::new(),
                }
            })
            .collect();
        BuildGraph {
            target: plan.target_index,
            jobs,
            inputs: None,
            source_time: None,
            source_revision: None,
            cache: None,
        }
    }

    /// The graph with the digests of the files the prepare step wrote.
    pub fn with_inputs(self, inputs: Inputs) -> Self {
        BuildGraph {
            inputs: Some(inputs),
            ..self
        }
    }

    /// The graph with the git source's commit time.
    pub fn with_source_time(self, source_time: Option<u64>) -> Self {
        BuildGraph {
            source_time,
            ..self
        }
    }

    /// The graph with the git source's commit.
    pub fn with_source_revision(self, source_revision: Option<String>) -> Self {
        BuildGraph {
            source_revision,
            ..self
        }
    }

    /// The git commit, when it is one: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
    pub fn revision(&self) -> Option<&str> {
        self.source_revision.as_deref().filter(|r| is_commit_id(r))
    }

    /// The stage restored from the cache, if `stage` was.
    pub fn cached(&self, stage: usize) -> Option<&CachedStage> {
        self.cache.as_ref().and_then(|c| c.stage(stage))
    }

    /// The stages restored from the cache, by index.
    pub fn cached_stages(&self) -> impl Iterator<Item = &CachedStage> {
        self.cache.iter().flat_map(|c| c.cached.iter())
    }

    /// Whether the target stage is known to the graph: run by a Job or restored.
    pub fn has_target(&self) -> bool {
        self.job_of(self.target).is_some() || self.cached(self.target).is_some()
    }

    /// The external image at the root of the target's chain: the pushed image's base.
    pub fn target_base(&self) -> Option<&str> {
        match self.job_of(self.target) {
            Some(j) => j.base.as_deref(),
            None => self.cached(self.target).and_then(|c| c.base.as_deref()),
        }
    }

    /// Each chain's root image as the Dockerfile names it and pinned (`None` for scratch), in
    /// graph order: the Jobs' and then the restored stages' (whose Jobs are gone).
    pub fn bases(&self) -> impl Iterator<Item = (Option<&str>, Option<&str>)> {
        self.jobs
            .iter()
            .map(|j| (j.base.as_deref(), j.image.as_deref()))
            .chain(
                self.cached_stages()
                    .map(|c| (c.base.as_deref(), c.image.as_deref())),
            )
    }

    /// The Job (by position) that runs `stage`.
    pub fn job_of(&self, stage: usize) -> Option<&StageJob> {
        self.jobs.iter().find(|j| j.stages.contains(&stage))
    }

    /// The images the pod of Job `pos` pulls ahead, for the Jobs that wait on it: a Job's
    /// pod image is pulled by the kubelet only when its pod starts, after everything it needs
    /// is done, so a later stage's base (the Node example's slim image) would be pulled while
    /// nothing else runs. A Job's image is pulled ahead by the first Job it waits on (one
    /// pull ahead per image and Job), unless a Job it waits on runs on that image already.
    pub fn pulls_ahead(&self, pos: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, later) in self.jobs.iter().enumerate() {
            let Some(img) = &later.image else { continue };
            let before = self.waits_on(k);
            if before.first() != Some(&pos)
                || before
                    .iter()
                    .any(|p| self.jobs[*p].image.as_ref() == Some(img))
                || out.contains(img)
            {
                continue;
            }
            out.push(img.clone());
        }
        out
    }

    /// The Jobs (by position) that must be done before Job `k` starts, transitively.
    fn waits_on(&self, k: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![k];
        while let Some(j) = todo.pop() {
            for (p, up) in self.jobs.iter().enumerate() {
                if up.stages.iter().any(|s| self.jobs[j].needs.contains(s)) && seen.insert(p) {
                    todo.push(p);
                }
            }
        }
        seen
    }

    /// The Jobs (by position) that may start now, in graph order, at most `room` of them: not
    /// `started` yet, and every stage they need is in `done`.
    pub fn ready(
        &self,
        done: &BTreeSet<usize>,
        started: &BTreeSet<usize>,
        room: usize,
    ) -> Vec<usize> {
        self.jobs
            .iter()
            .enumerate()
            .filter(|(pos, j)| !started.contains(pos) && j.needs.iter().all(|n| done.contains(n)))
            .map(|(pos, _)| pos)
            .take(room)
            .collect()
    }

    /// The Jobs (by position) grouped into waves, as the operator would start them if every
    /// Job of a wave took as long as the others: each wave holds at most `max_parallel` Jobs
    /// whose needs were done in earlier waves.
    pub fn waves(&self, max_parallel: usize) -> Vec<Vec<usize>> {
        let mut done = BTreeSet::new();
        let mut started = BTreeSet::new();
        let mut out = Vec::new();
        loop {
            let wave = self.ready(&done, &started, max_parallel.max(1));
            if wave.is_empty() {
                break; // everything ran, or a need outside the graph: nothing more can start
            }
            for pos in &wave {
                started.insert(*pos);
                done.extend(self.jobs[*pos].stages.iter().copied());
            }
            out.push(wave);
        }
        out
    }
}

/// The external image at the root of a stage's FROM chain.
pub fn root_image(plan: &Plan, mut index: usize) -> Option<String> {
    loop {
        match &plan.stage(index)?.from {
            Base::Stage(p) => index = *p,
            Base::Image(n) if n == "scratch" => return None,
            Base::Image(n) => return Some(n.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_frontend::plan::{PlanOptions, plan};

    fn pinned(names: &[&str]) -> BTreeMap<String, String> {
        names
            .iter()
            .map(|n| (n.to_string(), format!("{n}@sha256:00")))
            .collect()
    }

    #[test]
    fn jobs_follow_fused_chains_with_pinned_images_and_secrets() {
        let df = "FROM golang AS base\nFROM base AS build\nRUN --mount=type=secret,id=tok true\n\
                  FROM build AS test\nRUN --mount=type=cache,target=/c true\n\
                  FROM scratch AS assets\nCOPY a /a\n\
                  FROM busybox\nCOPY --from=build /out /\nCOPY --from=assets /a /\n";
        let p = plan(df, &PlanOptions::default()).expect("plans");
        let g = BuildGraph::new(&p, &pinned(&["golang", "busybox"]));
        assert_eq!(g.target, 4);
        let by_label: BTreeMap<String, &StageJob> = g.jobs.iter().map(|j| (j.label(), j)).collect();
        assert_eq!(by_label["build"].stages, vec![0, 1]);
        assert_eq!(by_label["build"].image.as_deref(), Some("golang@sha256:00"));
        assert_eq!(by_label["build"].secrets, vec!["tok".to_string()]);
        assert_eq!(by_label["assets"].image, None);
        assert_eq!(by_label["4"].needs, vec![0, 1, 3]);
        assert_eq!(by_label["4"].image.as_deref(), Some("busybox@sha256:00"));
        // What each chain reads of the external images: its root and what it copies from.
        assert_eq!(by_label["build"].base.as_deref(), Some("golang"));
        assert_eq!(by_label["build"].images, vec!["golang".to_string()]);
        assert_eq!(by_label["assets"].base, None);
        assert!(by_label["assets"].images.is_empty());
        assert_eq!(by_label["4"].base.as_deref(), Some("busybox"));
        assert_eq!(g.job_of(4).map(|j| j.label()), Some("4".to_string()));
        assert_eq!(g.job_of(1).map(|j| j.label()), Some("build".to_string()));
        // The tester is not needed by the target, so it is not planned.
        assert!(!by_label.contains_key("test"));
    }

    #[test]
    fn later_bases_are_pulled_ahead_by_the_first_job_they_wait_on() {
        // The Node example: the slim image is pulled while the builder runs.
        let df = "FROM node AS builder\nRUN true\nFROM node-slim\nCOPY --from=builder /a /\n";
        let p = plan(df, &PlanOptions::default()).expect("plans");
        let g = BuildGraph::new(&p, &pinned(&["node", "node-slim"]));
        assert_eq!(g.pulls_ahead(0), vec!["node-slim@sha256:00".to_string()]);
        assert!(g.pulls_ahead(1).is_empty(), "nothing waits on the last Job");
        assert!(g.pulls_ahead(7).is_empty(), "no such Job");
        // A fan-out: the final stage's image once, by the first branch; a branch on the same
        // image as the final stage pulls nothing ahead; a scratch stage has no image to pull.
        let df = "FROM golang AS a\nFROM busybox AS b\nFROM scratch AS c\nCOPY x /x\n\
                  FROM alpine\nCOPY --from=a /a /\nCOPY --from=b /b /\nCOPY --from=c /x /\n\
                  FROM busybox\nCOPY --from=3 / /\n";
        let p = plan(df, &PlanOptions::default()).expect("plans");
        let g = BuildGraph::new(&p, &pinned(&["golang", "busybox", "alpine"]));
        let labels: Vec<String> = g.jobs.iter().map(|j| j.label()).collect();
        assert_eq!(labels, ["a", "b", "c", "3", "4"]);
        assert_eq!(g.pulls_ahead(0), vec!["alpine@sha256:00".to_string()]);
        assert!(g.pulls_ahead(1).is_empty());
        assert!(g.pulls_ahead(2).is_empty());
        // The last stage's busybox: the alpine Job waited on the busybox Job, which pulled it.
        assert!(g.pulls_ahead(3).is_empty());
        // The same chain on one image all along pulls nothing ahead.
        let df = "FROM golang AS a\nRUN true\nFROM golang\nCOPY --from=a /a /\n";
        let p = plan(df, &PlanOptions::default()).expect("plans");
        let g = BuildGraph::new(&p, &pinned(&["golang"]));
        assert!(g.pulls_ahead(0).is_empty());
    }

    #[test]
    fn fused_chains_run_as_one_job_and_waves_count_jobs() {
        // `a` and `d` are one Job (nothing else waits on `a` alone): 2 waves of Jobs, not the
        // 3 waves of stages that a stage-level scheduler would print.
        let df = "FROM busybox AS a\nFROM busybox AS b\nFROM busybox AS c\nFROM a AS d\n\
                  FROM busybox\nCOPY --from=b /b /\nCOPY --from=c /c /\nCOPY --from=d /d /\n";
        let p = plan(df, &PlanOptions::default()).expect("plans");
        let g = BuildGraph::new(&p, &pinned(&["busybox"]));
        let stages = |wave: &[usize]| -> Vec<Vec<usize>> {
            wave.iter().map(|pos| g.jobs[*pos].stages.clone()).collect()
        };
        let waves = g.waves(4);
        assert_eq!(waves.len(), 2);
        assert_eq!(stages(&waves[0]), vec![vec![0, 3], vec![1], vec![2]]);
        assert_eq!(stages(&waves[1]), vec![vec![4]]);
        let two = g.waves(2);
        assert_eq!(two.len(), 3);
        assert_eq!(stages(&two[0]), vec![vec![0, 3], vec![1]]);
    }

    #[test]
    fn ready_respects_needs_started_and_room() {
        let df = "FROM busybox AS a\nFROM busybox AS b\nFROM busybox\nCOPY --from=a /a /\nCOPY --from=b /b /\n";
        let p = plan(df, &PlanOptions::default()).expect("plans");
        let g = BuildGraph::new(&p, &pinned(&["busybox"]));
        let none = BTreeSet::new();
        assert_eq!(g.ready(&none, &none, 8), vec![0, 1]);
        assert_eq!(g.ready(&none, &none, 1), vec![0]);
        assert_eq!(g.ready(&none, &BTreeSet::from([0]), 8), vec![1]);
        assert!(
            g.ready(&BTreeSet::from([0]), &BTreeSet::from([0, 1]), 8)
                .is_empty()
        );
        assert_eq!(
            g.ready(&BTreeSet::from([0, 1]), &BTreeSet::from([0, 1]), 8),
            vec![2]
        );
    }

    #[test]
    fn only_a_commit_id_is_taken_as_the_revision() {
        let g = |r: &str| BuildGraph::default().with_source_revision(Some(r.into()));
        let sha1 = "0123456789abcdef0123456789abcdef01234567";
        let sha256 = "ab".repeat(32);
        assert_eq!(g(sha1).revision(), Some(sha1));
        assert_eq!(g(&sha256).revision(), Some(sha256.as_str()));
        for bad in [
            "",
            "main",
            &sha1[..39],
            &sha1.to_uppercase(),
            &format!("{sha1}\n"),
            &format!("{}=x", &sha1[..38]),
        ] {
            assert_eq!(g(bad).revision(), None, "{bad:?}");
        }
        assert_eq!(BuildGraph::default().revision(), None);
    }
}
