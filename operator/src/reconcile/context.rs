//! What every reconcile shares ([`Ctx`]: the client, settings, metrics, event recorder, the
//! controller's cache of ImageBuilds and the retry backoff), the API handles of one namespace
//! ([`Apis`]), and the reconcile's [`Error`]: one variant per step that can fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use super::apply::ApplyError;
use super::early::Early;
use super::render::{RenderError, Settings};
use super::validate::Invalid;
use crate::api::ImageBuild;
use crate::metrics::Metrics;

pub struct Ctx {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// One recorder for all reconciles, so that repeated events are aggregated.
    pub recorder: Recorder,
    /// The controller's cache of ImageBuilds: per-build state of a build gone from it is
    /// dropped.
    pub builds: Store<ImageBuild>,
    pub backoff: Backoff,
    /// The prepare and push pods whose logs are followed for their signed result.
    pub early: Early,
    pub ended: Ended,
}

impl Ctx {
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        builds: Store<ImageBuild>,
        early: Early,
    ) -> Self {
        let reporter = Reporter {
            controller: "slipway-operator".into(),
            instance: std::env::var("HOSTNAME").ok(),
        };
        Ctx {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            builds,
            backoff: Backoff::default(),
            early,
            ended: Ended::default(),
        }
    }
}

/// The API handles of one namespace.
pub struct Apis {
    pub builds: Api<ImageBuild>,
    pub jobs: Api<Job>,
    pub pvcs: Api<PersistentVolumeClaim>,
    pub pods: Api<Pod>,
    /// core/v1 Events, read only: why the Job controller could not create a pod.
    pub events: Api<Event>,
}

impl Apis {
    pub fn namespaced(client: &Client, ns: &str) -> Self {
        Apis {
            builds: Api::namespaced(client.clone(), ns),
            jobs: Api::namespaced(client.clone(), ns),
            pvcs: Api::namespaced(client.clone(), ns),
            pods: Api::namespaced(client.clone(), ns),
            events: Api::namespaced(client.clone(), ns),
        }
    }
}

/// Why a reconcile failed, by step; it is retried with [`Backoff`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Validate(#[source] Invalid),
    /// Listing the build's Jobs and claims, or reading its pods' results.
    #[error("kubernetes API: {0}")]
    Observe(#[source] kube::Error),
    #[error("{0}")]
    Render(#[source] RenderError),
    /// Creating, adopting or removing the build's objects.
    #[error("{0}")]
    Apply(#[source] ApplyError),
    /// Writing the status.
    #[error("kubernetes API: {0}")]
    Status(#[source] kube::Error),
    /// Removing a finished build's objects once its TTL passed.
    #[error("{0}")]
    Expire(#[source] ApplyError),
}

impl Error {
    /// The step that failed, for logs.
    pub fn step(&self) -> &'static str {
        match self {
            Error::Validate(_) => "validate",
            Error::Observe(_) => "observe",
            Error::Render(_) => "render",
            Error::Apply(_) => "apply",
            Error::Status(_) => "status",
            Error::Expire(_) => "expire",
        }
    }
}

/// The builds this controller wrote a finished status for, by uid and generation. The cache
/// of ImageBuilds can trail that write while the Job deletions that stop a failed build wake a
/// reconcile at once: that reconcile must not take the build as running (it would make the
/// stopped Jobs again and write `Building` over `Failed`). Believed for [`ENDED_FOR`] only: a
/// status someone else wrote since (an old leader, a restore) is not ignored for good.
#[derive(Default)]
pub struct Ended(Mutex<HashMap<ObjectRef<ImageBuild>, (String, i64, Instant)>>);

/// Far longer than a watch event takes to reach the cache.
pub const ENDED_FOR: Duration = Duration::from_secs(30);

impl Ended {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ImageBuild>, (String, i64, Instant)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn id(ib: &ImageBuild) -> (String, i64) {
        let m = &ib.metadata;
        (m.uid.clone().unwrap_or_default(), m.generation.unwrap_or(1))
    }

    /// Its finished status was written.
    pub fn record(&self, ib: &ImageBuild) {
        let (uid, generation) = Self::id(ib);
        self.map()
            .insert(ObjectRef::from_obj(ib), (uid, generation, Instant::now()));
    }

    /// This generation of `ib` ended here, whatever `ib` (from the cache) says.
    pub fn ended(&self, ib: &ImageBuild) -> bool {
        self.map()
            .get(&ObjectRef::from_obj(ib))
            .is_some_and(|(uid, generation, at)| {
                (uid.clone(), *generation) == Self::id(ib) && at.elapsed() < ENDED_FOR
            })
    }

    /// The cache caught up with `ib` (or it is being deleted); and builds gone from it.
    pub fn forget(&self, ib: &ImageBuild, exists: impl Fn(&ObjectRef<ImageBuild>) -> bool) {
        let me = ObjectRef::from_obj(ib);
        self.map()
            .retain(|b, (.., at)| *b != me && exists(b) && at.elapsed() < ENDED_FOR);
    }
}

/// Consecutive reconcile errors per build, for the retry delay.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<ObjectRef<ImageBuild>, u32>>);

impl Backoff {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ImageBuild>, u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more failure: 2 s, 4 s, 8 s ... at most 5 minutes.
    pub fn failed(&self, build: ObjectRef<ImageBuild>) -> Duration {
        let mut m = self.map();
        let n = m.entry(build).or_insert(0);
        *n += 1;
        Duration::from_secs((1u64 << (*n).min(8)).min(300))
    }

    pub fn succeeded(&self, build: &ObjectRef<ImageBuild>) {
        self.map().remove(build);
    }

    /// Drops the counts of builds that are gone (they are never reconciled again).
    pub fn retain(&self, exists: impl Fn(&ObjectRef<ImageBuild>) -> bool) {
        self.map().retain(|k, _| exists(k));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes_and_forgets_gone_builds() {
        let b = Backoff::default();
        let a = ObjectRef::<ImageBuild>::new("a").within("ns");
        let waits: Vec<u64> = (0..10).map(|_| b.failed(a.clone()).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 256, 256]);
        b.succeeded(&a);
        assert_eq!(b.failed(a.clone()).as_secs(), 2);
        let gone = ObjectRef::<ImageBuild>::new("gone").within("ns");
        b.failed(gone.clone());
        assert_eq!(b.len(), 2);
        b.retain(|k| k != &gone);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn backoff_is_per_build_whatever_its_resource_version() {
        let b = Backoff::default();
        let mut ib = crate::reconcile::fixtures::build();
        ib.metadata.resource_version = Some("1".into());
        b.failed(ObjectRef::from_obj(&ib));
        ib.metadata.resource_version = Some("2".into());
        assert_eq!(b.failed(ObjectRef::from_obj(&ib)).as_secs(), 4);
        b.succeeded(&ObjectRef::from_obj(&ib));
        assert_eq!(b.len(), 0);
    }
}
