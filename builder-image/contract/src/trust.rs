//! What a build pod may believe of the workspace (security review H1). Every stage pod can
//! run a user's code, so a file in the workspace is only what its writer wrote if its digest
//! says so: the prepare step reports the digests of the files it wrote ([`Inputs`], in the
//! graph), each stage pod the digests of its own outputs ([`Outputs`], in its result), the
//! controller keeps them, and each later pod is given exactly the digests of what it reads
//! ([`Digests`], rendered by [`Trusted::for_stage_job`] and [`Trusted::for_push`]). A pod
//! reads such a file only when it matches. Local mode's host plays the controller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};
use crate::graph::{BuildGraph, StageJob};
use crate::pod::Digests;

/// The digests of the files the prepare step (or local mode's host) wrote into the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    /// `plan.json`.
    pub plan: Digest,
    /// `Dockerfile`.
    pub dockerfile: Digest,
    /// `Dockerfile.dockerignore`, when the build has one of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<Digest>,
    /// Each `images/<key>.json`, by the reference as the Dockerfile names it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, Digest>,
    /// `cache-keys.json`, when the build uses the layer cache: what the push step stores the
    /// stages that ran under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_keys: Option<Digest>,
}

/// The digests of what one stage wrote for the stages after it and the push step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    /// `stages/<N>/result.json`.
    pub result: Digest,
    /// `stages/<N>/exports.tar`, when the stage exports anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exports: Option<Digest>,
}

/// A `PAIR=DIGEST` argument that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    #[error("{0:?}: want NAME=DIGEST")]
    Shape(String),
    #[error("{0:?}: want a stage index before =")]
    Index(String),
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// `images/<key>.json`'s digest, by image reference: `REFERENCE=DIGEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDigest {
    pub reference: String,
    pub digest: Digest,
}

/// A stage file's digest, by stage index: `N=DIGEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageDigest {
    pub index: usize,
    pub digest: Digest,
}

/// `NAME` and `DIGEST` of `NAME=DIGEST`; a digest holds no `=`, an image reference neither.
fn pair(s: &str) -> Result<(&str, Digest), PairError> {
    match s.rsplit_once('=') {
        Some((name, d)) if !name.is_empty() => Ok((name, Digest::parse(d)?)),
        _ => Err(PairError::Shape(s.to_string())),
    }
}

impl FromStr for ImageDigest {
    type Err = PairError;
    fn from_str(s: &str) -> Result<Self, PairError> {
        let (reference, digest) = pair(s)?;
        Ok(ImageDigest {
            reference: reference.to_string(),
            digest,
        })
    }
}

impl fmt::Display for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.reference, self.digest)
    }
}

impl FromStr for StageDigest {
    type Err = PairError;
    fn from_str(s: &str) -> Result<Self, PairError> {
        let (index, digest) = pair(s)?;
        let index = index.parse().map_err(|_| PairError::Index(s.to_string()))?;
        Ok(StageDigest { index, digest })
    }
}

impl fmt::Display for StageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.index, self.digest)
    }
}

/// A digest the controller should hold and does not: the pod cannot be given it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    #[error("the prepare step reported no digest for the image {0}")]
    Image(String),
    #[error("stage #{0} reported no digest for its result")]
    Stage(usize),
    #[error("no Job runs the target stage #{0}")]
    Target(usize),
}

/// What a pod took of the stages it awaited (`--await-outputs`), by stage index: the
/// outputs it read from each one's `outputs.json`.
pub type Awaited = BTreeMap<usize, Outputs>;

/// How what a pod awaited compares with what the stages' own pods reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwaitedCheck {
    /// Every stage it took reported the same outputs.
    Agrees,
    /// A stage it took has not been seen to finish yet: ask again once it has.
    Unknown(usize),
    /// A stage's `outputs.json` said other than its pod reported when it ended.
    Differs(usize),
}

/// Compares `awaited` with `known`, the outputs the stages' pods reported.
pub fn check_awaited(awaited: &Awaited, known: &BTreeMap<usize, Outputs>) -> AwaitedCheck {
    for (index, took) in awaited {
        match known.get(index) {
            None => return AwaitedCheck::Unknown(*index),
            Some(out) if out != took => return AwaitedCheck::Differs(*index),
            Some(_) => {}
        }
    }
    AwaitedCheck::Agrees
}

/// What the controller holds of a build's workspace: the prepare step's digests and each
/// finished stage's.
#[derive(Debug, Clone, Copy)]
pub struct Trusted<'a> {
    pub inputs: &'a Inputs,
    /// By stage index.
    pub stages: &'a BTreeMap<usize, Outputs>,
    /// Stages not finished whose pods are on their node: a pod made now may await their
    /// outputs (`--await-outputs`) instead of being given them.
    pub running: Option<&'a BTreeSet<usize>>,
}

impl Trusted<'_> {
    fn base(&self) -> Digests {
        Digests::new(self.inputs.plan.clone())
    }

    fn add_image(&self, d: &mut Digests, reference: &str) -> Result<(), Missing> {
        let digest = self
            .inputs
            .images
            .get(reference)
            .ok_or_else(|| Missing::Image(reference.to_string()))?;
        d.images.push(ImageDigest {
            reference: reference.to_string(),
            digest: digest.clone(),
        });
        Ok(())
    }

    fn add_stage(&self, d: &mut Digests, index: usize) -> Result<(), Missing> {
        match self.stages.get(&index) {
            Some(out) => d.add_outputs(index, out),
            None if self.awaitable(index) => d.awaits.push(index),
            None => return Err(Missing::Stage(index)),
        }
        Ok(())
    }

    fn awaitable(&self, index: usize) -> bool {
        self.running.is_some_and(|r| r.contains(&index))
    }

    /// What a stage Job reads: the plan, the Dockerfile and its ignore file, the JSON of the
    /// images it builds on or copies from, and the results and exports of the stages of other
    /// Jobs it needs (its chain's parent among them).
    pub fn for_stage_job(&self, job: &StageJob) -> Result<Digests, Missing> {
        let mut d = Digests {
            dockerfile: Some(self.inputs.dockerfile.clone()),
            ignore: self.inputs.ignore.clone(),
            ..self.base()
        };
        for reference in &job.images {
            self.add_image(&mut d, reference)?;
        }
        for &n in &job.needs {
            self.add_stage(&mut d, n)?;
        }
        d.resumes = job
            .resumes
            .iter()
            .filter(|(i, _)| job.stages.contains(i))
            .map(|(i, digest)| StageDigest {
                index: *i,
                digest: digest.clone(),
            })
            .collect();
        Ok(d)
    }

    /// What the push step reads: the plan, the target's result and its base image's JSON;
    /// with the layer cache, also `cache-keys.json` and every stage's result and exports (it
    /// stores the stages that ran).
    pub fn for_push(&self, graph: &BuildGraph) -> Result<Digests, Missing> {
        let mut d = self.base();
        if !graph.has_target() {
            return Err(Missing::Target(graph.target));
        }
        if let Some(b) = graph.target_base() {
            self.add_image(&mut d, b)?;
        }
        if graph.cache.is_some() {
            self.add_stage(&mut d, graph.target)?;
            d.cache_keys = self.inputs.cache_keys.clone();
            for (index, out) in self.stages {
                d.add_outputs(*index, out);
            }
            // It stores every stage that ran: those still running too.
            let target = graph.target;
            let others = self.running.into_iter().flatten().filter(|i| **i != target);
            d.awaits
                .extend(others.filter(|i| !self.stages.contains_key(i)));
        } else {
            match self.stages.get(&graph.target) {
                Some(out) => d.results.push(StageDigest {
                    index: graph.target,
                    digest: out.result.clone(),
                }),
                None if self.awaitable(graph.target) => d.awaits.push(graph.target),
                None => return Err(Missing::Stage(graph.target)),
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).expect("digest")
    }

    fn inputs() -> Inputs {
        Inputs {
            cache_keys: None,
            plan: digest('1'),
            dockerfile: digest('2'),
            ignore: None,
            images: BTreeMap::from([
                ("golang".to_string(), digest('3')),
                ("busybox".to_string(), digest('4')),
                ("reg:5000/tools:1".to_string(), digest('5')),
            ]),
        }
    }

    fn outputs(r: char, e: Option<char>) -> Outputs {
        Outputs {
            result: digest(r),
            exports: e.map(digest),
        }
    }

    #[test]
    fn pairs_parse_and_print_back() {
        let i: ImageDigest = format!("reg:5000/a/b:1={}", digest('a'))
            .parse()
            .expect("pair");
        assert_eq!(i.reference, "reg:5000/a/b:1");
        assert_eq!(i.to_string(), format!("reg:5000/a/b:1={}", digest('a')));
        let s: StageDigest = format!("12={}", digest('b')).parse().expect("pair");
        assert_eq!((s.index, s.digest.clone()), (12, digest('b')));
        assert_eq!(s.to_string(), format!("12={}", digest('b')));
        for bad in [
            "x".to_string(),
            format!("={}", digest('a')),
            "3=sha256:../../x".to_string(),
        ] {
            assert!(bad.parse::<ImageDigest>().is_err(), "{bad}");
        }
        assert_eq!(
            format!("x={}", digest('a')).parse::<StageDigest>(),
            Err(PairError::Index(format!("x={}", digest('a'))))
        );
    }

    #[test]
    fn a_stage_job_gets_exactly_what_it_reads() {
        let inputs = inputs();
        let stages = BTreeMap::from([
            (0, outputs('6', None)),
            (1, outputs('7', Some('8'))),
            (2, outputs('9', None)),
        ]);
        let t = Trusted {
            inputs: &inputs,
            stages: &stages,
            running: None,
        };
        let job = StageJob {
            stages: vec![3, 4],
            needs: vec![1],
            images: vec!["busybox".into(), "reg:5000/tools:1".into()],
            // A checkpoint for one of its stages, and one for a stage not its own.
            resumes: BTreeMap::from([(4, digest('9')), (1, digest('6'))]),
            ..Default::default()
        };
        let d = t.for_stage_job(&job).expect("digests");
        assert_eq!((d.resume(4), d.resume(1)), (Some(&digest('9')), None));
        assert_eq!(d.plan, digest('1'));
        assert_eq!(d.dockerfile, Some(digest('2')));
        assert_eq!(d.ignore, None);
        assert_eq!(d.image("busybox"), Some(&digest('4')));
        assert_eq!(d.image("reg:5000/tools:1"), Some(&digest('5')));
        assert_eq!(d.image("golang"), None, "not an image the Job reads");
        assert_eq!(d.result(1), Some(&digest('7')));
        assert_eq!(d.exports(1), Some(&digest('8')));
        assert_eq!(d.result(0), None, "not a stage the Job needs");
        let lacking = StageJob {
            needs: vec![5],
            ..job.clone()
        };
        assert_eq!(t.for_stage_job(&lacking), Err(Missing::Stage(5)));
        let unknown = StageJob {
            images: vec!["alpine".into()],
            ..job
        };
        assert_eq!(
            t.for_stage_job(&unknown),
            Err(Missing::Image("alpine".into()))
        );
    }

    #[test]
    fn the_push_step_gets_the_plan_the_targets_result_and_its_base() {
        let inputs = inputs();
        let stages = BTreeMap::from([(0, outputs('6', Some('7'))), (2, outputs('9', None))]);
        let t = Trusted {
            inputs: &inputs,
            stages: &stages,
            running: None,
        };
        let graph = BuildGraph {
            cache: None,
            target: 2,
            jobs: vec![
                StageJob {
                    stages: vec![0],
                    base: Some("golang".into()),
                    images: vec!["golang".into()],
                    ..Default::default()
                },
                StageJob {
                    stages: vec![1, 2],
                    needs: vec![0],
                    base: Some("busybox".into()),
                    images: vec!["busybox".into()],
                    ..Default::default()
                },
            ],
            inputs: None,
            source_time: None,
            source_revision: None,
        };
        let d = t.for_push(&graph).expect("digests");
        assert_eq!(d.plan, digest('1'));
        assert_eq!(d.dockerfile, None);
        assert_eq!(d.images.len(), 1);
        assert_eq!(d.image("busybox"), Some(&digest('4')));
        assert_eq!(d.results.len(), 1);
        assert_eq!(d.result(2), Some(&digest('9')));
        assert!(d.exports.is_empty());
        let scratch = BuildGraph {
            cache: None,
            target: 0,
            jobs: vec![StageJob {
                stages: vec![0],
                ..Default::default()
            }],
            inputs: None,
            source_time: None,
            source_revision: None,
        };
        let d = t.for_push(&scratch).expect("digests");
        assert!(d.images.is_empty());
        assert_eq!(d.result(0), Some(&digest('6')));
        let not_done = BuildGraph { target: 1, ..graph };
        assert_eq!(t.for_push(&not_done), Err(Missing::Stage(1)));
    }

    #[test]
    fn a_push_with_the_cache_gets_every_stage_and_the_keys_even_for_a_restored_target() {
        use crate::graph::{CachePlan, CachedStage, KeyKind};
        let mut inputs = inputs();
        inputs.cache_keys = Some(digest('c'));
        let stages = BTreeMap::from([(0, outputs('6', Some('7'))), (2, outputs('9', None))]);
        let t = Trusted {
            inputs: &inputs,
            stages: &stages,
            running: None,
        };
        // Every stage hit: no Job at all, the target's base from its cache entry.
        let graph = BuildGraph {
            target: 2,
            cache: Some(CachePlan {
                cached: vec![CachedStage {
                    index: 2,
                    name: None,
                    outputs: outputs('9', None),
                    key: KeyKind::Fast,
                    layers: 1,
                    bytes: 1,
                    base: Some("busybox".into()),
                    image: Some("busybox@sha256:00".into()),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = t.for_push(&graph).expect("digests");
        assert_eq!(d.image("busybox"), Some(&digest('4')));
        assert_eq!(d.cache_keys, Some(digest('c')));
        assert_eq!(d.result(0), Some(&digest('6')));
        assert_eq!(d.exports(0), Some(&digest('7')));
        assert_eq!(d.result(2), Some(&digest('9')));
        // A target neither run nor restored is refused.
        let lost = BuildGraph {
            cache: Some(CachePlan::default()),
            ..graph
        };
        assert_eq!(t.for_push(&lost), Err(Missing::Target(2)));
    }

    #[test]
    fn a_pod_made_while_a_stage_it_needs_runs_awaits_it_and_is_checked_after() {
        let inputs = inputs();
        let stages = BTreeMap::from([(0, outputs('6', None))]);
        let running = BTreeSet::from([1, 2]);
        let t = Trusted {
            inputs: &inputs,
            stages: &stages,
            running: Some(&running),
        };
        let job = StageJob {
            stages: vec![3],
            needs: vec![0, 1],
            ..Default::default()
        };
        let d = t.for_stage_job(&job).expect("digests");
        assert_eq!((d.result(0), d.result(1)), (Some(&digest('6')), None));
        assert_eq!(d.awaits, vec![1]);
        // A stage neither done nor running on its node is still missing.
        let lacking = StageJob {
            needs: vec![5],
            ..job
        };
        assert_eq!(t.for_stage_job(&lacking), Err(Missing::Stage(5)));
        let graph = BuildGraph {
            target: 2,
            jobs: vec![StageJob {
                stages: vec![2],
                ..Default::default()
            }],
            ..Default::default()
        };
        let d = t.for_push(&graph).expect("digests");
        assert_eq!((d.results.len(), d.awaits.clone()), (0, vec![2]));
        // With the cache, the push stores every stage: it awaits all those running.
        let cached = BuildGraph {
            cache: Some(Default::default()),
            ..graph
        };
        let d = t.for_push(&cached).expect("digests");
        assert_eq!(d.awaits, vec![2, 1]);
        assert_eq!(d.result(0), Some(&digest('6')));

        let took = BTreeMap::from([(1, outputs('7', Some('8')))]);
        let mut known = stages.clone();
        assert_eq!(check_awaited(&took, &known), AwaitedCheck::Unknown(1));
        known.insert(1, outputs('7', None));
        assert_eq!(check_awaited(&took, &known), AwaitedCheck::Differs(1));
        known.insert(1, outputs('7', Some('8')));
        assert_eq!(check_awaited(&took, &known), AwaitedCheck::Agrees);
        assert_eq!(
            check_awaited(&BTreeMap::new(), &known),
            AwaitedCheck::Agrees
        );
    }
}
