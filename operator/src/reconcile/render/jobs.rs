//! What a build's objects hold: the workspace claim and the stage and push Jobs (the prepare
//! Job is [`super::prepare`]'s), with the volumes, secrets and arguments each step's pod gets
//! (and no more). Pure functions.

use std::collections::BTreeMap;

use kube::ResourceExt;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EmptyDirVolumeSource, EnvVar, KeyToPath, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, ProjectedVolumeSource,
    SecretProjection, SecretVolumeSource, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use slipway_contract::annotations::Annotation;
use slipway_contract::epoch::EpochArgs;
use slipway_contract::graph::StageJob;
use slipway_contract::pod::{
    self, Digests, PodCommand, PushArgs, RegistryArgs, StageArgs, StageLayers, paths,
};

use super::names::{ANNOTATION_BUILD, job_name, labels, meta, pvc_name};
use super::{Deadline, Settings, Step};
use super::{pull_ahead, security};
use crate::api::ImageBuild;
use crate::reconcile::validate::PushTarget;

pub fn workspace_pvc(ib: &ImageBuild, s: &Settings) -> PersistentVolumeClaim {
    let ws = ib.spec.workspace.clone().unwrap_or_default();
    PersistentVolumeClaim {
        metadata: meta(ib, pvc_name(ib), None),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: ws.storage_class_name,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(ws.size.unwrap_or_else(|| s.default_workspace_size.clone())),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

pub(super) fn workspace_volume(ib: &ImageBuild) -> Volume {
    workspace_volume_of(&pvc_name(ib))
}

/// The workspace volume on `claim`.
pub fn workspace_volume_of(claim: &str) -> Volume {
    Volume {
        name: "workspace".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: None,
        }),
        ..Default::default()
    }
}

/// Mounts `claim` as `job`'s workspace (a spare the build took, `spare`).
pub fn use_claim(job: &mut Job, claim: &str) {
    let volumes = job
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|p| p.volumes.as_mut());
    for v in volumes.into_iter().flatten() {
        if let (true, Some(pvc)) = (v.name == "workspace", v.persistent_volume_claim.as_mut()) {
            pvc.claim_name = claim.to_string();
        }
    }
}

/// The claim `job` mounts as its workspace.
pub fn claim_of(job: &Job) -> Option<String> {
    let pod = job.spec.as_ref()?.template.spec.as_ref()?;
    pod.volumes
        .iter()
        .flatten()
        .find(|v| v.name == "workspace")?
        .persistent_volume_claim
        .as_ref()
        .map(|c| c.claim_name.clone())
}

/// A container running the builder image's own binary (prepare, push).
pub(super) fn builder_container(
    name: &str,
    s: &Settings,
    args: Vec<String>,
    envs: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
    resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
) -> Container {
    Container {
        name: name.into(),
        image: Some(s.builder_image.clone()),
        command: Some(vec![paths::IN_BUILDER_IMAGE.into()]),
        args: Some(args),
        env: Some(envs),
        volume_mounts: Some(mounts),
        resources,
        ..Default::default()
    }
}

pub(super) fn add_pull_auth(
    ib: &ImageBuild,
    cache_reader: bool,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
    envs: &mut Vec<EnvVar>,
) {
    if let Some((v, m, e)) = pull_auth(ib, cache_reader) {
        volumes.push(v);
        mounts.push(m);
        envs.push(e);
    }
}

/// The volume of the pull secrets.
pub(super) const PULL_AUTH_VOLUME: &str = "pull-auth";

/// The dockerconfigjson pull secrets, one file each, for manifest reads and base blobs; for
/// the pod that reads the layer cache (`cache_reader`), `spec.cache.pullSecret` too.
fn pull_auth(ib: &ImageBuild, cache_reader: bool) -> Option<(Volume, VolumeMount, EnvVar)> {
    let cache_secret = ib
        .spec
        .cache
        .as_ref()
        .and_then(|c| c.pull_secret.as_ref())
        .filter(|_| cache_reader);
    if ib.spec.pull_secrets.is_empty() && cache_secret.is_none() {
        return None;
    }
    let item = |name: &str, path: String| VolumeProjection {
        secret: Some(SecretProjection {
            name: name.to_string(),
            items: Some(vec![KeyToPath {
                key: ".dockerconfigjson".into(),
                path,
                mode: None,
            }]),
            optional: Some(true),
        }),
        ..Default::default()
    };
    let sources = ib
        .spec
        .pull_secrets
        .iter()
        .enumerate()
        .map(|(i, s)| item(&s.name, format!("pull-{i}.json")))
        .chain(cache_secret.map(|s| item(&s.name, "pull-cache.json".into())))
        .collect();
    Some((
        Volume {
            name: PULL_AUTH_VOLUME.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(sources),
                default_mode: None,
            }),
            ..Default::default()
        },
        mount(PULL_AUTH_VOLUME, paths::PULL_AUTH, true),
        env(pod::env::AUTH_DIR, paths::PULL_AUTH),
    ))
}

pub(super) fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

pub(super) fn insecure(s: &Settings, extra: Option<&str>) -> RegistryArgs {
    RegistryArgs {
        insecure_registries: s
            .insecure_registries
            .iter()
            .map(String::as_str)
            .chain(extra)
            .map(String::from)
            .collect(),
    }
}

/// The pod annotation that names the container `kubectl logs` reads without `-c`.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// A step's Job around its pod. The pod's security context is the step's default
/// ([`security::pod_context`]) unless `pod` sets one.
pub(super) fn job(ib: &ImageBuild, step: &Step, pod: PodSpec, deadline: &Deadline) -> Job {
    let name = job_name(ib, step);
    let labels = labels(ib, Some(step));
    let security_context = pod
        .security_context
        .clone()
        .or_else(|| Some(security::pod_context(step)));
    Job {
        metadata: meta(ib, name, Some(step)),
        spec: Some(JobSpec {
            // A failure of the user's step is final; a pod lost to a disruption (eviction,
            // node pressure, preemption) is replaced without counting; the build's timeout
            // still bounds it, and so does the controller after a few of them (a RUN that
            // fills the node's disk is evicted again and again: see `decide`).
            backoff_limit: Some(0),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: Some("True".into()),
                    }]),
                    on_exit_codes: None,
                }],
            }),
            active_deadline_seconds: deadline.0.map(|d| d.max(1)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    // `kubectl logs` without `-c`: the step's own container (a stage pod's
                    // others only pull images ahead).
                    annotations: Some(BTreeMap::from_iter(
                        [(ANNOTATION_BUILD, ib.name_any())]
                            .into_iter()
                            .chain(
                                pod.containers
                                    .first()
                                    .map(|c| (DEFAULT_CONTAINER, c.name.clone())),
                            )
                            .map(|(k, v)| (k.to_string(), v)),
                    )),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    // A stopped build pod has nothing to save: its step reruns from the start.
                    termination_grace_period_seconds: Some(5),
                    automount_service_account_token: Some(false),
                    security_context,
                    enable_service_links: Some(false),
                    image_pull_secrets: (!ib.spec.pull_secrets.is_empty())
                        .then(|| ib.spec.pull_secrets.clone()),
                    ..pod
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pin(node: Option<&str>) -> Option<Affinity> {
    let node = node?;
    Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "kubernetes.io/hostname".into(),
                        operator: "In".into(),
                        values: Some(vec![node.to_string()]),
                    }]),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The workspace as a stage pod sees it (security review H1): data, not instructions. It is
/// read-only but for the folders of the pod's own stages, where the stage engine writes
/// their layers, results, exports, errors and scratch space; what it reads of the rest it
/// checks against the digests in its arguments.
fn stage_workspace(stages: &[usize]) -> Vec<VolumeMount> {
    let mut mounts = vec![mount("workspace", paths::WORKSPACE, true)];
    mounts.extend(stages.iter().map(|i| VolumeMount {
        name: "workspace".into(),
        mount_path: format!("{}/{}", paths::WORKSPACE, paths::stage_dir(*i)),
        sub_path: Some(paths::stage_dir(*i)),
        ..Default::default()
    }));
    mounts
}

/// The engine in a stage pod: the workspace's engine folder, read-only at the engine's path.
/// Only the prepare pod (the builder image) writes the workspace's top folder; every later
/// pod mounts it read-only, so no stage can change the engine a later stage pod runs.
pub(super) fn engine_mount() -> VolumeMount {
    VolumeMount {
        name: "workspace".into(),
        mount_path: paths::BIN_DIR.into(),
        sub_path: Some(paths::ENGINE.into()),
        read_only: Some(true),
        ..Default::default()
    }
}

/// What the controller hands a stage or push pod: the digests of what it reads, and the
/// source date epoch it stamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub digests: Digests,
    pub epoch: EpochArgs,
    /// The image's manifest annotations (the push pod's only).
    pub annotations: Vec<Annotation>,
    /// The images a stage pod pulls ahead for the Jobs that wait on it ([`pull_ahead`]).
    pub pulls_ahead: Vec<String>,
}

impl From<Digests> for Given {
    fn from(digests: Digests) -> Self {
        Given {
            digests,
            epoch: EpochArgs::default(),
            annotations: vec![],
            pulls_ahead: vec![],
        }
    }
}

/// A stage Job: the chain's base image, the engine binary from the workspace (the prepare
/// pod put it there; read-only here), as root; only the secrets its RUN commands ask for;
/// the digests of what it reads.
pub fn stage_job(
    ib: &ImageBuild,
    s: &Settings,
    pos: usize,
    sj: &StageJob,
    node: Option<&str>,
    deadline: &Deadline,
    given: Given,
) -> Job {
    let step = Step::Stage(pos, sj.label());
    let mut stage = StageArgs::in_pod(sj.stages.clone(), given.digests);
    stage.limits.size_limit = s.size_limit;
    stage.epoch = given.epoch;
    stage.layers = StageLayers::for_cache(ib.spec.cache.is_some());
    let args = PodCommand::Stage(stage).to_args();
    let mut volumes = vec![workspace_volume(ib)];
    let mut mounts = stage_workspace(&sj.stages);
    mounts.push(engine_mount());
    let wanted: Vec<_> = ib
        .spec
        .secrets
        .iter()
        .filter(|b| sj.secrets.contains(&b.id))
        .collect();
    if !wanted.is_empty() {
        volumes.push(Volume {
            name: "secrets".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(
                    wanted
                        .iter()
                        .map(|b| VolumeProjection {
                            secret: Some(SecretProjection {
                                name: b.secret_ref.name.clone(),
                                items: Some(vec![KeyToPath {
                                    key: b.secret_ref.key.clone(),
                                    path: b.id.clone(),
                                    mode: None,
                                }]),
                                optional: b.secret_ref.optional,
                            }),
                            ..Default::default()
                        })
                        .collect(),
                ),
                default_mode: None,
            }),
            ..Default::default()
        });
        mounts.push(mount("secrets", paths::SECRETS, true));
    }
    if sj.cache_mounts {
        volumes.push(match &ib.spec.cache_volume {
            Some(claim) => Volume {
                name: "cache".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: None,
                }),
                ..Default::default()
            },
            None => Volume {
                name: "cache".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        });
        mounts.push(mount("cache", paths::CACHE, false));
    }
    let container = Container {
        name: "stage".into(),
        image: Some(sj.image.clone().unwrap_or_else(|| s.builder_image.clone())),
        command: Some(vec![paths::BIN.into()]),
        args: Some(args),
        working_dir: Some("/".into()),
        volume_mounts: Some(mounts),
        resources: ib.spec.resources.clone(),
        security_context: Some(security::stage_container()),
        ..Default::default()
    };
    job(
        ib,
        &step,
        PodSpec {
            containers: std::iter::once(container)
                .chain(pull_ahead::containers(&given.pulls_ahead))
                .collect(),
            volumes: Some(volumes),
            affinity: pin(node),
            ..Default::default()
        },
        deadline,
    )
}

/// The push Job: the builder image with the push secret; nothing of the user's runs in it.
/// Its pod meets Pod Security "restricted"; it reads the workspace (mounted read-only),
/// checking what it reads against `digests`, and writes only the base layers it fetches, into
/// a volume of its own. A push is idempotent, so a failed one is tried again (M12).
pub fn push_job(
    ib: &ImageBuild,
    s: &Settings,
    target: &PushTarget,
    node: Option<&str>,
    deadline: &Deadline,
    given: Given,
) -> Job {
    let out = &ib.spec.output;
    let args = PodCommand::Push(PushArgs {
        workspace: paths::WORKSPACE.into(),
        destinations: target.destinations.clone(),
        registries: insecure(s, out.insecure_registry.then_some(target.registry.as_str())),
        blob_cache: Some(paths::PUSH_BLOBS.into()),
        epoch: given.epoch,
        digests: given.digests,
        annotations: given.annotations,
        cache_repo: ib.spec.cache.as_ref().map(|c| c.repository.clone()),
    })
    .to_args();
    let mut volumes = vec![
        workspace_volume(ib),
        Volume {
            name: "blobs".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        mount("workspace", paths::WORKSPACE, true),
        mount("blobs", paths::PUSH_BLOBS, false),
    ];
    let mut envs = Vec::new();
    if let Some(p) = &out.push_secret {
        volumes.push(Volume {
            name: "push-auth".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(p.name.clone()),
                items: Some(vec![KeyToPath {
                    key: ".dockerconfigjson".into(),
                    path: "config.json".into(),
                    mode: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount("push-auth", paths::PUSH_AUTH, true));
        envs.push(env(pod::env::DOCKER_CONFIG, paths::PUSH_AUTH));
    }
    add_pull_auth(ib, false, &mut volumes, &mut mounts, &mut envs);
    envs.push(security::result_token());
    let mut container = builder_container("push", s, args, envs, mounts, None);
    container.security_context = Some(security::restricted_container(false));
    let mut j = job(
        ib,
        &Step::Push,
        PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            affinity: pin(node),
            ..Default::default()
        },
        deadline,
    );
    if let Some(spec) = j.spec.as_mut() {
        spec.backoff_limit = Some(PUSH_ATTEMPTS - 1);
    }
    j
}

/// How many pods a push Job runs at most: a registry that fails a whole push (after the
/// engine's own retries) gets two more tries; tags move only once every blob is in.
pub const PUSH_ATTEMPTS: i32 = 3;

#[cfg(test)]
mod tests {
    use super::super::names::LABEL_STAGE;
    use super::*;
    use crate::reconcile::fixtures::{build, digest, settings};
    use crate::reconcile::validate;

    fn digests() -> Digests {
        let mut d = Digests::new(digest('a'));
        d.dockerfile = Some(digest('b'));
        d
    }

    #[test]
    fn stage_pods_get_no_token_no_service_links_and_only_their_secrets() {
        let ib = build();
        let sj = StageJob {
            stages: vec![0, 1],
            names: vec![Some("base".into()), Some("Build".into())],
            needs: vec![],
            image: Some("reg:5000/golang@sha256:ab".into()),
            secrets: vec!["tok".into()],
            ..Default::default()
        };
        let j = stage_job(
            &ib,
            &settings(),
            1,
            &sj,
            Some("node-a"),
            &Deadline(Some(600)),
            digests().into(),
        );
        assert_eq!(j.metadata.name.as_deref(), Some("web-3-s1-build"));
        let owner = &j.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "ImageBuild");
        assert_eq!(owner.controller, Some(true));
        let spec = j.spec.expect("spec");
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        let pod = spec.template.spec.expect("pod");
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.enable_service_links, Some(false));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("reg:5000/golang@sha256:ab"));
        assert_eq!(
            c.args.as_ref().expect("args")[3..7],
            ["--stage", "0", "--stage", "1"]
        );
        assert!(c.env.is_none(), "stage pods get no environment of ours");
        // H1: the workspace read-only, each stage of the chain its own folder writable, the
        // engine the prepare pod put in it read-only; the digests of what the pod reads in its
        // arguments. No init container: the engine is there already.
        assert!(pod.init_containers.is_none());
        assert_eq!(c.command.as_deref(), Some(&[paths::BIN.to_string()][..]));
        let mounts: Vec<(&str, Option<&str>, Option<bool>)> = c
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| m.name == "workspace")
            .map(|m| (m.mount_path.as_str(), m.sub_path.as_deref(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/.slipway/workspace", None, Some(true)),
                ("/.slipway/workspace/stages/0", Some("stages/0"), None),
                ("/.slipway/workspace/stages/1", Some("stages/1"), None),
                ("/.slipway/bin", Some("engine"), Some(true)),
            ]
        );
        let args = c.args.clone().expect("args");
        let at = |flag: &str| args.iter().position(|a| a == flag).map(|i| &args[i + 1]);
        assert_eq!(at("--plan-digest"), Some(&digest('a').to_string()));
        assert_eq!(at("--dockerfile-digest"), Some(&digest('b').to_string()));
        let vols = pod.volumes.expect("volumes");
        let secrets = vols.iter().find(|v| v.name == "secrets").expect("secrets");
        let srcs = secrets
            .projected
            .as_ref()
            .and_then(|p| p.sources.clone())
            .expect("sources");
        assert_eq!(srcs.len(), 1);
        assert_eq!(srcs[0].secret.as_ref().map(|s| s.name.as_str()), Some("s1"));
        assert!(!vols.iter().any(|v| v.name == "push-auth"));
        let affinity = pod.affinity.expect("pinned");
        let term = &affinity
            .node_affinity
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .expect("required")
            .node_selector_terms[0];
        assert_eq!(
            term.match_expressions.as_ref().expect("expr")[0].values,
            Some(vec!["node-a".to_string()])
        );
        assert_eq!(
            j.metadata.labels.as_ref().expect("labels")[LABEL_STAGE],
            "build"
        );
    }

    #[test]
    fn scratch_stage_runs_the_builder_image_and_push_gets_the_secret() {
        let ib = build();
        let sj = StageJob {
            stages: vec![2],
            names: vec![None],
            needs: vec![],
            image: None,
            cache_mounts: true,
            ..Default::default()
        };
        let stamped = EpochArgs {
            source_date_epoch: Some(1_700_000_000),
        };
        let j = stage_job(
            &ib,
            &settings(),
            0,
            &sj,
            None,
            &Deadline(None),
            Given {
                digests: digests(),
                epoch: stamped,
                annotations: vec![],
                pulls_ahead: vec![],
            },
        );
        let args = j.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        let args = args
            .and_then(|p| p.containers[0].args.clone())
            .expect("args");
        assert!(
            args.windows(2)
                .any(|w| w == ["--source-date-epoch", "1700000000"])
        );
        let pod = j.spec.and_then(|s| s.template.spec).expect("pod");
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("reg:5000/slipway/builder:1")
        );
        let vols = pod.volumes.expect("volumes");
        assert!(
            vols.iter()
                .any(|v| v.name == "cache" && v.empty_dir.is_some())
        );
        assert!(!vols.iter().any(|v| v.name == "secrets"));

        let target = validate::push_target(&ib.spec.output).expect("a reference");
        let mut d = Digests::new(digest('a'));
        d.results
            .push(format!("1={}", digest('1')).parse().expect("pair"));
        let p = push_job(
            &ib,
            &settings(),
            &target,
            None,
            &Deadline(None),
            Given {
                digests: d,
                epoch: stamped,
                annotations: vec![Annotation::new(
                    slipway_contract::annotations::REVISION,
                    "ab".repeat(20),
                )],
                pulls_ahead: vec![],
            },
        );
        // M12: a push is tried again; the digests of the plan and the target's result.
        assert_eq!(p.spec.as_ref().and_then(|s| s.backoff_limit), Some(2));
        let pod = p.spec.and_then(|s| s.template.spec).expect("pod");
        let args = pod.containers[0].args.clone().expect("args");
        assert!(
            args.windows(2)
                .any(|w| w == ["--source-date-epoch", "1700000000"])
        );
        assert!(
            args.windows(2)
                .any(|w| w == ["--result-digest".to_string(), format!("1={}", digest('1'))])
        );
        assert!(
            args.windows(2)
                .any(|w| w == ["--destination", "reg:5000/team/web:latest"])
        );
        assert!(args.windows(2).any(|w| w
            == [
                "--annotation".to_string(),
                format!("org.opencontainers.image.revision={}", "ab".repeat(20))
            ]));
        assert!(
            args.windows(2)
                .any(|w| w == ["--insecure-registry", "reg:5000"])
        );
        assert!(
            pod.volumes
                .expect("v")
                .iter()
                .any(|v| v.name == "push-auth")
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
    }
}
