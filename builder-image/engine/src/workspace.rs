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
//!
//! Everything a stage can write is untrusted where the host (local mode) or another pod reads
//! it: [`open_beneath`] opens a workspace file without following a symlink in any component,
//! only a regular file, and [`Workspace::read_stage_error`] and
//! [`Workspace::read_stage_result`] cap what they read and check every layer path and digest
//! of a result.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fs::{PathError, at};
use crate::registry::digest::{DigestError, sha256_hex};
use crate::stage::config::{Config, History};

/// The most of a stage's error file the host reads: a one-line message, cut beyond this.
pub const ERROR_CAP: u64 = 8 << 10;
/// The largest stage result (`stages/<N>/result.json`) the host reads.
pub const RESULT_CAP: u64 = 8 << 20;
/// The largest workspace JSON file [`read_json`] reads.
pub const JSON_CAP: u64 = 64 << 20;

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

impl LayerRef {
    /// The same blob under its own file name in `dir` (workspace-relative): a checkpoint's
    /// layers move between a stage's `layers/` folder and `resume/<N>/`.
    pub fn moved_to(&self, dir: &str) -> LayerRef {
        let name = self.path.rsplit('/').next().unwrap_or_default();
        LayerRef {
            path: format!("{dir}/{name}"),
            ..self.clone()
        }
    }
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
    /// The stage's state after each of its RUN steps but the last instruction: what the
    /// layer cache stores for a later build whose stage agrees up to there (a prefix hit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<Checkpoint>,
    /// The stage made no layers (`--layers`: nothing reads them): `layers` is empty whatever
    /// its instructions wrote, so a cache entry of it serves only readers of its exports.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub layers_skipped: bool,
}

/// A stage's state after one of its instructions: everything its later instructions read
/// besides the tree (which its layers make), so a stage started from it runs them as the
/// stage that wrote it would have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The stage's own instructions done (a stage whose base has ONBUILD triggers has no
    /// checkpoints).
    pub steps: usize,
    /// The result's `layers[own..layers]` are the stage's own, made by those steps (the ones
    /// before `own` are its FROM-chain's).
    pub own: usize,
    pub layers: usize,
    pub config: Config,
    /// The result's `history[..history]` was written by then (the entries themselves are
    /// the result's: a copy per checkpoint would grow the result with RUNs × history).
    pub history: usize,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// CMD was set by one of those steps (so a later ENTRYPOINT keeps it).
    #[serde(default)]
    pub cmd_set: bool,
    pub vars: Vec<(String, String)>,
    pub args: Vec<(String, String)>,
}

/// `resume/<N>/checkpoint.json`: where stage N starts, restored from the layer cache. The
/// last checkpoint is the one it starts from (the ones before go into its result again, as a
/// stage that ran from the start would list them); `layers` are its own layers up to there,
/// each `resume/<N>/<digest hex>.tar.gz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    pub index: usize,
    pub checkpoints: Vec<Checkpoint>,
    /// The history up to the last checkpoint.
    pub history: Vec<History>,
    /// The digests of the FROM-chain's layers the checkpoint was made on: a parent made
    /// again with other bytes is another tree, and the checkpoint's layers do not fit it.
    pub parent: Vec<String>,
    pub layers: Vec<LayerRef>,
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
    /// The git source's commit time, seconds in decimal (the fetch step writes it, the resolve
    /// step reports it in the graph).
    pub fn source_time(&self) -> PathBuf {
        self.root.join("source-time")
    }
    /// The git source's commit, hex (the fetch step writes it, the resolve step reports it).
    pub fn source_revision(&self) -> PathBuf {
        self.root.join("source-revision")
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
        self.root
            .join(slipway_contract::pod::paths::stage_dir(index))
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
    /// Where stage `index` finds the checkpoint it starts from (a prefix hit).
    pub fn resume_dir(&self, index: usize) -> PathBuf {
        self.root
            .join(slipway_contract::pod::paths::resume_dir(index))
    }
    pub fn resume_file(&self, index: usize) -> PathBuf {
        self.resume_dir(index).join("checkpoint.json")
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

    /// `path` (one of this workspace's) relative to its root.
    fn relative<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }

    /// A failed stage's message as the stage left it, for the host to print: opened without
    /// following symlinks, a regular file only, at most [`ERROR_CAP`] bytes of it (marked when
    /// cut); `None` when the stage left none.
    pub fn read_stage_error(&self, index: usize) -> Result<Option<String>, WorkspaceError> {
        let path = self.stage_error(index);
        let unsafe_at = |source| WorkspaceError::Unsafe {
            path: path.clone(),
            source,
        };
        let f = match open_beneath(&self.root, self.relative(&path)) {
            Ok(f) => f,
            Err(BeneathError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unsafe_at(e)),
        };
        let mut buf = Vec::new();
        f.take(ERROR_CAP + 1)
            .read_to_end(&mut buf)
            .map_err(|e| unsafe_at(BeneathError::Io(e)))?;
        let cut = buf.len() as u64 > ERROR_CAP;
        buf.truncate(ERROR_CAP as usize);
        let mut text = String::from_utf8_lossy(&buf).trim().to_string();
        if cut {
            text.push_str(" [...]");
        }
        Ok(Some(text))
    }

    /// A stage's result as the host may trust it: read beneath the workspace (no symlink, a
    /// regular file, at most [`RESULT_CAP`] bytes), every layer's digests valid and its path
    /// `stages/<N>/layers/<digest hex>.tar.gz` with `N` one of the plan's `stages`, and that
    /// file a regular file beneath the workspace too.
    pub fn read_stage_result(
        &self,
        index: usize,
        stages: &[usize],
    ) -> Result<StageResult, WorkspaceError> {
        let path = self.stage_result(index);
        let bytes =
            read_beneath(&self.root, self.relative(&path), RESULT_CAP).map_err(|source| {
                WorkspaceError::Unsafe {
                    path: path.clone(),
                    source,
                }
            })?;
        let r: StageResult = serde_json::from_slice(&bytes).map_err(json_at(&path))?;
        for l in &r.layers {
            check_layer(l, stages).map_err(|source| WorkspaceError::Layer {
                path: path.clone(),
                source,
            })?;
            open_beneath(&self.root, Path::new(&l.path)).map_err(|source| {
                WorkspaceError::Unsafe {
                    path: self.root.join(&l.path),
                    source,
                }
            })?;
        }
        Ok(r)
    }
}

/// Why a workspace file was not opened: it is not where it may be, or not what it may be.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("not a relative path inside the workspace")]
    NotBeneath,
    #[error("a symlink (not followed)")]
    Symlink,
    #[error("not a directory")]
    NotDirectory,
    #[error("not a regular file")]
    NotFile,
    #[error("{size} bytes, more than the {cap} allowed")]
    TooLarge { size: u64, cap: u64 },
    #[error("{0}")]
    Io(#[source] io::Error),
}

impl From<nix::errno::Errno> for BeneathError {
    fn from(e: nix::errno::Errno) -> Self {
        match e {
            nix::errno::Errno::ELOOP => BeneathError::Symlink,
            e => BeneathError::Io(io::Error::from(e)),
        }
    }
}

/// The components of `rel`, when it is a relative path that stays beneath its root: no root,
/// no `..`, not empty (`.` components are dropped).
pub fn beneath_parts(rel: &Path) -> Result<Vec<&OsStr>, BeneathError> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(BeneathError::NotBeneath);
            }
        }
    }
    if parts.is_empty() {
        return Err(BeneathError::NotBeneath);
    }
    Ok(parts)
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Opens the regular file `rel` beneath `root` without following a symlink in any of its
/// components (`O_NOFOLLOW` and an lstat on each, from a descriptor of the one before), so a
/// stage that planted `stages/0/error.txt -> /etc/shadow` or `stages/0 -> /` gets an error, not
/// a host file. A FIFO or device is refused before it is opened.
pub fn open_beneath(root: &Path, rel: &Path) -> Result<File, BeneathError> {
    let parts = beneath_parts(rel)?;
    let (last, dirs) = parts.split_last().ok_or(BeneathError::NotBeneath)?;
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir: OwnedFd = nix::fcntl::open(root, dir_flags, Mode::empty())?;
    let nofollow = AtFlags::AT_SYMLINK_NOFOLLOW;
    for d in dirs {
        match kind(&nix::sys::stat::fstatat(&dir, *d, nofollow)?) {
            SFlag::S_IFDIR => {}
            SFlag::S_IFLNK => return Err(BeneathError::Symlink),
            _ => return Err(BeneathError::NotDirectory),
        }
        dir = nix::fcntl::openat(&dir, *d, dir_flags | OFlag::O_NOFOLLOW, Mode::empty())?;
    }
    let before = nix::sys::stat::fstatat(&dir, *last, nofollow)?;
    match kind(&before) {
        SFlag::S_IFREG => {}
        SFlag::S_IFLNK => return Err(BeneathError::Symlink),
        _ => return Err(BeneathError::NotFile),
    }
    // O_NONBLOCK: what was a regular file a moment ago may be a FIFO by now.
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(&dir, *last, flags, Mode::empty())?;
    let after = nix::sys::stat::fstat(&fd)?;
    if kind(&after) != SFlag::S_IFREG
        || (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino)
    {
        return Err(BeneathError::NotFile);
    }
    Ok(File::from(fd))
}

/// The whole of the regular file `rel` beneath `root` ([`open_beneath`]), at most `cap` bytes.
pub fn read_beneath(root: &Path, rel: &Path, cap: u64) -> Result<Vec<u8>, BeneathError> {
    let f = open_beneath(root, rel)?;
    read_capped(f, cap)
}

fn read_capped(f: File, cap: u64) -> Result<Vec<u8>, BeneathError> {
    let size = f.metadata().map_err(BeneathError::Io)?.len();
    if size > cap {
        return Err(BeneathError::TooLarge { size, cap });
    }
    let mut buf = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(BeneathError::Io)?;
    if buf.len() as u64 > cap {
        return Err(BeneathError::TooLarge {
            size: buf.len() as u64,
            cap,
        });
    }
    Ok(buf)
}

/// A layer of a stage result that the host must not trust.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayerPathError {
    #[error("layer digest: {0}")]
    Digest(#[source] DigestError),
    #[error("layer diff_id: {0}")]
    DiffId(#[source] DigestError),
    #[error("layer path {0:?} is not stages/<N>/layers/<digest hex>.tar.gz")]
    Path(String),
    #[error("layer path {0:?} is not resume/<N>/<digest hex>.tar.gz of its stage")]
    Resume(String),
}

/// A layer of a checkpoint as `resume/<index>/checkpoint.json` may name it: valid digests,
/// and the path the restore gives it, `resume/<index>/<digest hex>.tar.gz`.
pub fn check_resume_layer(l: &LayerRef, index: usize) -> Result<(), LayerPathError> {
    let hex = sha256_hex(&l.digest).map_err(LayerPathError::Digest)?;
    sha256_hex(&l.diff_id).map_err(LayerPathError::DiffId)?;
    if l.path
        != format!(
            "{}/{hex}.tar.gz",
            slipway_contract::pod::paths::resume_dir(index)
        )
    {
        return Err(LayerPathError::Resume(l.path.clone()));
    }
    Ok(())
}

/// A stage layer as a result may name it: valid digests, and the path the stage engine gives
/// it, `stages/<N>/layers/<digest hex>.tar.gz` with `N` one of `stages`.
pub fn check_layer(l: &LayerRef, stages: &[usize]) -> Result<(), LayerPathError> {
    let hex = sha256_hex(&l.digest).map_err(LayerPathError::Digest)?;
    sha256_hex(&l.diff_id).map_err(LayerPathError::DiffId)?;
    let bad = || LayerPathError::Path(l.path.clone());
    let parts: Vec<&str> = l.path.split('/').collect();
    let ["stages", n, "layers", file] = parts[..] else {
        return Err(bad());
    };
    let index: usize = n.parse().map_err(|_| bad())?;
    if index.to_string() != n || !stages.contains(&index) || file != format!("{hex}.tar.gz") {
        return Err(bad());
    }
    Ok(())
}

/// A workspace file could not be read or written; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Io(#[from] PathError),
    /// A file a stage could plant that is not what it may be (a symlink, too large...).
    #[error("{}: {source}", path.display())]
    Unsafe {
        path: PathBuf,
        #[source]
        source: BeneathError,
    },
    /// A stage result naming a layer it may not.
    #[error("{}: {source}", path.display())]
    Layer {
        path: PathBuf,
        #[source]
        source: LayerPathError,
    },
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

/// Reads a JSON file of the workspace, naming it in the error: a regular file (not through a
/// symlink at its own name), at most [`JSON_CAP`] bytes.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, WorkspaceError> {
    let unsafe_at = |source| WorkspaceError::Unsafe {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == nix::errno::Errno::ELOOP as i32 => {
                unsafe_at(BeneathError::Symlink)
            }
            _ => WorkspaceError::Io(at(path)(e)),
        })?;
    if !f.metadata().map_err(at(path))?.is_file() {
        return Err(unsafe_at(BeneathError::NotFile));
    }
    let text = read_capped(f, JSON_CAP).map_err(unsafe_at)?;
    serde_json::from_slice(&text).map_err(json_at(path))
}

/// Writes a JSON file atomically (temporary file, then rename), so a reader never sees half.
/// Whatever is at the temporary name (a RUN step may have planted a symlink there, which the
/// rename would have made the file itself) is removed, and the file is made anew (`O_EXCL`).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), WorkspaceError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(json_at(path))?;
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&tmp)(e).into()),
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| io::Write::write_all(&mut f, &text))
        .map_err(at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(at(path))?;
    Ok(())
}

#[cfg(test)]
#[path = "workspace_tests.rs"]
mod tests;
