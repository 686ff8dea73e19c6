//! The render step: the objects of one build (workspace claim, prepare, stage and push Jobs),
//! from the ImageBuild, the settings [`validate`](super::validate) read from it and, for stage
//! Jobs, the graph the prepare pod reported. Pure functions, unit-tested without a cluster.
//! [`names`] says what the objects are called and labelled, [`jobs`] what they hold
//! ([`prepare`] the prepare Job's), [`security`] how their pods are confined.

mod jobs;
mod names;
mod prepare;
pub(super) mod pull_ahead;
mod security;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, ResourceRequirements};
use slipway_contract::annotations::{Annotation, ImageOrigin};
use slipway_contract::epoch::{EpochArgs, resolve};
use slipway_contract::graph::BuildGraph;
use slipway_contract::trust::{Missing, Trusted};

#[cfg(test)]
pub use jobs::workspace_volume_of;
pub use jobs::{Given, claim_of, push_job, stage_job, use_claim, workspace_pvc};
#[cfg(test)]
pub use names::LABEL_BUILD;
pub use names::{
    ANNOTATION_BUILD, ANNOTATION_GRAPH, ANNOTATION_NODE, ANNOTATION_OUTPUTS, LABEL_GENERATION,
    build_selector, job_name, pvc_name,
};
pub use prepare::prepare_job;

use super::bases::base_images;
use super::context::Error;
use super::decide::{Create, Decision};
use super::observe::Observation;
use super::validate::{Build, InvalidOutput};
use crate::api::ImageBuild;

/// What the controller was started with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The builder image (static `slipway-builder` at `/slipway-builder`).
    pub builder_image: String,
    /// Registries spoken to over plain HTTP by every build (base images, push).
    pub insecure_registries: Vec<String>,
    pub default_workspace_size: String,
    /// `ttlSecondsAfterFinished` when a build does not say.
    pub default_ttl_seconds: i64,
    /// The requests and limits of a build container when its ImageBuild sets no
    /// `spec.resources` (M6: a RUN that fills the disk or the memory is stopped at its limit
    /// rather than pressing the node).
    pub default_resources: Option<ResourceRequirements>,
    /// The most a build's source (downloaded, unpacked or checked out) may take.
    pub size_limit: slipway_contract::size::Size,
    /// Keep a spare workspace claim per namespace for the next build (`spare`).
    pub workspace_spare: bool,
}

/// Which step of a build an object belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Prepare,
    /// A stage Job, by its graph position and label.
    Stage(usize, String),
    Push,
}

/// Seconds left of the build's timeout, for `activeDeadlineSeconds`.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadline(pub Option<i64>);

/// Why a Job the decision asks for cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("spec.source names no source")]
    NoSource,
    /// The inline source could not be put into the prepare pod's environment.
    #[error("{0}")]
    Inline(#[source] serde_json::Error),
    /// A stage Job was asked for that the prepare pod's graph does not have.
    #[error("no graph")]
    NoGraph,
    /// A digest the Job's pod must be given is not held (decide starts no such Job).
    #[error("{0}")]
    Digests(#[source] Missing),
    /// `spec.output` is not a reference: found when the push Job is due, as the prepare and
    /// stage Jobs do not need it.
    #[error("{0}")]
    Output(#[source] InvalidOutput),
    /// `sourceDateEpoch: git` and a prepare pod that reported no commit time.
    #[error("{0}")]
    Epoch(#[source] slipway_contract::epoch::ResolveError),
}

/// The objects of this reconcile, for [`apply`](super::apply).
#[derive(Debug)]
pub struct Rendered {
    /// This generation's workspace claim (created when missing).
    pub workspace: PersistentVolumeClaim,
    /// The Jobs the decision creates.
    pub jobs: Vec<Job>,
    /// A spare made like the workspace claim, for the namespace's next build (`spare`), when
    /// the controller keeps spares.
    pub spare: Option<PersistentVolumeClaim>,
}

/// The workspace claim and the Jobs the decision creates.
pub fn render(
    ib: &ImageBuild,
    s: &Settings,
    build: &Build,
    seen: &Observation,
    d: &Decision,
) -> Result<Rendered, Error> {
    objects(ib, s, build, seen, d).map_err(Error::Render)
}

fn objects(
    ib: &ImageBuild,
    s: &Settings,
    build: &Build,
    seen: &Observation,
    d: &Decision,
) -> Result<Rendered, RenderError> {
    let node = seen.node.as_deref();
    let graph = seen.observed.graph.as_ref();
    let jobs = d
        .create
        .iter()
        .map(|c| match c {
            Create::Prepare => prepare_job(ib, s, &build.deadline),
            Create::Stage(pos) => {
                let g = graph.ok_or(RenderError::NoGraph)?;
                let sj = g.jobs.get(*pos).ok_or(RenderError::NoGraph)?;
                let digests = trusted(g, &seen.observed.outputs, &d.running)?
                    .for_stage_job(sj)
                    .map_err(RenderError::Digests)?;
                let epoch = epoch(build, g)?;
                Ok(stage_job(
                    ib,
                    s,
                    *pos,
                    sj,
                    node,
                    &build.deadline,
                    Given {
                        digests,
                        epoch,
                        annotations: vec![],
                        pulls_ahead: g.pulls_ahead(*pos),
                    },
                ))
            }
            Create::Push => {
                let target = build
                    .push
                    .as_ref()
                    .map_err(|e| RenderError::Output(e.clone()))?;
                let g = graph.ok_or(RenderError::NoGraph)?;
                let digests = trusted(g, &seen.observed.outputs, &d.running)?
                    .for_push(g)
                    .map_err(RenderError::Digests)?;
                let epoch = epoch(build, g)?;
                Ok(push_job(
                    ib,
                    s,
                    target,
                    node,
                    &build.deadline,
                    Given {
                        digests,
                        epoch,
                        annotations: image_annotations(ib, g),
                        pulls_ahead: vec![],
                    },
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut jobs: Vec<Job> = jobs
        .into_iter()
        .map(|j| with_default_resources(j, s.default_resources.as_ref()))
        .collect();
    // A spare the build took is its workspace under the spare's name.
    if let Some(claim) = &seen.existing.workspace {
        jobs.iter_mut().for_each(|j| use_claim(j, claim));
    }
    let workspace = workspace_pvc(ib, s);
    Ok(Rendered {
        // Only a build that leaves its workspace to the defaults (`spare`).
        spare: (s.workspace_spare && ib.spec.workspace.is_none())
            .then(|| crate::reconcile::spare::spare_of(&workspace)),
        workspace,
        jobs,
    })
}

/// The source date epoch stage and push pods stamp: the spec's seconds, or for `git` the
/// commit time the prepare pod reported.
fn epoch(build: &Build, g: &BuildGraph) -> Result<EpochArgs, RenderError> {
    let source_date_epoch = resolve(build.epoch, g.source_time).map_err(RenderError::Epoch)?;
    Ok(EpochArgs { source_date_epoch })
}

/// The pushed image's OCI annotations (`contract::annotations`), from what the controller
/// trusts: the spec's git URL, the commit and the target's base the prepare pod reported
/// (`created` the push pod adds from the epoch it is given). No stage pod has a say.
pub fn image_annotations(ib: &ImageBuild, g: &BuildGraph) -> Vec<Annotation> {
    let base = base_images(g).into_iter().find(|b| b.target);
    // Normalized as BuildKit writes it: `docker.io/library/alpine:latest`.
    let base_name = base.as_ref().map(|b| {
        slipway_frontend::reference::Reference::parse(&b.name)
            .map(|r| r.with_default_tag().to_string())
            .unwrap_or_else(|_| b.name.clone())
    });
    ImageOrigin {
        source: ib.spec.source.git.as_ref().map(|git| git.url.as_str()),
        revision: g.revision(),
        base: base
            .as_ref()
            .zip(base_name.as_deref())
            .map(|(b, name)| (name, b.digest.as_str())),
    }
    .annotations()
}

/// The digests the controller holds: the prepare step's, and those of the stages done; the
/// stages `running` on the node are awaited.
fn trusted<'a>(
    g: &'a BuildGraph,
    outputs: &'a BTreeMap<usize, slipway_contract::trust::Outputs>,
    running: &'a BTreeSet<usize>,
) -> Result<Trusted<'a>, RenderError> {
    let inputs = g.inputs.as_ref().ok_or(RenderError::NoGraph)?;
    Ok(Trusted {
        inputs,
        stages: outputs,
        running: Some(running),
    })
}

/// `job` with `defaults` in each of its containers that sets no resources (its init
/// containers, which only copy a file, are left alone).
fn with_default_resources(mut job: Job, defaults: Option<&ResourceRequirements>) -> Job {
    let Some(defaults) = defaults else { return job };
    let pod = job.spec.as_mut().and_then(|j| j.template.spec.as_mut());
    for c in pod.into_iter().flat_map(|p| p.containers.iter_mut()) {
        c.resources.get_or_insert_with(|| defaults.clone());
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::decide::{self, Observed};
    use crate::reconcile::fixtures;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    fn resources(memory: &str) -> ResourceRequirements {
        ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity(memory.into()),
            )])),
            ..Default::default()
        }
    }

    fn prepare_resources(ib: &ImageBuild, s: &Settings) -> Option<ResourceRequirements> {
        let build = fixtures::validated(ib, 1_000);
        let seen = Observation::default();
        let d = decide::decide(&Observed::default(), &build.limits);
        let r = render(ib, s, &build, &seen, &d).expect("renders");
        r.jobs[0]
            .spec
            .clone()
            .and_then(|j| j.template.spec)
            .and_then(|p| p.containers[0].resources.clone())
    }

    #[test]
    fn build_containers_get_the_default_resources_unless_the_build_sets_some() {
        let mut s = fixtures::settings();
        s.default_resources = Some(resources("4Gi"));
        let mut ib = fixtures::build();
        assert_eq!(prepare_resources(&ib, &s), Some(resources("4Gi")));
        ib.spec.resources = Some(resources("1Gi"));
        assert_eq!(prepare_resources(&ib, &s), Some(resources("1Gi")));
        ib.spec.resources = None;
        s.default_resources = None;
        assert_eq!(prepare_resources(&ib, &s), None);
    }

    #[test]
    fn git_epochs_are_the_commit_time_prepare_reported() {
        use slipway_contract::epoch::SourceDateEpoch;
        let mut build = fixtures::validated(&fixtures::build(), 1_000);
        let mut g = fixtures::graph();
        let at = |n| EpochArgs {
            source_date_epoch: n,
        };
        assert_eq!(epoch(&build, &g).expect("none"), at(None));
        build.epoch = Some(SourceDateEpoch::Seconds(9));
        assert_eq!(epoch(&build, &g).expect("seconds"), at(Some(9)));
        build.epoch = Some(SourceDateEpoch::Git);
        assert!(matches!(epoch(&build, &g), Err(RenderError::Epoch(_))));
        g.source_time = Some(1_650_000_000);
        assert_eq!(epoch(&build, &g).expect("git"), at(Some(1_650_000_000)));
    }

    #[test]
    fn the_image_is_annotated_with_what_the_controller_trusts() {
        use crate::api::GitSource;
        use slipway_contract::annotations::{BASE_DIGEST, BASE_NAME, REVISION, SOURCE};
        let mut g = fixtures::graph();
        let get =
            |a: &[Annotation], k: &str| a.iter().find(|x| x.key == k).map(|x| x.value.clone());
        // Inline source, no commit: only the base, named as BuildKit names it.
        let mut ib = fixtures::build();
        let a = image_annotations(&ib, &g);
        assert_eq!(
            get(&a, BASE_NAME).as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(get(&a, BASE_DIGEST).as_deref(), Some("sha256:00"));
        assert_eq!((get(&a, SOURCE), get(&a, REVISION)), (None, None));
        // A git source and the commit prepare reported.
        let sha = "0123456789abcdef0123456789abcdef01234567";
        ib.spec.source.inline = None;
        ib.spec.source.git = Some(GitSource {
            url: "https://git.example/team/web.git".into(),
            ..Default::default()
        });
        g.source_revision = Some(sha.into());
        let a = image_annotations(&ib, &g);
        assert_eq!(
            get(&a, SOURCE).as_deref(),
            Some("https://git.example/team/web.git")
        );
        assert_eq!(get(&a, REVISION).as_deref(), Some(sha));
        // A revision that is no commit id is left out; FROM scratch has no base.
        g.source_revision = Some("v1.0".into());
        for j in &mut g.jobs {
            j.base = None;
            j.image = None;
        }
        let a = image_annotations(&ib, &g);
        let keys: Vec<&str> = a.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, [SOURCE]);
    }

    #[test]
    fn a_job_made_beside_a_running_stage_awaits_its_outputs() {
        use crate::reconcile::decide::{Create, JobObs, JobState};
        let obs = |state, scheduled| JobObs {
            name: "j".into(),
            state,
            start: None,
            completion: None,
            result: None,
            pods: crate::reconcile::pods::PodsSeen {
                scheduled,
                ..Default::default()
            },
        };
        let (ib, s) = (fixtures::build(), fixtures::settings());
        let build = fixtures::validated(&ib, 1_000);
        let mut seen = Observation::default();
        seen.observed.prepare = Some(obs(decide::JobState::Succeeded, false));
        seen.observed.graph = Some(fixtures::graph());
        seen.observed.stages.insert(0, obs(JobState::Running, true));
        let d = decide::decide(&seen.observed, &build.limits);
        assert_eq!(d.create, vec![Create::Stage(1)]);
        let r = render(&ib, &s, &build, &seen, &d).expect("renders");
        let pod = r.jobs[0].spec.clone().and_then(|j| j.template.spec);
        let args = pod
            .and_then(|p| p.containers[0].args.clone())
            .unwrap_or_default();
        assert!(
            args.windows(2).any(|w| w == ["--await-outputs", "0"]),
            "{args:?}"
        );
        assert!(!args.iter().any(|a| a == "--result-digest"), "{args:?}");
    }
}
