//! The digests of the workspace files a pod reads, as flags (`--plan-digest`, ...): what the
//! controller hands each stage and push pod ([`crate::trust`]).

use clap::Args;

use crate::digest::Digest;
use crate::trust::{ImageDigest, Outputs, StageDigest};

use super::{optional, repeated};

/// The digests of the workspace files a pod reads, as the controller holds them
/// ([`crate::trust`]): a pod reads such a file only when it matches.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// plan.json's digest.
    #[arg(long = "plan-digest", id = "plan_digest", value_name = "DIGEST")]
    pub plan: Digest,
    /// The Dockerfile's digest.
    #[arg(
        long = "dockerfile-digest",
        id = "dockerfile_digest",
        value_name = "DIGEST"
    )]
    pub dockerfile: Option<Digest>,
    /// Dockerfile.dockerignore's digest; without it, the build has no ignore file of its own.
    #[arg(long = "ignore-digest", id = "ignore_digest", value_name = "DIGEST")]
    pub ignore: Option<Digest>,
    /// An images/<key>.json's digest, by image reference (repeatable).
    #[arg(
        long = "image-digest",
        id = "image_digest",
        value_name = "REFERENCE=DIGEST"
    )]
    pub images: Vec<ImageDigest>,
    /// A stages/<N>/result.json's digest (repeatable).
    #[arg(
        long = "result-digest",
        id = "result_digest",
        value_name = "STAGE=DIGEST"
    )]
    pub results: Vec<StageDigest>,
    /// A stages/<N>/exports.tar's digest (repeatable).
    #[arg(
        long = "exports-digest",
        id = "exports_digest",
        value_name = "STAGE=DIGEST"
    )]
    pub exports: Vec<StageDigest>,
    /// A resume/<N>/checkpoint.json's digest (repeatable): stage N starts from a checkpoint
    /// of the layer cache (a prefix hit) instead of its first instruction.
    #[arg(
        long = "resume-digest",
        id = "resume_digest",
        value_name = "STAGE=DIGEST"
    )]
    pub resumes: Vec<StageDigest>,
    /// cache-keys.json's digest (the push step of a build with the layer cache).
    #[arg(
        long = "cache-keys-digest",
        id = "cache_keys_digest",
        value_name = "DIGEST"
    )]
    pub cache_keys: Option<Digest>,
    /// A stage whose outputs the controller did not hold yet, its pod still running when this
    /// one was made (repeatable): this pod takes them from `stages/<N>/outputs.json` once that
    /// pod writes it, and reports what it took; the controller checks it against that pod's
    /// own report ([`crate::trust::Awaited`]).
    #[arg(long = "await-outputs", id = "await_outputs", value_name = "STAGE")]
    pub awaits: Vec<usize>,
}

impl Digests {
    /// The plan's digest and nothing else yet.
    pub fn new(plan: Digest) -> Self {
        Digests {
            plan,
            dockerfile: None,
            ignore: None,
            images: Vec::new(),
            results: Vec::new(),
            exports: Vec::new(),
            resumes: Vec::new(),
            cache_keys: None,
            awaits: Vec::new(),
        }
    }

    pub fn image(&self, reference: &str) -> Option<&Digest> {
        self.images
            .iter()
            .find(|i| i.reference == reference)
            .map(|i| &i.digest)
    }

    pub fn result(&self, index: usize) -> Option<&Digest> {
        find(&self.results, index)
    }

    pub fn exports(&self, index: usize) -> Option<&Digest> {
        find(&self.exports, index)
    }

    pub fn resume(&self, index: usize) -> Option<&Digest> {
        find(&self.resumes, index)
    }

    /// A stage's outputs, replacing what was known of it.
    pub fn add_outputs(&mut self, index: usize, out: &Outputs) {
        self.results.retain(|s| s.index != index);
        self.exports.retain(|s| s.index != index);
        self.results.push(StageDigest {
            index,
            digest: out.result.clone(),
        });
        if let Some(e) = &out.exports {
            self.exports.push(StageDigest {
                index,
                digest: e.clone(),
            });
        }
    }

    pub fn to_args(&self) -> Vec<String> {
        let shown = |v: &Option<Digest>| v.as_ref().map(Digest::to_string);
        let strings = |v: &[StageDigest]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut a = vec!["--plan-digest".to_string(), self.plan.to_string()];
        a.extend(optional("--dockerfile-digest", &shown(&self.dockerfile)));
        a.extend(optional("--ignore-digest", &shown(&self.ignore)));
        let images: Vec<String> = self.images.iter().map(|i| i.to_string()).collect();
        a.extend(repeated("--image-digest", &images));
        a.extend(repeated("--result-digest", &strings(&self.results)));
        a.extend(repeated("--exports-digest", &strings(&self.exports)));
        a.extend(repeated("--resume-digest", &strings(&self.resumes)));
        a.extend(optional("--cache-keys-digest", &shown(&self.cache_keys)));
        let awaits: Vec<String> = self.awaits.iter().map(usize::to_string).collect();
        a.extend(repeated("--await-outputs", &awaits));
        a
    }
}

fn find(v: &[StageDigest], index: usize) -> Option<&Digest> {
    v.iter().find(|s| s.index == index).map(|s| &s.digest)
}
