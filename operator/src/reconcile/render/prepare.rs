//! The prepare Job: the builder image fetches the source, plans and resolves base images,
//! copies the engine into the workspace for the stage pods. A source with a credential or
//! registry settings of its own (a git Secret, an OCI artifact) is fetched in a container of
//! its own, so that the git credentials never meet the Dockerfile's author (security review
//! H2):
//!
//! - the init container `fetch` holds the git Secret (only its `username`, `password` and
//!   `token` keys) or, for an OCI source, the pull secrets (it pulls the artifact) and that
//!   registry's plain-HTTP setting, and writes the context into the workspace;
//! - the main container `plan` holds no git credential: it reads the Dockerfile from the
//!   context, plans, resolves base images with the pull secrets, and reports the graph in its
//!   termination message.
//!
//! Any other source (inline, a ConfigMap, a tarball, git without a Secret) holds nothing the
//! plan step may not see, so one container, `plan`, does both steps: an init container costs
//! a pod about a second (the kubelet starts the next container only once it has seen the last
//! one exit; measured on the test cluster: 2.6 s from creation to a trivial container's end
//! with an init container, 1.5 s without).
//!
//! The pod passes Pod Security "restricted" (review M3): uid/gid 65532, not root, no
//! capability, no privilege escalation, RuntimeDefault seccomp, a read-only root filesystem
//! (everything it writes is in the workspace). `fsGroup` makes the workspace volume writable
//! to it; what it writes is 0644/0755, readable by the (root) stage pods and the push pod.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, KeyToPath, PodSpec, SecretVolumeSource, Volume,
};
use slipway_contract::pod::{
    self, CacheArgs, GIT_AUTH_KEYS, PlanArgs, PodCommand, PrepareArgs, SizeLimitArgs, paths,
};

use super::jobs::{
    PULL_AUTH_VOLUME, add_pull_auth, builder_container, env, insecure, job, mount, workspace_volume,
};
use super::{Deadline, RenderError, Settings, Step, security};
use crate::api::ImageBuild;

/// The init container's and the main container's names.
pub const FETCH_CONTAINER: &str = "fetch";
pub const PLAN_CONTAINER: &str = "plan";

/// The git Secret, only the keys the fetch step reads; a missing Secret or key is the fetch
/// step's to report (an authentication failure), not a pod stuck waiting for a volume.
fn git_auth_volume(secret: &str) -> Volume {
    Volume {
        name: "git-auth".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            items: Some(
                GIT_AUTH_KEYS
                    .iter()
                    .map(|k| KeyToPath {
                        key: k.to_string(),
                        path: k.to_string(),
                        mode: None,
                    })
                    .collect(),
            ),
            optional: Some(true),
            default_mode: None,
        }),
        ..Default::default()
    }
}

/// Whether the source is fetched by a container of its own (see the module's comment).
fn fetched_apart(ib: &ImageBuild) -> bool {
    let src = &ib.spec.source;
    src.oci.is_some() || src.git.as_ref().is_some_and(|g| g.secret_ref.is_some())
}

/// The prepare Job: `fetch` (init), then `plan`; or `plan` doing both.
pub fn prepare_job(ib: &ImageBuild, s: &Settings, deadline: &Deadline) -> Result<Job, RenderError> {
    let spec = &ib.spec;
    let mut volumes = vec![workspace_volume(ib)];
    let mut fetch_mounts = vec![mount("workspace", paths::WORKSPACE, false)];
    let mut fetch_envs = Vec::new();
    let src = &spec.source;
    let source = if let Some(i) = &src.inline {
        let inline = pod::Inline {
            dockerfile: i.dockerfile.clone(),
            files: i.files.clone(),
        };
        let json = serde_json::to_string(&inline).map_err(RenderError::Inline)?;
        fetch_envs.push(env(pod::env::INLINE_SOURCE, &json));
        pod::Source::Inline
    } else if let Some(c) = &src.config_map {
        let key = c.key.clone().unwrap_or_else(|| "context.tar.gz".into());
        let archive = std::path::Path::new(paths::SOURCE_ARCHIVE);
        volumes.push(Volume {
            name: "source".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: c.name.clone(),
                items: Some(vec![KeyToPath {
                    key: key.clone(),
                    path: archive
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    mode: None,
                }]),
                // A missing ConfigMap or key is reported by the prepare step, not a stuck pod.
                optional: Some(true),
                default_mode: None,
            }),
            ..Default::default()
        });
        fetch_mounts.push(mount("source", paths::SOURCE, true));
        pod::Source::ContextTar {
            path: archive.to_path_buf(),
            shown: format!("configMap {}: key {key}", c.name),
        }
    } else if let Some(g) = &src.git {
        let auth_dir = g.secret_ref.as_ref().map(|sec| {
            volumes.push(git_auth_volume(&sec.name));
            fetch_mounts.push(mount("git-auth", paths::GIT_AUTH, true));
            std::path::PathBuf::from(paths::GIT_AUTH)
        });
        pod::Source::Git {
            url: g.url.clone(),
            revision: g.revision.clone(),
            context_dir: g.context_dir.clone(),
            auth_dir,
        }
    } else if let Some(o) = &src.oci {
        pod::Source::Oci {
            image: o.image.clone(),
            digest: o.digest.clone(),
        }
    } else if let Some(t) = &src.tarball {
        pod::Source::Tarball {
            url: t.url.clone(),
            sha256: t.sha256.clone(),
        }
    } else {
        return Err(RenderError::NoSource);
    };
    let args = PrepareArgs {
        workspace: paths::WORKSPACE.into(),
        dockerfile: spec
            .dockerfile
            .clone()
            .unwrap_or_else(|| "Dockerfile".into()),
        plan: PlanArgs {
            target: spec.target.clone(),
            build_args: spec
                .build_args
                .iter()
                .map(|a| format!("{}={}", a.name, a.value))
                .collect(),
        },
        registries: insecure(s, None),
        source: source.into(),
        limits: SizeLimitArgs {
            size_limit: s.size_limit,
        },
        cache: CacheArgs {
            cache_repo: spec.cache.as_ref().map(|c| c.repository.clone()),
            // Validated before anything is rendered.
            epoch: spec.cache.as_ref().and_then(|_| {
                crate::reconcile::validate::source_date_epoch(ib)
                    .ok()
                    .flatten()
            }),
        },
    };
    let mut plan_mounts = vec![mount("workspace", paths::WORKSPACE, false)];
    let mut plan_envs = Vec::new();
    add_pull_auth(ib, true, &mut volumes, &mut plan_mounts, &mut plan_envs);
    let secured = |mut c: Container| {
        c.security_context = Some(security::restricted_container(false));
        c
    };
    // An OCI source is pulled by the fetch step, with the pull secrets (the plan step's) and
    // over plain HTTP when it lives on the output registry and that is insecure.
    let mut fetch_args = args.fetch();
    if let Some(o) = &src.oci {
        // The plan step's volume of pull secrets (one volume, mounted into both).
        if volumes.iter().any(|v| v.name == PULL_AUTH_VOLUME) {
            fetch_mounts.push(mount(PULL_AUTH_VOLUME, paths::PULL_AUTH, true));
            fetch_envs.push(env(pod::env::AUTH_DIR, paths::PULL_AUTH));
        }
        let host = crate::reconcile::validate::oci_source(ib)
            .ok()
            .flatten()
            .map(|r| r.registry)
            .unwrap_or_else(|| o.image.clone());
        let output = crate::reconcile::validate::push_target(&spec.output)
            .ok()
            .map(|t| t.registry);
        let extra = (spec.output.insecure_registry && output.as_deref() == Some(host.as_str()))
            .then_some(host.as_str());
        fetch_args.registries = insecure(s, extra);
    }
    plan_envs.push(security::result_token());
    let (init_containers, plan) = if fetched_apart(ib) {
        let fetch = secured(builder_container(
            FETCH_CONTAINER,
            s,
            PodCommand::Fetch(fetch_args).to_args(),
            fetch_envs,
            fetch_mounts,
            spec.resources.clone(),
        ));
        let plan = secured(builder_container(
            PLAN_CONTAINER,
            s,
            PodCommand::Resolve(args.resolve()).to_args(),
            plan_envs,
            plan_mounts,
            spec.resources.clone(),
        ));
        (Some(vec![fetch]), plan)
    } else {
        // One container: the fetch step's mounts and environment beside the plan step's.
        let mut mounts = fetch_mounts;
        for m in plan_mounts {
            if !mounts.iter().any(|x| x.mount_path == m.mount_path) {
                mounts.push(m);
            }
        }
        let mut envs = fetch_envs;
        envs.extend(plan_envs);
        let both = secured(builder_container(
            PLAN_CONTAINER,
            s,
            PodCommand::Prepare(args).to_args(),
            envs,
            mounts,
            spec.resources.clone(),
        ));
        (None, both)
    };
    // The pod-level context is the prepare step's default: "restricted" (security.rs).
    Ok(job(
        ib,
        &Step::Prepare,
        PodSpec {
            init_containers,
            containers: vec![plan],
            volumes: Some(volumes),
            ..Default::default()
        },
        deadline,
    ))
}

#[cfg(test)]
#[path = "prepare_tests.rs"]
mod tests;
