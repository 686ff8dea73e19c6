//! The first pod of a cluster build, in two containers so that the git credentials and the
//! Dockerfile's author never meet (security review H2):
//!
//! - [`fetch`] (`slipway-builder fetch`, the init container, the only one with the git
//!   Secret; for an OCI source, with the pull secrets): empties the workspace and fetches the
//!   source into its `context/`;
//! - [`resolve`] (`slipway-builder resolve`, the main container, with the pull secrets only):
//!   reads the Dockerfile from the context, plans, resolves every external image to a digest
//!   (base layers are not downloaded: the kubelet pulls stage pods' images), downloads the
//!   layers of the images stages copy from, and returns the graph of stage Jobs with the
//!   digests of the files it wrote (every later pod reads them only when they match).
//!
//! [`prepare`] runs both in one process (`slipway-builder prepare`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use slipway_contract::epoch;
use slipway_contract::graph::{BuildGraph, is_commit_id};
use slipway_contract::pod::{FetchArgs, Inline, PrepareArgs, ResolveArgs, Source, env};
use slipway_contract::result::Reason;
use slipway_contract::size::Size;

use crate::cache::cluster;
use crate::fs::{PathError, at};
use crate::net::RuntimeError;
use crate::registry::client::{Registry, SetupError};
use crate::steps::checkout::{self, SubdirError};
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
    #[error(
        "prepare: no source (--inline, --context-tar, --tarball-url, --git-url or --oci-image)"
    )]
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
    /// `contextDir` reaches through a symlink of the repository.
    #[error("contextDir {dir:?}: {source}")]
    ContextDirLink {
        dir: String,
        #[source]
        source: SubdirError,
    },
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
fn source_of(args: &FetchArgs) -> Result<ResolvedSource, PrepareFailure> {
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
        Some(Source::Oci { image, digest }) => ResolvedSource::Oci { image, digest },
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
            limit: args.limits.size_limit,
        }),
    })
}

enum ResolvedSource {
    Inline(Inline),
    Tar { path: PathBuf, shown: String },
    Tarball { url: String, sha256: Option<String> },
    Oci { image: String, digest: String },
    Git(GitSpec),
}

/// The checkout's `contextDir`, through real directories only.
fn context_dir(checkout: &Path, dir: &str) -> Result<PathBuf, PrepareFailure> {
    source::inside(checkout, dir).map_err(PrepareFailure::ContextDir)?;
    checkout::subdir(checkout, dir).map_err(|e| match e {
        SubdirError::Io(e) => PrepareFailure::MoveContext(e),
        SubdirError::NotADirectory => PrepareFailure::NotADirectory,
        source => PrepareFailure::ContextDirLink {
            dir: dir.to_string(),
            source,
        },
    })
}

/// Fetches the source into the workspace's `context/` and returns the context directory.
fn fetch_source(args: &FetchArgs, ws: &Workspace) -> Result<PathBuf, PrepareFailure> {
    let context = ws.context();
    let limit: Size = args.limits.size_limit;
    fs::create_dir_all(&context).map_err(at(&context))?;
    match source_of(args)? {
        ResolvedSource::Inline(i) => source::write_inline(&i, &args.dockerfile, &context)?,
        ResolvedSource::Tar { path, shown } => {
            if !path.is_file() {
                return Err(PrepareFailure::TarNotFound { shown });
            }
            source::unpack_tar(&path, &shown, &context, limit)?;
        }
        ResolvedSource::Tarball { url, sha256 } => {
            source::fetch_tarball(&url, sha256.as_deref(), &context, limit)?
        }
        ResolvedSource::Oci { image, digest } => source::fetch_oci(
            &image,
            &digest,
            &args.registries.insecure_registries,
            &context,
            limit,
        )?,
        ResolvedSource::Git(g) => {
            let checkout = ws.root.join("git");
            let cloned = git::clone(&g, &checkout)?;
            if let Some(t) = cloned.time {
                let at_time = ws.source_time();
                fs::write(&at_time, t.to_string()).map_err(at(&at_time))?;
            }
            if let Some(c) = &cloned.commit {
                let at_rev = ws.source_revision();
                fs::write(&at_rev, c).map_err(at(&at_rev))?;
            }
            let dir = match &g.context_dir {
                Some(d) if !d.is_empty() && d != "." => context_dir(&checkout, d)?,
                _ => checkout,
            };
            // The context is the repository's directory, moved into place.
            fs::remove_dir(&context).map_err(at(&context))?;
            fs::rename(&dir, &context).map_err(PrepareFailure::MoveContext)?;
            let _ = fs::remove_dir_all(ws.root.join("git"));
        }
    }
    // Not through a symlink: the context itself must be a directory of the workspace.
    if !fs::symlink_metadata(&context).is_ok_and(|m| m.is_dir()) {
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

/// The fetch step: the workspace emptied, the source in its `context/`.
pub fn fetch(args: &FetchArgs) -> Result<(), PrepareError> {
    let ws = Workspace::new(&args.workspace);
    empty(&ws.root);
    fetch_source(args, &ws)?;
    Ok(())
}

/// The resolve step: the fetched context planned, its images resolved; the graph of stage
/// Jobs. Each planned stage's folder is made here, readable by every later pod.
pub fn resolve(args: &ResolveArgs) -> Result<BuildGraph, PrepareError> {
    let ws = Workspace::new(&args.workspace);
    let context = ws.context();
    let df_path = source::inside(&context, &args.dockerfile).map_err(PrepareFailure::Dockerfile)?;
    let plan = plan::plan_into(
        &ws,
        &context,
        &df_path,
        &args.dockerfile,
        &args.plan.to_options(),
    )?;
    for s in &plan.stages {
        let dir = ws.stage_dir(s.index);
        fs::create_dir_all(&dir).map_err(at(&dir))?;
    }
    let registry = Registry::new(&args.registries.insecure_registries, &ws.root.join("blobs"))?;
    let images = crate::net::block_on(plan::resolve_images(
        &registry,
        &plan,
        &ws,
        Fetch::Manifests,
    ))??;
    let mut inputs = trusted::inputs(&ws, images.keys().cloned())?;
    // Written by this pod's fetch step (nothing else has written the workspace yet).
    let source_time = fs::read_to_string(ws.source_time())
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let source_revision = fs::read_to_string(ws.source_revision())
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| is_commit_id(r));
    let graph = BuildGraph::new(&plan, &plan::pinned(&images));
    let graph = match &args.cache.cache_repo {
        Some(repository) => {
            // `git` without a git source fails the build at the controller; no key then.
            let epoch = epoch::resolve(args.cache.epoch, source_time).unwrap_or(None);
            let prepared =
                cluster::prepare(&ws, &plan, graph, &images, &registry, repository, epoch);
            inputs.cache_keys = prepared.keys_file;
            prepared.graph
        }
        None => graph,
    };
    Ok(graph
        .with_inputs(inputs)
        .with_source_time(source_time)
        .with_source_revision(source_revision))
}

/// Both steps in one process.
pub fn prepare(args: &PrepareArgs) -> Result<BuildGraph, PrepareError> {
    fetch(&args.fetch())?;
    resolve(&args.resolve())
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
            "prepare: no source (--inline, --context-tar, --tarball-url, --git-url or --oci-image)"
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

    /// A ConfigMap-style context archive holding `entries` (name, symlink target or file
    /// text), and the prepare pod's two steps over it.
    fn fetch_and_resolve(
        entries: &[(&str, Result<&str, &str>)],
    ) -> (tempfile::TempDir, Result<BuildGraph, PrepareError>) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut b = tar::Builder::new(Vec::new());
        for (name, what) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match what {
                Ok(text) => {
                    h.set_size(text.len() as u64);
                    h.set_cksum();
                    b.append_data(&mut h, name, text.as_bytes()).expect("file");
                }
                Err(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, name, target).expect("link");
                }
            }
        }
        let archive = dir.path().join("context.tar");
        fs::write(&archive, b.into_inner().expect("tar")).expect("write");
        let source = Source::ContextTar {
            path: archive,
            shown: "configMap c: key context.tar".into(),
        };
        let args = PrepareArgs {
            workspace: dir.path().join("ws"),
            dockerfile: "Dockerfile".into(),
            plan: Default::default(),
            registries: Default::default(),
            source: source.into(),
            limits: Default::default(),
            cache: Default::default(),
        };
        fs::create_dir_all(&args.workspace).expect("ws");
        fetch(&args.fetch()).expect("fetched");
        let r = resolve(&args.resolve());
        (dir, r)
    }

    #[test]
    fn the_resolve_step_reads_nothing_outside_the_context() {
        let marker = tempfile::NamedTempFile::new().expect("marker");
        fs::write(marker.path(), "ghp_MARKER").expect("write");
        let target = marker.path().display().to_string();
        let (_d, r) = fetch_and_resolve(&[
            ("Dockerfile", Ok("FROM scratch\nCOPY x /x\n")),
            ("Dockerfile.dockerignore", Err(&target)),
        ]);
        let e = r.expect_err("refused");
        assert_eq!(e.reason, Reason::SourceFailed);
        assert_eq!(
            e.to_string(),
            "Dockerfile.dockerignore: symlink leaves the build context"
        );
        let (_d, r) = fetch_and_resolve(&[("Dockerfile", Err(&target))]);
        let e = r.expect_err("refused");
        assert_eq!(
            e.to_string(),
            "Dockerfile: symlink leaves the build context"
        );
        assert!(!e.to_string().contains("MARKER"));
    }

    #[test]
    fn the_resolve_step_plans_and_makes_each_stage_folder() {
        let (d, r) = fetch_and_resolve(&[(
            "Dockerfile",
            Ok("FROM scratch AS a\nCOPY x /x\nFROM scratch\nCOPY --from=a /x /y\n"),
        )]);
        let graph = r.expect("planned");
        assert!(!graph.jobs.is_empty());
        let ws = Workspace::new(d.path().join("ws"));
        for i in [0, 1] {
            assert!(ws.stage_dir(i).is_dir(), "stages/{i}");
        }
        assert!(ws.plan().is_file());
    }
}
