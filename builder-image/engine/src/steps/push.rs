//! The last step of a build: the final image assembled from the workspace (the target's
//! chain root layers, then the stage layers; config with history; OCI manifest) and pushed.
//! `slipway-builder push` is the cluster's push pod, the only one that sees push
//! credentials; the local build calls [`assemble`] too.

use std::collections::BTreeMap;
use std::path::PathBuf;

use slipway_contract::pod::PushArgs;
use slipway_frontend::plan::Plan;

use crate::net::RuntimeError;
use crate::registry::client::{ImageToPush, Registry, RegistryError, SetupError};
use crate::workspace::{self, ImageInfo, StageResult, Workspace, WorkspaceError};

/// Why the image could not be assembled or pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("base image config is not an object")]
    BaseConfig,
    #[error("image config: {0}")]
    Config(#[from] serde_json::Error),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Pushes the built image of the workspace to every destination; returns the digest.
pub fn push(args: &PushArgs) -> Result<String, PushError> {
    let ws = Workspace::new(&args.workspace);
    let plan: Plan = workspace::read_json(&ws.plan())?;
    let r: StageResult = workspace::read_json(&ws.stage_result(plan.target_index))?;
    let mut images = BTreeMap::new();
    if let Some(b) = &r.base {
        let info: ImageInfo = workspace::read_json(&ws.image_info(b))?;
        images.insert(b.clone(), info);
    }
    let image = assemble(&plan, &ws, &images)?;
    let blobs = args
        .blob_cache
        .clone()
        .unwrap_or_else(|| ws.root.join("blobs"));
    let registry = Registry::new(&args.registries.insecure_registries, &blobs)?;
    crate::net::block_on(async {
        let mut digest = String::new();
        for d in &args.destinations {
            let got = registry.push(d, &image).await?;
            eprintln!("pushed {d}@{got}");
            digest = got;
        }
        Ok(digest)
    })?
}

/// The final image: the target's chain root layers, then the stage layers.
pub fn assemble(
    plan: &Plan,
    ws: &Workspace,
    images: &BTreeMap<String, ImageInfo>,
) -> Result<ImageToPush, PushError> {
    let r: StageResult = workspace::read_json(&ws.stage_result(plan.target_index))?;
    let base = r.base.as_ref().and_then(|b| images.get(b));
    let mut config = match base {
        Some(b) => b.config.clone(),
        None => serde_json::json!({
            "architecture": slipway_frontend::plan::host_arch(),
            "os": "linux",
        }),
    };
    let mut layers = Vec::new();
    if let Some(b) = base {
        for l in &b.layers {
            layers.push((l.clone(), PathBuf::from(&l.path)));
        }
    }
    for l in &r.layers {
        layers.push((l.clone(), ws.layer_path(l)));
    }
    let obj = config.as_object_mut().ok_or(PushError::BaseConfig)?;
    for k in [
        "container",
        "container_config",
        "docker_version",
        "created",
        "moby.buildkit.buildinfo.v1",
    ] {
        obj.remove(k);
    }
    obj.insert("config".into(), serde_json::to_value(&r.config)?);
    if !r.author.is_empty() {
        obj.insert("author".into(), r.author.clone().into());
    }
    obj.insert(
        "rootfs".into(),
        serde_json::json!({
            "type": "layers",
            "diff_ids": layers.iter().map(|(l, _)| l.diff_id.clone()).collect::<Vec<_>>(),
        }),
    );
    obj.insert("history".into(), serde_json::to_value(&r.history)?);
    let config = serde_json::to_vec(&config)?;
    Ok(ImageToPush {
        config,
        layers,
        base: base.map(|b| b.pinned.clone()),
    })
}
