//! The apply step: makes the cluster hold what the decision asks for. Objects of superseded
//! generations go, the workspace claim is taken from the spares or created (and a spare made
//! for the next build, see [`spare`]), the new Jobs are created, the prepare pod's graph
//! and each stage pod's digests are kept on their Jobs, and a failed build's running Jobs are
//! stopped. Two generic helpers do
//! every write, for every kind: [`create_or_adopt`] and [`delete_if_present`].
//!
//! Adoption is a trust boundary: an object in the way of a name the build needs is taken as
//! the build's own only when its ownerReference is this ImageBuild's uid. Anyone else's
//! object of that name (made by hand, or by an earlier ImageBuild of the same name) is an
//! error naming it, never a source of results.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::info;

use super::context::{Apis, Error};
use super::decide::{Decision, JobState};
use super::observe::{Observation, job_obs};
use super::render::{
    ANNOTATION_GRAPH, ANNOTATION_NODE, ANNOTATION_OUTPUTS, Rendered, Step, job_name, use_claim,
};
use super::spare::{self, Taken};
use super::validate::Build;
use crate::api::ImageBuild;

/// Why the cluster could not be brought to what the decision asks for.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error(
        "{kind} {namespace}/{name} exists and is not owned by ImageBuild {build}: it is not adopted"
    )]
    NotOwned {
        kind: String,
        namespace: String,
        name: String,
        build: String,
    },
    /// The API server refused the object as invalid (422): retrying cannot help.
    #[error("{kind} {name} was refused by the API server: {message}")]
    Invalid {
        kind: String,
        name: String,
        message: String,
    },
}

impl ApplyError {
    /// A 422 on `kind`/`name` as [`ApplyError::Invalid`], anything else as it is.
    fn refused(kind: &str, name: &str, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.code == 422 => ApplyError::Invalid {
                kind: kind.into(),
                name: name.into(),
                message: s.message,
            },
            e => ApplyError::Api(e),
        }
    }
}

/// Whether `meta` names the object with `uid` (the ImageBuild, or a pod's Job) as an owner.
pub fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

/// Applies the decision: superseded generations, the workspace, the graph, new Jobs, stop.
pub async fn apply(
    apis: &Apis,
    ib: &ImageBuild,
    build: &Build,
    seen: &Observation,
    d: &Decision,
    objects: Rendered,
) -> Result<(), Error> {
    writes(apis, ib, build, seen, d, objects)
        .await
        .map_err(Error::Apply)
}

async fn writes(
    apis: &Apis,
    ib: &ImageBuild,
    build: &Build,
    seen: &Observation,
    d: &Decision,
    objects: Rendered,
) -> Result<(), ApplyError> {
    for j in &seen.existing.superseded_jobs {
        info!(build = %build.key(), job = %j.name_any(), "removing a superseded Job");
        delete_if_present(&apis.jobs, j).await?;
    }
    for c in &seen.existing.superseded_claims {
        delete_if_present(&apis.pvcs, c).await?;
    }
    let Rendered {
        workspace,
        mut jobs,
        spare,
    } = objects;
    let mut spare_due = None;
    // A failed build needs no workspace: it only stops its Jobs.
    if seen.existing.workspace.is_none() && !d.phase.finished() {
        let taken = match &spare {
            Some(_) => spare::take(&apis.pvcs, &workspace, build).await,
            None => Taken::default(),
        };
        match &taken.claim {
            Some(claim) => jobs.iter_mut().for_each(|j| use_claim(j, claim)),
            None => create_or_adopt(&apis.pvcs, &workspace, build).await?,
        }
        spare_due = spare.filter(|_| taken.make_next);
    }
    if seen.graph_read
        && let Some(g) = &seen.observed.graph
    {
        // Kept on the Job, so the pod's result is read once.
        let patch = serde_json::json!({"metadata": {"annotations": {
            ANNOTATION_GRAPH: serde_json::to_string(g).unwrap_or_default(),
            ANNOTATION_NODE: seen.node.clone(),
        }}});
        let name = job_name(ib, &Step::Prepare);
        apis.jobs
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| ApplyError::refused("Job", &name, e))?;
    }
    for (name, outputs) in &seen.outputs_read {
        // Kept on the stage Job too: the digests later pods are given outlive its pod.
        let patch = serde_json::json!({"metadata": {"annotations": {
            ANNOTATION_OUTPUTS: serde_json::to_string(outputs).unwrap_or_default(),
        }}});
        apis.jobs
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| ApplyError::refused("Job", name, e))?;
    }
    for job in &jobs {
        info!(build = %build.key(), job = ?job.metadata.name, "creating Job");
        create_or_adopt(&apis.jobs, job, build).await?;
    }
    // After the build's own Jobs: the next build's spare is not on this one's path.
    if let Some(s) = &spare_due {
        spare::make(&apis.pvcs, s, build).await;
    }
    if d.stop {
        stop(apis, seen).await?;
    }
    Ok(())
}

/// Deletes the build's running Jobs (and so their pods): it failed.
pub async fn stop(apis: &Apis, seen: &Observation) -> Result<(), ApplyError> {
    for j in seen.existing.jobs.values() {
        if job_obs(j).state == JobState::Running {
            delete_if_present(&apis.jobs, j).await?;
        }
    }
    Ok(())
}

/// Creates `obj`; when an object of its name exists already, adopts it if the build owns it
/// (an earlier reconcile made it) and fails naming it otherwise.
pub async fn create_or_adopt<K>(api: &Api<K>, obj: &K, build: &Build) -> Result<(), ApplyError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = obj.name_any();
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(&name).await?;
            if owned_by(existing.meta(), &build.uid) {
                Ok(())
            } else {
                Err(ApplyError::NotOwned {
                    kind: K::kind(&()).into_owned(),
                    namespace: build.namespace.clone(),
                    name,
                    build: build.key(),
                })
            }
        }
        Err(e) => Err(ApplyError::refused(&K::kind(&()), &name, e)),
    }
}

/// Deletes `obj` (its pods too, for a Job), unless it is gone already. The uid precondition
/// makes sure the object deleted is the one observed, not a newer one of the same name.
pub async fn delete_if_present<K>(api: &Api<K>, obj: &K) -> Result<(), ApplyError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let params = DeleteParams {
        preconditions: obj.uid().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&obj.name_any(), &params).await {
        Ok(_) => Ok(()),
        // 404: gone already; 409: the uid differs, so the object observed is gone too.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::decide::{self, JobObs, Observed};
    use crate::reconcile::fixtures::{self, Done, Scenario, UID, job, mocked, timeout};
    use crate::reconcile::observe::Existing;
    use crate::reconcile::render::{self, Settings};
    use k8s_openapi::api::batch::v1::Job;

    /// Applies what the decision on `seen` asks for, against the scenario's API server.
    async fn applied(scenario: Scenario, seen: Observation) -> Result<(), Error> {
        let ib = fixtures::build();
        let build = fixtures::validated(&ib, 1_000);
        let d = decide::decide(&seen.observed, &build.limits);
        let s: Settings = fixtures::settings();
        let objects = render::render(&ib, &s, &build, &seen, &d).expect("renders");
        let (apis, server) = mocked();
        let calls = server.run(scenario.calls());
        let r = apply(&apis, &ib, &build, &seen, &d, objects).await;
        timeout(calls).await;
        r
    }

    fn obs(j: &Job) -> JobObs {
        job_obs(j)
    }

    #[tokio::test]
    async fn a_new_build_gets_its_workspace_then_its_prepare_job() {
        applied(Scenario::ApplyNewBuild, Observation::default())
            .await
            .expect("applied");
    }

    #[tokio::test]
    async fn the_graph_read_is_kept_and_the_first_stage_starts() {
        let prepare = job(&Step::Prepare, 3, Some(UID), Done::Complete);
        let seen = Observation {
            existing: Existing {
                workspace: Some("web-3-workspace".into()),
                ..Default::default()
            },
            observed: Observed {
                prepare: Some(obs(&prepare)),
                graph: Some(fixtures::graph()),
                ..Default::default()
            },
            node: Some("node-a".into()),
            graph_read: true,
            ..Default::default()
        };
        applied(Scenario::ApplyGraphRead, seen)
            .await
            .expect("applied");
    }

    #[tokio::test]
    async fn superseded_objects_go_and_a_strangers_job_is_not_adopted() {
        let seen = Observation {
            existing: Existing {
                superseded_jobs: vec![job(&Step::Prepare, 2, Some(UID), Done::Complete)],
                superseded_claims: vec![fixtures::claim(2, Some(UID))],
                ..Default::default()
            },
            ..Default::default()
        };
        let e = applied(Scenario::ApplySupersededThenStranger, seen)
            .await
            .expect_err("not adopted");
        assert_eq!(
            e.to_string(),
            "Job ns/web-3-prepare exists and is not owned by ImageBuild ns/web: it is not adopted"
        );
    }

    #[tokio::test]
    async fn the_builds_own_objects_are_adopted() {
        applied(Scenario::ApplyAdoptOwn, Observation::default())
            .await
            .expect("adopted");
    }

    #[tokio::test]
    async fn a_failed_build_stops_its_running_jobs() {
        let prepare = job(&Step::Prepare, 3, Some(UID), Done::Complete);
        let base = job(&Step::Stage(0, "base".into()), 3, Some(UID), Done::Failed);
        let app = job(&Step::Stage(1, "app".into()), 3, Some(UID), Done::Running);
        let seen = Observation {
            existing: Existing {
                workspace: Some("web-3-workspace".into()),
                jobs: [&prepare, &base, &app]
                    .into_iter()
                    .map(|j| (j.name_any(), j.clone()))
                    .collect(),
                ..Default::default()
            },
            observed: Observed {
                prepare: Some(obs(&prepare)),
                graph: Some(fixtures::graph()),
                stages: [(0, obs(&base)), (1, obs(&app))].into(),
                ..Default::default()
            },
            ..Default::default()
        };
        applied(Scenario::ApplyStop, seen).await.expect("stopped");
    }

    #[test]
    fn ownership_is_by_uid() {
        let mine = fixtures::claim(3, Some(UID));
        let theirs = fixtures::claim(3, Some("uid-other"));
        let nobodys = fixtures::claim(3, None);
        assert!(owned_by(mine.meta(), UID));
        assert!(!owned_by(theirs.meta(), UID));
        assert!(!owned_by(nobodys.meta(), UID));
    }
}
