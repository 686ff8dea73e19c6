//! The last step of a build: the final image assembled from the workspace (the target's
//! chain root layers, then the stage layers; config with history; OCI manifest) and pushed.
//! `slipway-builder push` is the cluster's push pod, the only one that sees push
//! credentials; the local build calls [`assemble`] too.
//!
//! What it reads of the workspace is what the controller vouches for (security review H1):
//! the plan, the target's result and its base image's JSON only when they match the digests
//! in its arguments, the layers only at `stages/<N>/layers/<hex>.tar.gz` of the target's
//! FROM-chain, checked against their digests as they are uploaded. The target is the verified
//! plan's; the base, whose repository is the only other one it reads from, the verified
//! result's, and only one the controller gave a digest for.

use std::collections::BTreeMap;

use slipway_contract::pod::PushArgs;
use slipway_contract::result::CacheWrite;

use crate::cache::cluster::{self as cache, Part};
use crate::net::RuntimeError;
use crate::registry::client::{BlobSource, ImageToPush, Registry, RegistryError, SetupError};
use crate::trusted::{Checked, TrustError};
use crate::workspace::{ImageInfo, StageResult, Workspace, WorkspaceError};

/// Why the image could not be assembled or pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// A workspace file that is not what the controller's digest says.
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("base image config is not an object")]
    BaseConfig,
    /// The target's result names a base this build did not resolve (a cache entry made
    /// under another name): pushing without its layers would publish a broken image.
    #[error("the target's base image {0} is not one this build resolved")]
    UnknownBase(String),
    #[error("image config: {0}")]
    Config(#[from] serde_json::Error),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The target's result and its base image, as the digests vouch for them.
pub fn target(
    checked: Checked<'_>,
) -> Result<(StageResult, BTreeMap<String, ImageInfo>), PushError> {
    let plan = checked.plan()?;
    let r = checked.result(&plan, plan.target_index)?;
    let mut images = BTreeMap::new();
    if let Some(b) = &r.base {
        images.insert(b.clone(), checked.image(b)?);
    }
    Ok((r, images))
}

/// What the push pod pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest digest.
    pub digest: String,
    /// The config's and layers' bytes ([`ImageToPush::size`]).
    pub size: u64,
    /// What was stored in the layer cache, when the build has one.
    pub cache: Option<slipway_contract::result::CacheWrite>,
}

/// The manifest annotations of a cluster build: the controller's, and `created` from the
/// source date epoch when there is one (the time the config says; none without it).
pub fn annotations(args: &PushArgs) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = args
        .annotations
        .iter()
        .map(|a| (a.key.clone(), a.value.clone()))
        .collect();
    if let Some(e) = args.epoch.source_date_epoch {
        out.insert(
            slipway_contract::annotations::CREATED.into(),
            crate::stage::config::created_at(e),
        );
    }
    out
}

/// Pushes the built image of the workspace to every destination, with the controller's
/// annotations on its manifest.
pub fn push(args: &PushArgs) -> Result<Pushed, PushError> {
    let ws = Workspace::new(&args.workspace);
    let (r, images) = target(Checked {
        ws: &ws,
        digests: &args.digests,
    })?;
    let mut image = assemble(&ws, &r, &images, args.epoch.source_date_epoch)?;
    image.annotations = annotations(args);
    // A cache hit's layers are in the cache repository: mounted from there, not uploaded.
    image.mount_from = args.cache_repo.iter().cloned().collect();
    let blobs = args
        .blob_cache
        .clone()
        .unwrap_or_else(|| ws.root.join("blobs"));
    let insecure = &args.registries.insecure_registries;
    let registry = Registry::new(insecure, &blobs)?;
    // The cache's own client, so that each says what it uploaded.
    let cache_registry = match &args.cache_repo {
        Some(repo) => Some((repo.as_str(), Registry::new(insecure, &blobs)?)),
        None => None,
    };
    // Read once: an unreadable keys file is the cache write's one failure, not one per part.
    let ran = cache_registry
        .as_ref()
        .map(|_| cache::ran(&ws, &args.digests));
    let store = |registry: &Registry, repo: &str, part: Part| match &ran {
        Some(Ok(ran)) => cache::store(&ws, ran, registry, repo, &args.destinations, part),
        _ => CacheWrite::default(),
    };
    let target = r.index;
    // Best-effort, the cache: the stages beside the image's chain are stored while the
    // image is pushed (an upload each, the registry's time more than ours); the chain's
    // after it, mounted from it. A failed push still waits for the first part.
    let (pushed, beside) = std::thread::scope(|s| {
        let beside = cache_registry
            .as_ref()
            .map(|(repo, reg)| s.spawn(|| store(reg, repo, Part::Beside { target })));
        let pushed = crate::net::block_on(registry.push(&args.destinations, &image));
        let beside = beside.map(|h| {
            h.join().unwrap_or_else(|_| {
                let mut w = CacheWrite::default();
                w.failure("cache: the writer of the other stages panicked");
                w
            })
        });
        (pushed, beside)
    });
    let digest = pushed??;
    eprintln!("push: {}", registry.tally());
    for d in &args.destinations {
        eprintln!("pushed {d}@{digest}");
    }
    let cache = cache_registry.as_ref().map(|(repo, reg)| {
        let mut w = CacheWrite::default();
        if let Some(Err(e)) = &ran {
            w.failure(&e.to_string());
        }
        w.and(beside.unwrap_or_default())
            .and(store(reg, repo, Part::Chain { target }))
    });
    Ok(Pushed {
        digest,
        size: image.size(),
        cache,
    })
}

/// The final image of the target's result `r`: its chain root's layers, then the stage
/// layers (read beneath the workspace `ws`). With a source date epoch the config's `created`
/// is that time; without one the config has none (the base's is dropped, as before).
pub fn assemble(
    ws: &Workspace,
    r: &StageResult,
    images: &BTreeMap<String, ImageInfo>,
    epoch: Option<u64>,
) -> Result<ImageToPush, PushError> {
    let base = (r.base.as_ref())
        .map(|b| {
            images
                .get(b)
                .ok_or_else(|| PushError::UnknownBase(b.clone()))
        })
        .transpose()?;
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
            layers.push((l.clone(), BlobSource::Base));
        }
    }
    for l in &r.layers {
        layers.push((l.clone(), BlobSource::Workspace(ws.root.clone())));
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
    if let Some(e) = epoch {
        obj.insert("created".into(), crate::stage::config::created_at(e).into());
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
        annotations: BTreeMap::new(),
        mount_from: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_contract::annotations::{self, Annotation};
    use slipway_contract::epoch::EpochArgs;

    fn args(epoch: Option<u64>, given: Vec<Annotation>) -> PushArgs {
        PushArgs {
            workspace: "/ws".into(),
            destinations: vec!["r/x:1".into()],
            registries: Default::default(),
            blob_cache: None,
            epoch: EpochArgs {
                source_date_epoch: epoch,
            },
            digests: slipway_contract::pod::Digests::new(
                slipway_contract::digest::Digest::parse(&format!("sha256:{}", "0".repeat(64)))
                    .expect("digest"),
            ),
            annotations: given,
            cache_repo: None,
        }
    }

    #[test]
    fn created_is_annotated_only_with_a_source_date_epoch() {
        let rev = Annotation::new(annotations::REVISION, "ab".repeat(20));
        let without = annotations(&args(None, vec![rev.clone()]));
        assert_eq!(
            without,
            BTreeMap::from([(rev.key.clone(), rev.value.clone())])
        );
        let with = annotations(&args(Some(1_700_000_000), vec![rev.clone()]));
        assert_eq!(
            with.get(annotations::CREATED).map(String::as_str),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(with.len(), 2);
        assert!(annotations(&args(None, vec![])).is_empty());
    }

    #[test]
    fn a_target_on_a_base_this_build_did_not_resolve_is_not_pushed() {
        // What a cache entry made under another name for the same digest would restore.
        let r = StageResult {
            index: 0,
            name: None,
            base: Some("other.example/busybox:latest".into()),
            config: Default::default(),
            author: String::new(),
            history: Vec::new(),
            layers: Vec::new(),
            vars: Vec::new(),
            args: Vec::new(),
            checkpoints: Vec::new(),
            layers_skipped: false,
        };
        let ws = Workspace::new("/ws");
        let Err(err) = assemble(&ws, &r, &BTreeMap::new(), None) else {
            panic!("pushed without its base");
        };
        assert!(matches!(&err, PushError::UnknownBase(b) if b == "other.example/busybox:latest"));
        assert_eq!(
            err.to_string(),
            "the target's base image other.example/busybox:latest is not one this build resolved"
        );
        // Without a base (scratch) there is nothing to find.
        let scratch = StageResult { base: None, ..r };
        assert!(assemble(&ws, &scratch, &BTreeMap::new(), None).is_ok());
    }
}
