//! The workspace a build's steps share (a directory locally, the build's volume in a cluster),
//! and the JSON files that pass results between them. Whoever prepares a build writes the
//! plan, the Dockerfile, the context and one `images/<key>.json` per external image; each stage
//! writes `stages/<N>/result.json`, its layers and its exports; the push step reads them.
//!
//! ```text
//! plan.json  Dockerfile  context/
//! images/<key>.json            an external image: digest, config, layers
//! images/<key>/rootfs/         its unpacked tree, when a stage copies from it
//! stages/<N>/result.json       the stage's config, history, layers (its chain's) and variables
//! stages/<N>/layers/<hex>.tar.gz
//! stages/<N>/exports.tar       the paths later stages COPY --from or mount from this one
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fs::{PathError, at};
use crate::stage::config::{Config, History};

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

/// A layer blob: where it is in the workspace (or blob cache) and its digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRef {
    /// A path relative to the workspace, or absolute (a shared blob cache).
    pub path: String,
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
}

/// An external image a build uses, resolved to a digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    /// The reference as written in the Dockerfile.
    pub reference: String,
    /// `registry/repository@sha256:...` of the platform's image manifest.
    pub pinned: String,
    pub digest: String,
    /// The image config JSON as the registry serves it.
    pub config: serde_json::Value,
    pub layers: Vec<LayerRef>,
}

impl ImageInfo {
    /// The runtime part of the config, in Slipway's types.
    pub fn runtime_config(&self) -> Config {
        self.config
            .get("config")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default()
    }

    /// The history, made to agree with the layers (one non-empty entry per layer) when the
    /// image's own does not.
    pub fn history(&self) -> Vec<History> {
        let h: Vec<History> = self
            .config
            .get("history")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        if h.iter().filter(|e| !e.empty_layer).count() == self.layers.len() {
            return h;
        }
        self.layers
            .iter()
            .map(|_| History {
                created_by: format!("layer of {}", self.reference),
                ..Default::default()
            })
            .collect()
    }
}

/// What a stage leaves for the stages built on it and for the push step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageResult {
    pub index: usize,
    pub name: Option<String>,
    /// The external image at the root of this stage's FROM chain; `None` for scratch.
    pub base: Option<String>,
    pub config: Config,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// Base history, then every history entry the chain's stages added.
    pub history: Vec<History>,
    /// The layers the chain's stages made (base image layers not included), in order.
    pub layers: Vec<LayerRef>,
    /// Variables for expansion in stages built on this one (ENV and ARG values), in order.
    pub vars: Vec<(String, String)>,
    /// ARG values in scope at the end of the stage (they reach RUN as environment).
    pub args: Vec<(String, String)>,
}

/// A short file-name key for an image reference.
pub fn image_key(reference: &str) -> String {
    let h = Sha256::digest(reference.as_bytes());
    hex::encode(&h[..8])
}

impl Workspace {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Workspace { root: root.into() }
    }
    pub fn plan(&self) -> PathBuf {
        self.root.join("plan.json")
    }
    pub fn dockerfile(&self) -> PathBuf {
        self.root.join("Dockerfile")
    }
    pub fn context(&self) -> PathBuf {
        self.root.join("context")
    }
    pub fn image_info(&self, reference: &str) -> PathBuf {
        self.root
            .join("images")
            .join(format!("{}.json", image_key(reference)))
    }
    pub fn image_rootfs(&self, reference: &str) -> PathBuf {
        self.root
            .join("images")
            .join(image_key(reference))
            .join("rootfs")
    }
    pub fn stage_dir(&self, index: usize) -> PathBuf {
        self.root.join("stages").join(index.to_string())
    }
    pub fn stage_result(&self, index: usize) -> PathBuf {
        self.stage_dir(index).join("result.json")
    }
    pub fn stage_layers(&self, index: usize) -> PathBuf {
        self.stage_dir(index).join("layers")
    }
    pub fn stage_exports(&self, index: usize) -> PathBuf {
        self.stage_dir(index).join("exports.tar")
    }
    /// A failed stage's one-line message.
    pub fn stage_error(&self, index: usize) -> PathBuf {
        self.stage_dir(index).join("error.txt")
    }
    /// Scratch space of a running stage (extracted exports, mount sources); never a layer.
    pub fn stage_work(&self, index: usize) -> PathBuf {
        self.stage_dir(index).join("work")
    }
    /// A layer's file, resolving workspace-relative paths.
    pub fn layer_path(&self, layer: &LayerRef) -> PathBuf {
        let p = Path::new(&layer.path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }
}

/// A workspace file could not be read or written; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn json_at(path: &Path) -> impl FnOnce(serde_json::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Json {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a JSON file of the workspace, naming it in the error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, WorkspaceError> {
    let text = std::fs::read(path).map_err(at(path))?;
    serde_json::from_slice(&text).map_err(json_at(path))
}

/// Writes a JSON file atomically (temporary file, then rename), so a reader never sees half.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), WorkspaceError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(json_at(path))?;
    std::fs::write(&tmp, text).map_err(at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(at(path))?;
    Ok(())
}
