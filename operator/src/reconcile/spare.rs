//! Spare workspace claims: a new build takes a claim made ahead of it, bound already, instead of
//! waiting for its own to be provisioned and for the scheduler to retry its prepare pod (about a
//! second with the test cluster's provisioner, more with a real one that creates a directory in
//! a helper pod or a cloud disk; a kaniko pod or a buildkitd client needs no volume at all).
//!
//! Each spare serves exactly one build, as the claim that build would have made itself: a
//! claim is never handed from a finished build to the next, so nothing a build wrote reaches
//! another (`spec.cacheVolume` may not name one, `validate`). Only builds that leave their
//! workspace to the defaults take or make spares: a spare of an unusual size would mostly sit
//! idle. A spare is labelled as such and owned, not controlled, by the build whose start made
//! it: it goes with that build (its `ttlSecondsAfterFinished`, see `expire`, or the
//! ImageBuild's deletion) unless a later build took it first. A build that takes the last one
//! makes the next: one spare per namespace, or one per build of a burst. The namespace's users
//! could make a claim that looks like a spare, as they could make one named like a build's own
//! claim and owned by it (`apply::create_or_adopt` adopts that too): a namespace is trusted as
//! a whole with its builds' workspaces.
//!
//! Taking or making a spare never fails a build: the build makes its own claim instead (a
//! quota that counts the spare); a controller refused the list or the update of claims makes
//! no spare either, so that none pile up untaken.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use super::validate::Build;

/// On a spare: "true" (what the controller lists spares by).
pub const LABEL_SPARE: &str = "build.slipway.dev/spare";
/// On a spare: the class and size it was requested with (`<class>/<size>`, the class `-` for
/// the default one, empty for none), as the API server fills in the default class on creation.
pub const ANNOTATION_REQUEST: &str = "build.slipway.dev/spare-request";
const NAME_PREFIX: &str = "slipway-spare-";

/// The selector of spares.
pub fn selector() -> String {
    format!("{LABEL_SPARE}=true")
}

/// What a claim was asked for: class and size.
fn request(claim: &PersistentVolumeClaim) -> String {
    let spec = claim.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned())
        .map(|q| q.0)
        .unwrap_or_default();
    // `-` is no class name (they start with a letter or digit).
    let class = spec.storage_class_name.unwrap_or_else(|| "-".into());
    format!("{class}/{size}")
}

/// Whether a claim's name is one the controller gives spares.
pub fn named_like(name: &str) -> bool {
    name.starts_with(NAME_PREFIX)
}

/// A spare made like `workspace` (the build's own claim), owned by the same build, not
/// controlled by it.
pub fn spare_of(workspace: &PersistentVolumeClaim) -> PersistentVolumeClaim {
    let owners = workspace
        .owner_references()
        .iter()
        .map(|o| OwnerReference {
            controller: None,
            block_owner_deletion: None,
            ..o.clone()
        })
        .collect();
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            generate_name: Some(NAME_PREFIX.into()),
            namespace: workspace.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([
                (LABEL_SPARE.to_string(), "true".to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "slipway".to_string(),
                ),
            ])),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_REQUEST.to_string(),
                request(workspace),
            )])),
            owner_references: Some(owners),
            ..Default::default()
        },
        spec: workspace.spec.clone(),
        status: None,
    }
}

/// Whether `spare` can stand for `workspace`: a spare not being deleted, asked for with the
/// same class, size and access modes.
pub fn fits(spare: &PersistentVolumeClaim, workspace: &PersistentVolumeClaim) -> bool {
    let access = |c: &PersistentVolumeClaim| c.spec.as_ref().and_then(|s| s.access_modes.clone());
    spare.labels().get(LABEL_SPARE).map(String::as_str) == Some("true")
        && spare.metadata.deletion_timestamp.is_none()
        && spare.annotations().get(ANNOTATION_REQUEST) == Some(&request(workspace))
        && access(spare) == access(workspace)
        && spare.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Lost")
}

/// `spare` as the build's own claim: `workspace`'s labels and owner (the build, as
/// controller), its resourceVersion kept so that two builds cannot both take it.
pub fn taken(
    spare: &PersistentVolumeClaim,
    workspace: &PersistentVolumeClaim,
) -> PersistentVolumeClaim {
    let mut c = spare.clone();
    c.metadata.labels = workspace.metadata.labels.clone();
    c.metadata.owner_references = workspace.metadata.owner_references.clone();
    if let Some(a) = c.metadata.annotations.as_mut() {
        a.remove(ANNOTATION_REQUEST);
    }
    c
}

/// The fitting spares of `listed`, bound ones first.
pub fn candidates(
    listed: Vec<PersistentVolumeClaim>,
    workspace: &PersistentVolumeClaim,
) -> Vec<PersistentVolumeClaim> {
    let mut c: Vec<_> = listed.into_iter().filter(|s| fits(s, workspace)).collect();
    let bound = |s: &PersistentVolumeClaim| {
        s.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    };
    c.sort_by_key(|s| (!bound(s), s.name_any()));
    c
}

/// What [`take`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// The claim the build now owns, if it took one.
    pub claim: Option<String>,
    /// No fitting spare is left for the next build, and the controller may take them: make
    /// one.
    pub make_next: bool,
}

/// Takes a spare fitting `workspace` for its build. An error only costs the spare.
pub async fn take(
    api: &Api<PersistentVolumeClaim>,
    workspace: &PersistentVolumeClaim,
    build: &Build,
) -> Taken {
    let listed = match api.list(&ListParams::default().labels(&selector())).await {
        Ok(l) => l.items,
        Err(e) => {
            warn!(build = %build.key(), "listing spare workspace claims: {e}");
            return Taken::default();
        }
    };
    let mut spares = candidates(listed, workspace).into_iter();
    while let Some(s) = spares.next() {
        let name = s.name_any();
        match api
            .replace(&name, &PostParams::default(), &taken(&s, workspace))
            .await
        {
            Ok(_) => {
                info!(build = %build.key(), claim = %name, "took a spare workspace claim");
                return Taken {
                    claim: Some(name),
                    make_next: spares.next().is_none(),
                };
            }
            // Another build took it, or it is gone: the next one.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => continue,
            Err(e) => {
                warn!(build = %build.key(), claim = %name, "taking a spare workspace claim: {e}");
                return Taken::default();
            }
        }
    }
    Taken {
        claim: None,
        make_next: true,
    }
}

/// Makes a spare for the namespace's next build. An error only costs that build a second.
pub async fn make(api: &Api<PersistentVolumeClaim>, spare: &PersistentVolumeClaim, build: &Build) {
    if let Err(e) = api.create(&PostParams::default(), spare).await {
        warn!(build = %build.key(), "making a spare workspace claim: {e}");
    }
}

/// Deletes the spares `build` made that no build took: they go with it. Each only as listed
/// (uid and resourceVersion): one a build took meanwhile is that build's workspace.
pub async fn remove_owned(
    api: &Api<PersistentVolumeClaim>,
    build: &Build,
) -> Result<(), kube::Error> {
    let mut spares = api
        .list(&ListParams::default().labels(&selector()))
        .await?
        .items;
    spares.retain(|s| super::apply::owned_by(s.meta(), &build.uid));
    for s in spares {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: s.uid(),
                resource_version: s.resource_version(),
            }),
            ..DeleteParams::background()
        };
        match api.delete(&s.name_any(), &params).await {
            Ok(_) => {
                info!(build = %build.key(), claim = %s.name_any(), "removed a spare workspace claim it made")
            }
            // 409: taken (or changed) since; 404: gone already.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "spare_tests.rs"]
pub(super) mod tests;
