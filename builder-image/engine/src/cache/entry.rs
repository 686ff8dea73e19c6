//! A cache entry as the registry holds it: an OCI image manifest tagged by the stage's key
//! ([`Key::tag`]), whose layers are the stage's own layer blobs (the very blobs its image
//! uses) followed by its `exports.tar` when it has one, and whose config is an [`EntryConfig`]:
//! the records of the keys it was stored under (re-checked on every hit) and the stage's
//! `result.json`, byte for byte.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use slipway_contract::digest::Digest;
use slipway_contract::trust::Outputs;
use slipway_frontend::cache_key::Record;

use crate::registry::manifest::sha256_bytes;
use crate::workspace::{
    LayerRef, RESULT_CAP, Resume, StageResult, check_layer, check_resume_layer,
};

/// What a cache entry's config says it is: another value is not an entry of this scheme.
pub const KIND: &str = "slipway.dev/stage-cache/sw1";
/// What a checkpoint entry's config says it is (a prefix of a stage): its `result` is the
/// `checkpoint.json` the stage resumes from, its layers the stage's own up to there.
pub const PREFIX_KIND: &str = "slipway.dev/stage-prefix-cache/sw1";

pub use slipway_contract::graph::KeyKind;

/// The config blob of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryConfig {
    pub kind: String,
    /// The fast key's record (base64), when the entry is stored under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast: Option<String>,
    /// The slow key's record (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<String>,
    /// `result.json` (base64), as the stage wrote it.
    pub result: String,
    /// Whether the last layer is `exports.tar`.
    pub exports: bool,
}

impl EntryConfig {
    pub fn new(fast: Option<&Record>, slow: Option<&Record>, result: &[u8], exports: bool) -> Self {
        EntryConfig {
            kind: KIND.to_string(),
            fast: fast.map(|r| STANDARD.encode(r.as_bytes())),
            slow: slow.map(|r| STANDARD.encode(r.as_bytes())),
            result: STANDARD.encode(result),
            exports,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why a found entry is not used (a miss, said once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("its config is not a Slipway stage cache entry")]
    NotAnEntry,
    #[error("its {} record is not this stage's (a different input under the same key)", .0.as_str())]
    Record(KeyKind),
    #[error("its result does not parse: {0}")]
    Result(String),
    #[error("its result is for stage #{0}")]
    Index(usize),
    #[error("its layers are not the ones its result lists")]
    Layers,
    #[error("its result names a layer outside the stage's chain: {0}")]
    LayerPath(String),
    #[error("its checkpoint is not the one after instruction {0} of the stage")]
    Checkpoint(usize),
    #[error("it holds the stage's exports but not its layers, which this build reads")]
    NoLayers,
}

/// An entry found under a stage's key and checked against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub index: usize,
    pub kind: KeyKind,
    pub config: EntryConfig,
    /// `result.json`, as the stage wrote it.
    pub result: Vec<u8>,
    /// The stage's layers, as its result lists them (paths in the workspace).
    pub layers: Vec<LayerRef>,
    /// `exports.tar`'s blob.
    pub exports: Option<LayerRef>,
}

impl Hit {
    /// Checks an entry found under `kind`'s key of stage `index` (whose chain is `lineage`)
    /// against `record`: its config, its record, its result and its layers. A stage whose
    /// layers this build reads (`needs_layers`) cannot take an entry stored without them.
    pub fn check(
        index: usize,
        lineage: &[usize],
        needs_layers: bool,
        kind: KeyKind,
        record: &Record,
        config: &[u8],
        mut blobs: Vec<LayerRef>,
    ) -> Result<Hit, Rejected> {
        let config: EntryConfig =
            serde_json::from_slice(config).map_err(|_| Rejected::NotAnEntry)?;
        if config.kind != KIND {
            return Err(Rejected::NotAnEntry);
        }
        let stored = match kind {
            KeyKind::Fast => &config.fast,
            KeyKind::Slow => &config.slow,
        };
        if stored.as_deref() != Some(&STANDARD.encode(record.as_bytes())) {
            return Err(Rejected::Record(kind));
        }
        let result = STANDARD
            .decode(&config.result)
            .map_err(|e| Rejected::Result(e.to_string()))?;
        if result.len() as u64 > RESULT_CAP {
            return Err(Rejected::Result("too large".into()));
        }
        let parsed: StageResult =
            serde_json::from_slice(&result).map_err(|e| Rejected::Result(e.to_string()))?;
        if parsed.index != index {
            return Err(Rejected::Index(parsed.index));
        }
        if needs_layers && parsed.layers_skipped {
            return Err(Rejected::NoLayers);
        }
        let exports = if config.exports { blobs.pop() } else { None };
        if config.exports && exports.is_none() || blobs.len() != parsed.layers.len() {
            return Err(Rejected::Layers);
        }
        for (want, got) in parsed.layers.iter().zip(&blobs) {
            if want.digest != got.digest || want.size != got.size {
                return Err(Rejected::Layers);
            }
            check_layer(want, lineage).map_err(|_| Rejected::LayerPath(want.path.clone()))?;
        }
        Ok(Hit {
            index,
            kind,
            config,
            result,
            layers: parsed.layers,
            exports,
        })
    }

    /// The digests of what the stage left, as the host will find them once restored.
    pub fn outputs(&self) -> Result<Outputs, Rejected> {
        let result = Digest::parse(&sha256_bytes(&self.result))
            .map_err(|e| Rejected::Result(e.to_string()))?;
        let exports = match &self.exports {
            Some(e) => Some(Digest::parse(&e.digest).map_err(|_| Rejected::Layers)?),
            None => None,
        };
        Ok(Outputs { result, exports })
    }

    /// Bytes the hit saves running again: its layers and exports.
    pub fn bytes(&self) -> u64 {
        self.layers
            .iter()
            .chain(&self.exports)
            .map(|l| l.size)
            .sum()
    }
}

/// A checkpoint found under a stage's prefix key and checked against it: the stage can start
/// after its first `steps` instructions.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixHit {
    pub index: usize,
    pub steps: usize,
    /// `checkpoint.json`, as stored.
    pub bytes: Vec<u8>,
    pub resume: Resume,
}

impl PrefixHit {
    /// Checks an entry found under the prefix key of stage `index`'s first `steps`
    /// instructions against `record`: its kind and record, and its checkpoint, whose layers
    /// must be the entry's blobs, each at `resume/<index>/<digest hex>.tar.gz`.
    pub fn check(
        index: usize,
        steps: usize,
        record: &Record,
        config: &[u8],
        blobs: &[LayerRef],
    ) -> Result<PrefixHit, Rejected> {
        let config: EntryConfig =
            serde_json::from_slice(config).map_err(|_| Rejected::NotAnEntry)?;
        if config.kind != PREFIX_KIND {
            return Err(Rejected::NotAnEntry);
        }
        if config.fast.as_deref() != Some(&STANDARD.encode(record.as_bytes())) {
            return Err(Rejected::Record(KeyKind::Fast));
        }
        let bytes = STANDARD
            .decode(&config.result)
            .map_err(|e| Rejected::Result(e.to_string()))?;
        if bytes.len() as u64 > RESULT_CAP {
            return Err(Rejected::Result("too large".into()));
        }
        let resume: Resume =
            serde_json::from_slice(&bytes).map_err(|e| Rejected::Result(e.to_string()))?;
        if resume.index != index {
            return Err(Rejected::Index(resume.index));
        }
        let Some(last) = resume.checkpoints.last() else {
            return Err(Rejected::Checkpoint(steps));
        };
        // Its checkpoints in order, all on one parent, the last one's layers and history
        // those it carries: the shape the stage checks again, refused here as a miss.
        let ordered = resume
            .checkpoints
            .windows(2)
            .all(|w| w[0].steps < w[1].steps);
        let one_parent = resume.checkpoints.iter().all(|c| c.own == last.own);
        let shaped = last.layers == last.own + resume.layers.len()
            && last.history == resume.history.len()
            && last.own == resume.parent.len();
        if last.steps != steps || !ordered || !one_parent || !shaped {
            return Err(Rejected::Checkpoint(steps));
        }
        if config.exports || blobs.len() != resume.layers.len() {
            return Err(Rejected::Layers);
        }
        for (want, got) in resume.layers.iter().zip(blobs) {
            if want.digest != got.digest || want.size != got.size {
                return Err(Rejected::Layers);
            }
            check_resume_layer(want, index).map_err(|_| Rejected::LayerPath(want.path.clone()))?;
        }
        Ok(PrefixHit {
            index,
            steps,
            bytes,
            resume,
        })
    }

    /// Bytes of layers not made again.
    pub fn bytes_reused(&self) -> u64 {
        self.resume.layers.iter().map(|l| l.size).sum()
    }
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
