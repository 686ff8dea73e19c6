//! What a pod may believe of the workspace (security review H1, C1): the workspace is data,
//! not instructions. Other stages' RUN steps ran beside it, so a file there is what its writer
//! wrote only when its digest is the one the controller holds (local mode: the host), which
//! the pod was started with ([`Digests`]). Every pod reads such a file through
//! [`read_verified`]: beneath the workspace, no symlink in any component, a regular file, at
//! most a cap, hashed and compared, and an error naming the file when it differs. Layers and
//! exports are checked as they stream ([`CheckedRead`], [`DigestRead`]): a stage's result may
//! only name layers `stages/<N>/layers/<digest hex>.tar.gz` of its own FROM-chain.
//!
//! [`Checked`] is the workspace as a pod reads it; [`inputs`] and [`outputs`] compute the
//! digests that the prepare step and each stage report.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use slipway_contract::digest::Digest;
use slipway_contract::pod::Digests;
use slipway_contract::trust::{Inputs, Outputs};
use slipway_frontend::dockerignore::{candidates, read_patterns};
use slipway_frontend::plan::{Base, Plan};

use crate::fs::unpack::{ImageUnpackError, apply_layer};
pub use crate::registry::verify::CheckedRead;
use crate::registry::verify::FinishError;
use crate::workspace::{
    BeneathError, ImageInfo, JSON_CAP, LayerPathError, LayerRef, RESULT_CAP, Resume, StageResult,
    Workspace, check_layer, check_resume_layer, open_beneath, read_beneath,
};

/// The largest plan, Dockerfile, ignore file or image JSON a pod reads.
pub const CAP: u64 = JSON_CAP;

/// A workspace file a pod was to read and does not: the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The pod was started without the digest of a file it must read.
    #[error("{file}: the controller holds no digest for it")]
    NoDigest { file: String },
    #[error("{file} does not match the digest the controller holds: the workspace was modified")]
    Mismatch {
        file: String,
        want: Digest,
        got: Digest,
    },
    /// A layer or an exports tar whose bytes are not those of its digest.
    #[error("{file} does not match its digest: the workspace was modified ({reason})")]
    Content { file: String, reason: String },
    /// Not a regular file beneath the workspace, or too large.
    #[error("{file}: {source}")]
    Unsafe {
        file: String,
        #[source]
        source: BeneathError,
    },
    #[error("{file}: {source}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    /// A stage result naming a layer it may not.
    #[error("{file}: {source}")]
    Layer {
        file: String,
        #[source]
        source: LayerPathError,
    },
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: io::Error,
    },
}

fn shown(rel: &Path) -> String {
    rel.display().to_string()
}

fn digest_of(h: Sha256) -> Digest {
    Digest::from_sha256(&h.finalize().into())
}

/// The regular file `rel` beneath `root`, opened without following a symlink.
fn open(root: &Path, rel: &Path) -> Result<File, TrustError> {
    open_beneath(root, rel).map_err(|source| TrustError::Unsafe {
        file: shown(rel),
        source,
    })
}

/// The whole of the workspace file `rel` (beneath `root`, a regular file, at most `cap`
/// bytes), when its digest is `want`.
pub fn read_verified(
    root: &Path,
    rel: &Path,
    want: Option<&Digest>,
    cap: u64,
) -> Result<Vec<u8>, TrustError> {
    let file = shown(rel);
    let want = want.ok_or_else(|| TrustError::NoDigest { file: file.clone() })?;
    let bytes = read_beneath(root, rel, cap).map_err(|source| TrustError::Unsafe {
        file: file.clone(),
        source,
    })?;
    let got = digest_of(Sha256::new_with_prefix(&bytes));
    if &got != want {
        return Err(TrustError::Mismatch {
            file,
            want: want.clone(),
            got,
        });
    }
    Ok(bytes)
}

fn json<T: serde::de::DeserializeOwned>(rel: &Path, bytes: &[u8]) -> Result<T, TrustError> {
    serde_json::from_slice(bytes).map_err(|source| TrustError::Json {
        file: shown(rel),
        source,
    })
}

/// The digest of the workspace file `rel` (beneath `root`, a regular file): what the prepare
/// step and each stage report of the files they wrote.
pub fn digest_file(root: &Path, rel: &Path) -> Result<Digest, TrustError> {
    let mut f = open(root, rel)?;
    let mut h = Hashing(Sha256::new());
    io::copy(&mut f, &mut h).map_err(|source| TrustError::Read {
        file: shown(rel),
        source,
    })?;
    Ok(digest_of(h.0))
}

struct Hashing(Sha256);

impl io::Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `path` (one of the workspace's) relative to its root.
fn relative(ws: &Workspace, path: &Path) -> PathBuf {
    path.strip_prefix(&ws.root).unwrap_or(path).to_path_buf()
}

/// The digests of the files the prepare step (or local mode's host) wrote: the plan, the
/// Dockerfile, its own ignore file when there is one, each image's JSON.
pub fn inputs(
    ws: &Workspace,
    images: impl IntoIterator<Item = String>,
) -> Result<Inputs, TrustError> {
    let digest = |p: PathBuf| digest_file(&ws.root, &relative(ws, &p));
    let ignore = ignore_file(ws);
    let ignore = match std::fs::symlink_metadata(&ignore) {
        Ok(_) => Some(digest(ignore)?),
        Err(_) => None,
    };
    let mut by_image = BTreeMap::new();
    for reference in images {
        let d = digest(ws.image_info(&reference))?;
        by_image.insert(reference, d);
    }
    Ok(Inputs {
        plan: digest(ws.plan())?,
        dockerfile: digest(ws.dockerfile())?,
        ignore,
        images: by_image,
        cache_keys: None,
    })
}

/// The digests of what stage `index` wrote: its result and, when it has any, its exports.
pub fn outputs(ws: &Workspace, index: usize) -> Result<Outputs, TrustError> {
    let exports = relative(ws, &ws.stage_exports(index));
    let exports = match std::fs::symlink_metadata(ws.root.join(&exports)) {
        Ok(_) => Some(digest_file(&ws.root, &exports)?),
        Err(_) => None,
    };
    outputs_written(ws, index, exports)
}

/// [`outputs`] of a stage this process has just finished: the exports' digest is the one
/// taken as they were written ([`crate::stage::exports::Written`]), not read back.
pub fn outputs_written(
    ws: &Workspace,
    index: usize,
    exports: Option<Digest>,
) -> Result<Outputs, TrustError> {
    Ok(Outputs {
        result: digest_file(&ws.root, &relative(ws, &ws.stage_result(index)))?,
        exports,
    })
}

/// The build's own ignore file in the workspace (`Dockerfile.dockerignore`).
fn ignore_file(ws: &Workspace) -> PathBuf {
    let [specific, _] = candidates(&ws.root, &ws.dockerfile());
    specific
}

/// Stage `index` and the stages it is built on, FROM by FROM: whose layers its result lists.
pub fn lineage(plan: &Plan, mut index: usize) -> Vec<usize> {
    let mut out = vec![index];
    while let Some(Base::Stage(p)) = plan.stage(index).map(|s| &s.from) {
        if out.contains(p) {
            break; // a plan has no cycles; a forged one ends here
        }
        out.push(*p);
        index = *p;
    }
    out
}

/// A reader of a workspace file checked against a digest as it is read: a stage's exports.
/// Read it to its end, then [`DigestRead::finish`].
pub struct DigestRead<R> {
    inner: R,
    hash: Sha256,
    want: Digest,
    file: String,
}

impl<R: Read> Read for DigestRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> DigestRead<R> {
    /// Reads what the consumer left, then says whether the bytes were the digest's.
    pub fn finish(mut self) -> Result<(), TrustError> {
        let file = self.file.clone();
        io::copy(&mut self, &mut io::sink()).map_err(|source| TrustError::Read {
            file: file.clone(),
            source,
        })?;
        let got = digest_of(self.hash);
        if got != self.want {
            return Err(TrustError::Mismatch {
                file,
                want: self.want,
                got,
            });
        }
        Ok(())
    }
}

/// A stage's layer read through [`CheckedRead`], once it is done with.
pub fn finish_layer<R: Read>(l: &LayerRef, r: CheckedRead<R>) -> Result<(), TrustError> {
    r.finish().map_err(|e| layer_error(l, &e))
}

/// What a checked layer read failed with, naming the layer's file.
pub fn layer_error(l: &LayerRef, e: &FinishError) -> TrustError {
    match e.mismatch() {
        Some(m) => TrustError::Content {
            file: l.path.clone(),
            reason: m.to_string(),
        },
        None => TrustError::Read {
            file: l.path.clone(),
            source: io::Error::other(e.to_string()),
        },
    }
}

/// The workspace as a pod may read it: only the files its digests name, each checked.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    pub ws: &'a Workspace,
    pub digests: &'a Digests,
}

impl Checked<'_> {
    fn rel(&self, path: &Path) -> PathBuf {
        relative(self.ws, path)
    }

    fn read(&self, path: &Path, want: Option<&Digest>) -> Result<(PathBuf, Vec<u8>), TrustError> {
        self.read_capped(path, want, CAP)
    }

    fn read_capped(
        &self,
        path: &Path,
        want: Option<&Digest>,
        cap: u64,
    ) -> Result<(PathBuf, Vec<u8>), TrustError> {
        let rel = self.rel(path);
        let bytes = read_verified(&self.ws.root, &rel, want, cap)?;
        Ok((rel, bytes))
    }

    /// `plan.json` (or the plan at `path`, beneath the workspace).
    pub fn plan_at(&self, path: &Path) -> Result<Plan, TrustError> {
        let (rel, bytes) = self.read(path, Some(&self.digests.plan))?;
        json(&rel, &bytes)
    }

    pub fn plan(&self) -> Result<Plan, TrustError> {
        self.plan_at(&self.ws.plan())
    }

    /// The Dockerfile's text.
    pub fn dockerfile(&self) -> Result<String, TrustError> {
        let (_, bytes) = self.read(&self.ws.dockerfile(), self.digests.dockerfile.as_ref())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The patterns that apply to COPY from the context: those of the build's own ignore
    /// file when the digests name one (else the file is not read: a stage may have planted
    /// it), or those of the context's `.dockerignore` (read-only to every stage).
    pub fn ignore_patterns(&self) -> Result<Vec<String>, TrustError> {
        if let Some(want) = &self.digests.ignore {
            let (_, bytes) = self.read(&ignore_file(self.ws), Some(want))?;
            return Ok(read_patterns(&String::from_utf8_lossy(&bytes)));
        }
        let [_, context] = candidates(&self.ws.context(), &self.ws.dockerfile());
        match std::fs::read(&context) {
            Ok(bytes) => Ok(read_patterns(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(TrustError::Read {
                file: shown(&self.rel(&context)),
                source,
            }),
        }
    }

    /// `images/<key>.json` of `reference`.
    pub fn image(&self, reference: &str) -> Result<ImageInfo, TrustError> {
        let (rel, bytes) = self.read(
            &self.ws.image_info(reference),
            self.digests.image(reference),
        )?;
        json(&rel, &bytes)
    }

    /// Stage `index`'s result, every layer it names one of its FROM-chain's
    /// (`stages/<N>/layers/<digest hex>.tar.gz`).
    pub fn result(&self, plan: &Plan, index: usize) -> Result<StageResult, TrustError> {
        let want = self.digests.result(index);
        let (rel, bytes) = self.read_capped(&self.ws.stage_result(index), want, RESULT_CAP)?;
        let r: StageResult = json(&rel, &bytes)?;
        let chain = lineage(plan, index);
        for l in &r.layers {
            check_layer(l, &chain).map_err(|source| TrustError::Layer {
                file: shown(&rel),
                source,
            })?;
        }
        Ok(r)
    }

    /// The checkpoint stage `index` starts from, when it was given one (a prefix hit of the
    /// layer cache), every layer it names `resume/<index>/<digest hex>.tar.gz`.
    pub fn resume(&self, index: usize) -> Result<Option<Resume>, TrustError> {
        let Some(want) = self.digests.resume(index) else {
            return Ok(None);
        };
        let (rel, bytes) = self.read_capped(&self.ws.resume_file(index), Some(want), RESULT_CAP)?;
        let r: Resume = json(&rel, &bytes)?;
        for l in &r.layers {
            check_resume_layer(l, index).map_err(|source| TrustError::Layer {
                file: shown(&rel),
                source,
            })?;
        }
        Ok(Some(r))
    }

    /// Whether stage `index` is one whose outputs this pod was given.
    pub fn knows(&self, index: usize) -> bool {
        self.digests.result(index).is_some()
    }

    /// Stage `index`'s exports, checked as they are read; `None` when the stage has none.
    pub fn exports(&self, index: usize) -> Result<Option<DigestRead<File>>, TrustError> {
        let rel = self.rel(&self.ws.stage_exports(index));
        let Some(want) = self.digests.exports(index) else {
            if self.knows(index) {
                return Ok(None);
            }
            return Err(TrustError::NoDigest { file: shown(&rel) });
        };
        Ok(Some(DigestRead {
            inner: open(&self.ws.root, &rel)?,
            hash: Sha256::new(),
            want: want.clone(),
            file: shown(&rel),
        }))
    }

    /// A layer of a checked result ([`Checked::result`]), checked against its digests as it
    /// is read: read it to the end, then [`finish_layer`].
    pub fn layer(&self, l: &LayerRef) -> Result<CheckedRead<File>, TrustError> {
        let f = open(&self.ws.root, Path::new(&l.path))?;
        Ok(CheckedRead::new(f, l))
    }
}

/// Why an image a stage copies from could not be unpacked into its scratch space.
#[derive(Debug, thiserror::Error)]
pub enum CopiedImageError {
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Unpack(#[from] ImageUnpackError),
}

/// Unpacks the external image `reference` (which a stage copies or mounts from) into `dest`:
/// its JSON as the controller's digest says, each layer from the prepare step's blob cache in
/// the workspace, opened beneath it and checked against its digests as it is applied. What a
/// cluster's stage pod does, as the prepare pod (not root) cannot unpack an image as it is
/// (owners, devices), and the workspace is read-only to the stage.
pub fn unpack_image(
    checked: Checked<'_>,
    reference: &str,
    dest: &Path,
) -> Result<(), CopiedImageError> {
    let info = checked.image(reference)?;
    std::fs::create_dir_all(dest)
        .map_err(crate::fs::at(dest))
        .map_err(ImageUnpackError::Io)?;
    for l in &info.layers {
        let rel = Path::new(&l.path)
            .strip_prefix(&checked.ws.root)
            .unwrap_or(Path::new(&l.path));
        let mut r = CheckedRead::new(open(&checked.ws.root, rel)?, l);
        let applied = apply_layer(&mut r, dest, true);
        finish_layer(l, r)?;
        applied.map_err(|source| ImageUnpackError::Layer {
            image: info.reference.clone(),
            digest: l.digest.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "trusted_tests.rs"]
mod tests;
