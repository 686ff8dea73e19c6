//! `slipway-builder prepare`: the first pod of a cluster build. It fetches the source into
//! the workspace volume, reads the Dockerfile, plans, resolves every external image to a
//! digest (base layers are not downloaded: the kubelet pulls stage pods' images), unpacks the
//! images stages copy from, and returns the graph of stage Jobs for the controller.

use std::fs;
use std::path::{Path, PathBuf};

use slipway_contract::graph::BuildGraph;
use slipway_contract::pod::{Inline, PrepareArgs, Source, env};
use slipway_contract::result::Reason;

use crate::registry::client::Registry;
use crate::steps::git::{self, GitSpec};
use crate::steps::plan::{self, Fetch, PlanStepError};
use crate::steps::source;
use crate::workspace::Workspace;

/// Why the prepare step failed, with the reason the ImageBuild's condition gets.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PrepareError {
    pub reason: Reason,
    pub message: String,
}

fn fail(reason: Reason) -> impl Fn(String) -> PrepareError {
    move |message| PrepareError { reason, message }
}

/// The source the pod's flags name, with what it needs from the pod's environment (the inline
/// files) and mounts (the git credentials).
fn source_of(args: &PrepareArgs) -> Result<ResolvedSource, String> {
    Ok(match args.source.source() {
        None => {
            return Err(
                "prepare: no source (--inline, --context-tar, --tarball-url or --git-url)".into(),
            );
        }
        Some(Source::Inline) => {
            let json = std::env::var(env::INLINE_SOURCE).unwrap_or_default();
            ResolvedSource::Inline(
                serde_json::from_str(&json).map_err(|e| format!("${}: {e}", env::INLINE_SOURCE))?,
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
fn fetch_source(args: &PrepareArgs, ws: &Workspace) -> Result<PathBuf, String> {
    let context = ws.context();
    fs::create_dir_all(&context).map_err(|e| format!("{}: {e}", context.display()))?;
    match source_of(args)? {
        ResolvedSource::Inline(i) => source::write_inline(&i, &args.dockerfile, &context)?,
        ResolvedSource::Tar { path, shown } => {
            if !path.is_file() {
                return Err(format!("{shown}: not found"));
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
                    source::inside(&checkout, d).map_err(|e| format!("contextDir {e}"))?
                }
                _ => checkout,
            };
            // The context is the repository's directory, moved into place.
            fs::remove_dir(&context).map_err(|e| format!("{}: {e}", context.display()))?;
            fs::rename(&dir, &context).map_err(|e| format!("contextDir: {e}"))?;
            let _ = fs::remove_dir_all(ws.root.join("git"));
        }
    }
    if !context.is_dir() {
        return Err("the context is not a directory".into());
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
    let src = fail(Reason::SourceFailed);
    empty(&ws.root);
    let context = fetch_source(args, &ws).map_err(&src)?;

    let df_path =
        source::inside(&context, &args.dockerfile).map_err(|e| src(format!("dockerfile {e}")))?;
    let plan = plan::plan_into(
        &ws,
        &context,
        &df_path,
        &args.dockerfile,
        &args.plan.to_options(),
    )
    .map_err(|e| PrepareError {
        reason: match e {
            PlanStepError::Invalid { .. } => Reason::InvalidDockerfile,
            _ => Reason::SourceFailed,
        },
        message: e.to_string(),
    })?;

    let base = fail(Reason::BaseImageNotFound);
    let registry = Registry::new(&args.registries.insecure_registries, &ws.root.join("blobs"))
        .map_err(&src)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| base(e.to_string()))?;
    let images = rt
        .block_on(plan::resolve_images(
            &registry,
            &plan,
            &ws,
            Fetch::Manifests,
        ))
        .map_err(|e| base(e.to_string()))?;
    Ok(BuildGraph::new(&plan, &plan::pinned(&images)))
}
