//! The step every build starts with, on the cluster (the prepare pod) and in local mode alike:
//! read the Dockerfile, plan, write the plan and the Dockerfile into the workspace, then
//! resolve every external image the plan needs to a digest.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use slipway_frontend::dockerignore;
use slipway_frontend::plan::{self, Plan, PlanError, PlanOptions};

use crate::fs::unpack::{ImageUnpackError, unpack_image};
use crate::fs::{PathError, at};
use crate::registry::client::{Registry, RegistryError};
use crate::workspace::{self, ImageInfo, Workspace, WorkspaceError};

/// Why planning into the workspace failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanStepError {
    /// The Dockerfile could not be read (`shown`: how the user names it).
    #[error("{shown}: {source}")]
    Read {
        shown: String,
        #[source]
        source: io::Error,
    },
    /// The Dockerfile is not valid: `Dockerfile:LINE: message`.
    #[error("{}", located(shown, source))]
    Invalid {
        shown: String,
        #[source]
        source: PlanError,
    },
    #[error(transparent)]
    Write(#[from] WorkspaceError),
    #[error(transparent)]
    Copy(#[from] PathError),
}

fn located(shown: &str, e: &PlanError) -> String {
    match e.line() {
        Some(l) => format!("{shown}:{l}: {e}"),
        None => format!("{shown}: {e}"),
    }
}

/// Reads and plans `dockerfile` (named `shown` in messages), and writes `plan.json`, the
/// Dockerfile and its own `.dockerignore` (which wins over the context's, as in BuildKit) into
/// the workspace. Warnings go to stderr.
pub fn plan_into(
    ws: &Workspace,
    context: &Path,
    dockerfile: &Path,
    shown: &str,
    opts: &PlanOptions,
) -> Result<Plan, PlanStepError> {
    let text = fs::read(dockerfile)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|source| PlanStepError::Read {
            shown: shown.to_string(),
            source,
        })?;
    let plan = plan::plan(&text, opts).map_err(|source| PlanStepError::Invalid {
        shown: shown.to_string(),
        source,
    })?;
    for w in &plan.warnings {
        eprintln!("{shown}: warning: {w}");
    }
    workspace::write_json(&ws.plan(), &plan)?;
    fs::write(ws.dockerfile(), &text).map_err(at(ws.dockerfile()))?;
    let [specific, _] = dockerignore::candidates(context, dockerfile);
    if let Ok(t) = fs::read(&specific) {
        let to = ws.root.join("Dockerfile.dockerignore");
        fs::write(&to, t).map_err(at(to))?;
    }
    Ok(plan)
}

/// How much of each external image to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Every layer (local mode, which unpacks base images itself).
    Layers,
    /// Manifests and configs only, and the layers of images that stages copy from (the
    /// cluster, where the kubelet pulls stage pods' images).
    Manifests,
}

/// Why an image could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Write(#[from] WorkspaceError),
    #[error(transparent)]
    Unpack(#[from] ImageUnpackError),
}

/// Resolves every external image of the plan to a digest (concurrently), writes each one's
/// `images/<key>.json`, and unpacks the images stages copy from into the workspace.
pub async fn resolve_images(
    registry: &Registry,
    plan: &Plan,
    ws: &Workspace,
    fetch: Fetch,
) -> Result<BTreeMap<String, ImageInfo>, ResolveError> {
    let (names, copied) = plan.external_images();
    let pulls = names.iter().map(|n| {
        let layers = fetch == Fetch::Layers || copied.contains(n);
        async move {
            let r = if layers {
                registry.pull(n).await
            } else {
                registry.resolve(n).await
            };
            (n.clone(), r)
        }
    });
    let mut out = BTreeMap::new();
    for (n, r) in futures::future::join_all(pulls).await {
        let info = r?;
        eprintln!("resolved {n} to {}", info.pinned);
        workspace::write_json(&ws.image_info(&n), &info)?;
        if copied.contains(&n) {
            unpack_image(&info, &ws.image_rootfs(&n))?;
        }
        out.insert(n, info);
    }
    Ok(out)
}

/// Each image's pinned reference, by the reference the Dockerfile uses.
pub fn pinned(images: &BTreeMap<String, ImageInfo>) -> BTreeMap<String, String> {
    images
        .iter()
        .map(|(n, i)| (n.clone(), i.pinned.clone()))
        .collect()
}
