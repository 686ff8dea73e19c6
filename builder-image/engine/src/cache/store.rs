//! The cache repository: looking a stage's key up ([`Store::lookup`]), putting a hit's files
//! back into the workspace ([`Store::restore`]), and storing a stage that ran
//! ([`Store::write`]). Lookups and writes are best-effort for the caller: an unreachable cache
//! is a miss and a warning, never a failed build.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE;
use slipway_contract::trust::Outputs;
use slipway_frontend::cache_key::Key;

use crate::cache::entry::{EntryConfig, Hit, KeyKind, PREFIX_KIND, PrefixHit, Rejected};
use crate::cache::keys::Keyed;
use crate::registry::client::{BlobSource, ImageToPush, Registry, RegistryError};
use crate::registry::manifest::sha256_bytes;
use crate::trusted::{self, TrustError};
use crate::workspace::{LayerRef, RESULT_CAP, Resume, StageResult, Workspace, read_beneath};
use slipway_contract::digest::Digest;
use slipway_contract::pod::paths;

/// A cache operation that failed: said as a warning, the build goes on without it.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("entry {tag}: {source}")]
    Rejected {
        tag: String,
        #[source]
        source: Rejected,
    },
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("stage #{index}: the restored files are not what the entry says")]
    Restored { index: usize },
    #[error("stage #{index}: its files are not what its pod reported: the workspace was modified")]
    Modified { index: usize },
    #[error("stage #{index}: {source}")]
    Layer {
        index: usize,
        #[source]
        source: crate::workspace::LayerPathError,
    },
    #[error("stage #{index}: {what}")]
    Result { index: usize, what: String },
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The cache repository (`registry/repository`, no tag) and the client that reaches it.
pub struct Store<'a> {
    pub registry: &'a Registry,
    pub repository: String,
    /// Where the image was pushed: a stored layer the cache lacks is mounted from there
    /// ([`ImageToPush::mount_from`]), not uploaded again.
    pub mount_from: Vec<String>,
}

impl Store<'_> {
    fn reference(&self, key: &Key) -> String {
        format!("{}:{}", self.repository, key.tag())
    }

    /// The entry under `keyed`'s key, checked ([`Hit::check`]): `Ok(None)` when there is
    /// none, an error when there is one that cannot be used.
    pub async fn lookup(
        &self,
        index: usize,
        lineage: &[usize],
        needs_layers: bool,
        kind: KeyKind,
        keyed: &Keyed,
    ) -> Result<Option<Hit>, CacheError> {
        let reference = self.reference(&keyed.key);
        let Some((blobs, config)) = self.registry.lookup(&reference).await? else {
            return Ok(None);
        };
        Hit::check(
            index,
            lineage,
            needs_layers,
            kind,
            &keyed.record,
            &config,
            blobs,
        )
        .map(Some)
        .map_err(|source| CacheError::Rejected {
            tag: keyed.key.tag(),
            source,
        })
    }

    /// Writes a hit's result, layers and exports into the workspace, where the stage would
    /// have left them (layers already there, made by a stage that ran, are kept); returns the
    /// digests of what is now there, which must be the entry's. Copies, never links: a blob in
    /// the cache must not become a file a later stage container could write.
    pub async fn restore(&self, ws: &Workspace, hit: &Hit) -> Result<Outputs, CacheError> {
        let index = hit.index;
        let layers_dir = ws.stage_layers(index);
        fs::create_dir_all(&layers_dir).map_err(at(&layers_dir))?;
        for l in &hit.layers {
            let dest = ws.layer_path(l);
            if fs::symlink_metadata(&dest).is_ok() {
                continue;
            }
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(at(parent))?;
            }
            let blob = self.registry.fetch(&self.repository, l).await?;
            fs::copy(&blob, &dest).map_err(at(&dest))?;
        }
        if let Some(e) = &hit.exports {
            let blob = self.registry.fetch(&self.repository, e).await?;
            let dest = ws.stage_exports(index);
            fs::copy(&blob, &dest).map_err(at(&dest))?;
        }
        let dest = ws.stage_result(index);
        fs::write(&dest, &hit.result).map_err(at(&dest))?;
        let got = trusted::outputs(ws, index)?;
        let want = hit.outputs().map_err(|source| CacheError::Rejected {
            tag: String::new(),
            source,
        })?;
        if got != want {
            return Err(CacheError::Restored { index });
        }
        Ok(got)
    }

    /// Stores what stage `index` (whose FROM-chain is `lineage`) left in the workspace under
    /// each key given: its layers (the registry skips those it has), its exports, and its
    /// result. A result naming a layer outside its chain is refused: a stage container wrote
    /// it, and it could name any file of the workspace.
    pub async fn write(
        &self,
        ws: &Workspace,
        index: usize,
        lineage: &[usize],
        exports: Option<&Digest>,
        fast: Option<&Keyed>,
        slow: Option<&Keyed>,
    ) -> Result<(), CacheError> {
        let tags: Vec<String> = fast
            .iter()
            .chain(slow.iter())
            .map(|k| self.reference(&k.key))
            .collect();
        if tags.is_empty() {
            return Ok(());
        }
        let result = read_beneath(&ws.root, &rel(ws, &ws.stage_result(index)), RESULT_CAP)
            .map_err(|e| CacheError::Result {
                index,
                what: e.to_string(),
            })?;
        let parsed: crate::workspace::StageResult =
            serde_json::from_slice(&result).map_err(|e| CacheError::Result {
                index,
                what: e.to_string(),
            })?;
        for l in &parsed.layers {
            crate::workspace::check_layer(l, lineage)
                .map_err(|source| CacheError::Layer { index, source })?;
        }
        let source = BlobSource::Workspace(ws.root.clone());
        let mut layers: Vec<(LayerRef, BlobSource)> = parsed
            .layers
            .iter()
            .map(|l| (l.clone(), source.clone()))
            .collect();
        // The exports by the digest their stage reported: the upload checks the bytes
        // against it, so they are not read a second time to hash them here.
        let exports_path = ws.stage_exports(index);
        let exports = match (fs::symlink_metadata(&exports_path).is_ok(), exports) {
            (false, None) => None,
            (true, Some(d)) => Some(d),
            _ => return Err(CacheError::Modified { index }),
        };
        if let Some(digest) = exports {
            let digest = digest.to_string();
            let size = fs::metadata(&exports_path)
                .map_err(at(&exports_path))?
                .len();
            layers.push((
                LayerRef {
                    path: rel(ws, &exports_path).display().to_string(),
                    digest: digest.clone(),
                    diff_id: digest,
                    size,
                    media_type: IMAGE_LAYER_MEDIA_TYPE.to_string(),
                },
                source.clone(),
            ));
        }
        let config = EntryConfig::new(
            fast.map(|k| &k.record),
            slow.map(|k| &k.record),
            &result,
            exports.is_some(),
        );
        let image = ImageToPush {
            config: config.to_bytes(),
            layers,
            base: None,
            annotations: Default::default(),
            mount_from: self.mount_from.clone(),
        };
        self.registry.push(&tags, &image).await?;
        Ok(())
    }

    /// The checkpoint under the prefix key of stage `index`'s first `steps` instructions,
    /// checked: `Ok(None)` when there is none.
    pub async fn lookup_prefix(
        &self,
        index: usize,
        steps: usize,
        keyed: &Keyed,
    ) -> Result<Option<PrefixHit>, CacheError> {
        let Some((blobs, config)) = self.registry.lookup(&self.reference(&keyed.key)).await? else {
            return Ok(None);
        };
        PrefixHit::check(index, steps, &keyed.record, &config, &blobs)
            .map(Some)
            .map_err(|source| CacheError::Rejected {
                tag: keyed.key.tag(),
                source,
            })
    }

    /// Writes a checkpoint into `resume/<N>/` (its layers, then `checkpoint.json`), where
    /// the stage finds it; returns `checkpoint.json`'s digest, which the stage is given.
    pub async fn restore_prefix(
        &self,
        ws: &Workspace,
        hit: &PrefixHit,
    ) -> Result<Digest, CacheError> {
        let dir = ws.resume_dir(hit.index);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(at(&dir))?;
        for l in &hit.resume.layers {
            let blob = self.registry.fetch(&self.repository, l).await?;
            let dest = ws.layer_path(l);
            fs::copy(&blob, &dest).map_err(at(&dest))?;
        }
        let file = ws.resume_file(hit.index);
        fs::write(&file, &hit.bytes).map_err(at(&file))?;
        Digest::parse(&sha256_bytes(&hit.bytes)).map_err(|e| CacheError::Result {
            index: hit.index,
            what: e.to_string(),
        })
    }

    /// Stores the checkpoints of stage `index`'s result (as the workspace holds it, its
    /// digest the one its stage reported: `outputs`) under their prefix keys, `prefixes`
    /// by instructions covered. Their layers are the stage's own, in the repository once
    /// the stage itself is stored.
    pub async fn write_prefixes(
        &self,
        ws: &Workspace,
        index: usize,
        lineage: &[usize],
        outputs: &Outputs,
        prefixes: &BTreeMap<usize, Keyed>,
    ) -> Result<usize, CacheError> {
        let bytes =
            read_beneath(&ws.root, &rel(ws, &ws.stage_result(index)), RESULT_CAP).map_err(|e| {
                CacheError::Result {
                    index,
                    what: e.to_string(),
                }
            })?;
        if sha256_bytes(&bytes) != outputs.result.to_string() {
            return Err(CacheError::Modified { index });
        }
        let result: StageResult =
            serde_json::from_slice(&bytes).map_err(|e| CacheError::Result {
                index,
                what: e.to_string(),
            })?;
        let source = BlobSource::Workspace(ws.root.clone());
        let mut stored = 0;
        for (n, cp) in result.checkpoints.iter().enumerate() {
            let Some(keyed) = prefixes.get(&cp.steps) else {
                continue;
            };
            let Some(own) = result.layers.get(cp.own..cp.layers) else {
                return Err(CacheError::Result {
                    index,
                    what: format!("checkpoint {} names layers it does not have", cp.steps),
                });
            };
            let mut layers = Vec::new();
            let mut moved = Vec::new();
            for l in own {
                crate::workspace::check_layer(l, lineage)
                    .map_err(|source| CacheError::Layer { index, source })?;
                moved.push(l.moved_to(&paths::resume_dir(index)));
                layers.push((l.clone(), source.clone()));
            }
            let (Some(history), Some(parent)) = (
                result.history.get(..cp.history),
                result.layers.get(..cp.own),
            ) else {
                return Err(CacheError::Result {
                    index,
                    what: format!("checkpoint {} names history it does not have", cp.steps),
                });
            };
            let resume = Resume {
                index,
                checkpoints: result.checkpoints[..=n].to_vec(),
                history: history.to_vec(),
                parent: parent.iter().map(|l| l.digest.clone()).collect(),
                layers: moved,
            };
            let json = serde_json::to_vec(&resume).map_err(|e| CacheError::Result {
                index,
                what: e.to_string(),
            })?;
            let mut config = EntryConfig::new(Some(&keyed.record), None, &json, false);
            config.kind = PREFIX_KIND.to_string();
            let image = ImageToPush {
                config: config.to_bytes(),
                layers,
                base: None,
                annotations: Default::default(),
                mount_from: self.mount_from.clone(),
            };
            self.registry
                .push(&[self.reference(&keyed.key)], &image)
                .await?;
            eprintln!(
                "cache: stage #{index} after its instruction {} stored under {}",
                cp.steps,
                keyed.key.tag()
            );
            stored += 1;
        }
        Ok(stored)
    }

    /// Stores a hit found by its slow key under the fast key too, so the next build finds it
    /// before running anything. Every blob is in the repository already: nothing is read.
    pub async fn alias(&self, hit: &Hit, fast: &Keyed, slow: &Keyed) -> Result<(), CacheError> {
        let config = EntryConfig::new(
            Some(&fast.record),
            Some(&slow.record),
            &hit.result,
            hit.exports.is_some(),
        );
        let source = BlobSource::Workspace(PathBuf::from("/nonexistent"));
        let layers = hit
            .layers
            .iter()
            .chain(&hit.exports)
            .map(|l| (l.clone(), source.clone()))
            .collect();
        let image = ImageToPush {
            config: config.to_bytes(),
            layers,
            base: None,
            annotations: Default::default(),
            mount_from: Vec::new(),
        };
        self.registry
            .push(&[self.reference(&fast.key)], &image)
            .await?;
        Ok(())
    }
}

fn rel(ws: &Workspace, p: &Path) -> PathBuf {
    p.strip_prefix(&ws.root).unwrap_or(p).to_path_buf()
}

/// What the cache did for a build: said at its end (and, on a cluster, in its status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Stages restored, or needed by no stage that ran, by index: how their key hit.
    pub hits: BTreeMap<usize, KeyKind>,
    pub misses: Vec<usize>,
    pub uncacheable: Vec<usize>,
    /// Bytes of layers and exports not made again.
    pub bytes_reused: u64,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cache: {} hits, {} misses, {} not cacheable, {} bytes reused",
            self.hits.len(),
            self.misses.len(),
            self.uncacheable.len(),
            self.bytes_reused
        )
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
