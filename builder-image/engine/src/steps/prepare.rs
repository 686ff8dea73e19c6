//! `slipway-builder prepare`: the first pod of a cluster build. It fetches the source into
//! the workspace volume, reads the Dockerfile, plans, resolves every external image to a
//! digest (base layers are not downloaded: the kubelet pulls stage pods' images), unpacks the
//! images stages copy from, and returns the graph of stage Jobs for the controller, with the
//! digests of the files it wrote (every later pod reads them only when they match).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use slipway_contract::graph::BuildGraph;
use slipway_contract::pod::{Inline, PrepareArgs, Source, env};
use slipway_contract::result::Reason;

use crate::fs::{PathError, at};
use crate::net::RuntimeError;
use crate::registry::client::{Registry, SetupError};
use crate::steps::git::{self, GitError, GitSpec};
use crate::steps::plan::{self, Fetch, PlanStepError, ResolveError};
use crate::steps::source::{self, OutsideError, SourceError};
use crate::trusted::{self, TrustError};
use crate::workspace::Workspace;

/// Why the prepare step failed, with the reason the ImageBuild's condition gets.
#[derive(Debug, thiserror::Error)]
#[error("{failure}")]
pub struct PrepareError {
    pub reason: Reason,
    #[source]
    pub failure: PrepareFailure,
}

/// What failed in the prepare step.
#[derive(Debug, thiserror::Error)]
pub enum PrepareFailure {
    #[error("prepare: no source (--inline, --context-tar, --tarball-url or --git-url)")]
    NoSource,
    #[error("${}: {source}", env::INLINE_SOURCE)]
    InlineSource {
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{shown}: not found")]
    TarNotFound { shown: String },
    #[error("contextDir {0}")]
    ContextDir(#[source] OutsideError),
    /// The repository's context directory could not be moved into place.
    #[error("contextDir: {0}")]
    MoveContext(#[source] io::Error),
    #[error("the context is not a directory")]
    NotADirectory,
    #[error("dockerfile {0}")]
    Dockerfile(#[source] OutsideError),
    #[error(transparent)]
    Plan(#[from] PlanStepError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The digest of a file it wrote could not be taken.
    #[error(transparent)]
    Digest(#[from] TrustError),
}

impl PrepareFailure {
    /// The reason the ImageBuild's condition gets.
    pub fn reason(&self) -> Reason {
        match self {
            PrepareFailure::Plan(PlanStepError::Invalid { .. }) => Reason::InvalidDockerfile,
            PrepareFailure::Runtime(_) | PrepareFailure::Resolve(_) => Reason::BaseImageNotFound,
            _ => Reason::SourceFailed,
        }
    }
}

impl<E: Into<PrepareFailure>> From<E> for PrepareError {
    fn from(e: E) -> Self {
        let failure = e.into();
        PrepareError {
            reason: failure.reason(),
            failure,
        }
    }
}

/// The source the pod's flags name, with what it needs from the pod's environment (the inline
/// files) and mounts (the git credentials).
fn source_of(args: &PrepareArgs) -> Result<ResolvedSource, PrepareFailure> {
    Ok(match args.source.source() {
        None => return Err(PrepareFailure::NoSource),
        Some(Source::Inline) => {
            let json = std::env::var(env::INLINE_SOURCE).unwrap_or_default();
            ResolvedSource::Inline(
                serde_json::from_str(&json)
                    .map_err(|source| PrepareFailure::InlineSource { source })?,
            )
        }
        Some(Source::ContextTar { path, shown }) => ResolvedSource::Tar { path, shown },
        Some(Source::Tarball { url, sha256 }) => ResolvedSource::Tarball { url, sha256 },
        Some(Source::Git {
            url,
            revision,
            context_dir,
            auth_dir,
        }) => ResolvedSource::Git(GitSpec {
            url,
            revision,
            context_dir,
            credentials: auth_dir.as_deref().and_then(git::read_credentials),
        }),
    })
}

enum ResolvedSource {
    Inline(Inline),
    Tar { path: PathBuf, shown: String },
    Tarball { url: String, sha256: Option<String> },
    Git(GitSpec),
}

/// Fetches the source into the workspace's `context/` and returns the context directory.
fn fetch_source(args: &PrepareArgs, ws: &Workspace) -> Result<PathBuf, PrepareFailure> {
    let context = ws.context();
    fs::create_dir_all(&context).map_err(at(&context))?;
    match source_of(args)? {
        ResolvedSource::Inline(i) => source::write_inline(&i, &args.dockerfile, &context)?,
        ResolvedSource::Tar { path, shown } => {
            if !path.is_file() {
                return Err(PrepareFailure::TarNotFound { shown });
            }
            source::unpack_tar(&path, &shown, &context)?;
        }
        ResolvedSource::Tarball { url, sha256 } => {
            source::fetch_tarball(&url, sha256.as_deref(), &context)?
        }
        ResolvedSource::Git(g) => {
            let checkout = ws.root.join("git");
            git::clone(&g, &checkout)?;
            let dir = match &g.context_dir {
                Some(d) if !d.is_empty() && d != "." => {
                    source::inside(&checkout, d).map_err(PrepareFailure::ContextDir)?
                }
                _ => checkout,
            };
            // The context is the repository's directory, moved into place.
            fs::remove_dir(&context).map_err(at(&context))?;
            fs::rename(&dir, &context).map_err(PrepareFailure::MoveContext)?;
            let _ = fs::remove_dir_all(ws.root.join("git"));
        }
    }
    if !context.is_dir() {
        return Err(PrepareFailure::NotADirectory);
    }
    Ok(context)
}

/// A retried pod starts from an empty workspace.
fn empty(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let _ = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

pub fn prepare(args: &PrepareArgs) -> Result<BuildGraph, PrepareError> {
    let ws = Workspace::new(&args.workspace);
    empty(&ws.root);
    let context = fetch_source(args, &ws)?;
    let df_path = source::inside(&context, &args.dockerfile).map_err(PrepareFailure::Dockerfile)?;
    let plan = plan::plan_into(
        &ws,
        &context,
        &df_path,
        &args.dockerfile,
        &args.plan.to_options(),
    )?;
    let registry = Registry::new(&args.registries.insecure_registries, &ws.root.join("blobs"))?;
    let images = crate::net::block_on(plan::resolve_images(
        &registry,
        &plan,
        &ws,
        Fetch::Manifests,
    ))??;
    let inputs = trusted::inputs(&ws, images.keys().cloned())?;
    Ok(BuildGraph::new(&plan, &plan::pinned(&images)).with_inputs(inputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_reason() {
        let e = PrepareError::from(PrepareFailure::NoSource);
        assert_eq!(e.reason, Reason::SourceFailed);
        assert_eq!(
            e.to_string(),
            "prepare: no source (--inline, --context-tar, --tarball-url or --git-url)"
        );
        let e = PrepareError::from(PrepareFailure::Dockerfile(OutsideError("../D".into())));
        assert_eq!(e.reason, Reason::SourceFailed);
        assert_eq!(
            e.to_string(),
            r#"dockerfile "../D": not a relative path inside the context"#
        );
        let e = PrepareError::from(RuntimeError(io::Error::other("no threads")));
        assert_eq!(e.reason, Reason::BaseImageNotFound);
        assert_eq!(e.to_string(), "no threads");
        let e = PrepareError::from(SetupError::Tls(crate::net::NoCaCertificates));
        assert_eq!(e.reason, Reason::SourceFailed);
    }
}
