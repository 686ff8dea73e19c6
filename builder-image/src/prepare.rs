//! `slipway-builder prepare`: the first pod of a cluster build. It fetches the source into
//! the workspace volume, reads the Dockerfile, plans, resolves every external image to a
//! digest (base layers are not downloaded: the kubelet pulls stage pods' images), unpacks the
//! images stages copy from, and returns the graph of stage Jobs for the controller.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use crate::graph::{BuildGraph, Reason};
use crate::plan::{self, PlanOptions};
use crate::registry::Registry;
use crate::source::{self, Inline};
use crate::workspace::{self, Workspace};

/// Where the context comes from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    Inline(Inline),
    /// A tar(.gz) file (a mounted ConfigMap key); `shown` names it in errors.
    Tar {
        path: PathBuf,
        shown: String,
    },
    Tarball {
        url: String,
        sha256: Option<String>,
    },
    Git(crate::git::GitSpec),
}

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub workspace: PathBuf,
    pub source: SourceSpec,
    /// The Dockerfile's path in the context.
    pub dockerfile: String,
    pub target: Option<String>,
    pub build_args: Vec<(String, String)>,
    pub insecure_registries: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PrepareError {
    pub reason: Reason,
    pub message: String,
}

fn fail(reason: Reason) -> impl Fn(String) -> PrepareError {
    move |message| PrepareError { reason, message }
}

pub fn prepare(opts: &PrepareOptions) -> Result<BuildGraph, PrepareError> {
    let ws = Workspace::new(&opts.workspace);
    let src = fail(Reason::SourceFailed);
    // A retried pod starts from an empty workspace.
    if let Ok(rd) = fs::read_dir(&ws.root) {
        for e in rd.flatten() {
            let p = e.path();
            let _ = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
    let context = ws.context();
    fs::create_dir_all(&context).map_err(|e| src(format!("{}: {e}", context.display())))?;

    let context = match &opts.source {
        SourceSpec::Inline(i) => {
            source::write_inline(i, &opts.dockerfile, &context).map_err(&src)?;
            context
        }
        SourceSpec::Tar { path, shown } => {
            if !path.is_file() {
                return Err(src(format!("{shown}: not found")));
            }
            source::unpack_tar(path, shown, &context).map_err(&src)?;
            context
        }
        SourceSpec::Tarball { url, sha256 } => {
            source::fetch_tarball(url, sha256.as_deref(), &context).map_err(&src)?;
            context
        }
        SourceSpec::Git(g) => {
            let checkout = ws.root.join("git");
            crate::git::clone(g, &checkout).map_err(&src)?;
            let dir = match &g.context_dir {
                Some(d) if !d.is_empty() && d != "." => {
                    source::inside(&checkout, d).map_err(|e| src(format!("contextDir {e}")))?
                }
                _ => checkout,
            };
            // The context is the repository's directory, moved into place.
            fs::remove_dir(&context).map_err(|e| src(format!("{}: {e}", context.display())))?;
            fs::rename(&dir, &context).map_err(|e| src(format!("contextDir: {e}")))?;
            let _ = fs::remove_dir_all(ws.root.join("git"));
            context
        }
    };
    if !context.is_dir() {
        return Err(src("the context is not a directory".into()));
    }

    let df_path =
        source::inside(&context, &opts.dockerfile).map_err(|e| src(format!("dockerfile {e}")))?;
    let text = fs::read(&df_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| src(format!("{}: {e}", opts.dockerfile)))?;
    let plan = plan::plan(
        &text,
        &PlanOptions {
            target: opts.target.clone(),
            build_args: opts.build_args.clone(),
        },
    )
    .map_err(|e| PrepareError {
        reason: Reason::InvalidDockerfile,
        message: match e.line() {
            Some(l) => format!("{}:{l}: {e}", opts.dockerfile),
            None => format!("{}: {e}", opts.dockerfile),
        },
    })?;
    for w in &plan.warnings {
        eprintln!("{}: warning: {w}", opts.dockerfile);
    }
    workspace::write_json(&ws.plan(), &plan).map_err(&src)?;
    fs::write(ws.dockerfile(), &text).map_err(|e| src(format!("Dockerfile: {e}")))?;
    let [specific, _] = crate::dockerignore::candidates(&context, &df_path);
    if let Ok(t) = fs::read(&specific) {
        fs::write(ws.root.join("Dockerfile.dockerignore"), t)
            .map_err(|e| src(format!(".dockerignore: {e}")))?;
    }

    let images = resolve_images(opts, &plan, &ws)?;
    Ok(BuildGraph::new(&plan, &images))
}

/// Every external image of the plan, resolved; the ones stages copy from are unpacked.
fn resolve_images(
    opts: &PrepareOptions,
    plan: &plan::Plan,
    ws: &Workspace,
) -> Result<BTreeMap<String, workspace::ImageInfo>, PrepareError> {
    let base = fail(Reason::BaseImageNotFound);
    let (names, copied) = plan.external_images();
    let registry = Registry::new(&opts.insecure_registries, &ws.root.join("blobs"))
        .map_err(fail(Reason::SourceFailed))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| base(e.to_string()))?;
    let mut out = BTreeMap::new();
    for n in names {
        let info = rt
            .block_on(async {
                if copied.contains(&n) {
                    registry.pull(&n).await
                } else {
                    registry.resolve(&n).await
                }
            })
            .map_err(|e| base(e.to_string()))?;
        eprintln!("resolved {n} to {}", info.pinned);
        workspace::write_json(&ws.image_info(&n), &info).map_err(&base)?;
        if copied.contains(&n) {
            crate::stage_root::unpack_image(&info, &ws.image_rootfs(&n)).map_err(&base)?;
        }
        out.insert(n, info);
    }
    Ok(out)
}
