//! `ttlSecondsAfterFinished`: once it has passed, a finished build's Jobs (and so their Pods)
//! and its workspace go; the ImageBuild and its status stay. Only objects this ImageBuild
//! owns are removed.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use tracing::info;

use super::apply::{ApplyError, delete_if_present, owned_by};
use super::context::{Apis, Error};
use super::render::{Settings, build_selector};
use super::spare;
use super::validate::Build;
use crate::api::{ImageBuild, ImageBuildStatus};

/// The build's `ttlSecondsAfterFinished`, else the operator's default.
pub fn ttl(ib: &ImageBuild, s: &Settings) -> i64 {
    ib.spec
        .ttl_seconds_after_finished
        .map(i64::from)
        .unwrap_or(s.default_ttl_seconds)
}

/// Seconds until a build that finished as `status` says expires, at `now` (0 or less: now).
pub fn seconds_left(ttl: i64, status: &ImageBuildStatus, now: Timestamp) -> i64 {
    let done = status
        .completion_time
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or_else(|| now.as_second());
    done + ttl - now.as_second()
}

/// Requeues until the TTL has passed, then removes the build's Jobs and workspace claims (its
/// own and the spares it made).
pub async fn expire(
    apis: &Apis,
    ib: &ImageBuild,
    build: &Build,
    s: &Settings,
) -> Result<Action, Error> {
    remove(apis, ib, build, s).await.map_err(Error::Expire)
}

async fn remove(
    apis: &Apis,
    ib: &ImageBuild,
    build: &Build,
    s: &Settings,
) -> Result<Action, ApplyError> {
    let status = ib.status.clone().unwrap_or_default();
    let left = seconds_left(ttl(ib, s), &status, Timestamp::now());
    if left > 0 {
        return Ok(Action::requeue(Duration::from_secs(left as u64)));
    }
    let lp = ListParams::default().labels(&build_selector(&build.name));
    let mut jobs = apis.jobs.list(&lp).await?.items;
    let mut claims = apis.pvcs.list(&lp).await?.items;
    jobs.retain(|j| owned_by(j.meta(), &build.uid));
    claims.retain(|c| owned_by(c.meta(), &build.uid));
    if !jobs.is_empty() || !claims.is_empty() {
        info!(build = %build.key(), "ttlSecondsAfterFinished passed: removing its Jobs and workspace");
    }
    for j in &jobs {
        delete_if_present(&apis.jobs, j).await?;
    }
    for c in &claims {
        delete_if_present(&apis.pvcs, c).await?;
    }
    // The spares its start made that no later build took.
    spare::remove_owned(&apis.pvcs, build).await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn the_ttl_counts_from_completion() {
        let now = Timestamp::from_second(1_000).expect("time");
        let done = ImageBuildStatus {
            completion_time: Some(Time(Timestamp::from_second(900).expect("time"))),
            ..Default::default()
        };
        assert_eq!(seconds_left(3600, &done, now), 3500);
        assert_eq!(seconds_left(60, &done, now), -40);
        assert_eq!(seconds_left(60, &ImageBuildStatus::default(), now), 60);
    }
}

#[cfg(test)]
mod mocked_tests {
    use super::*;
    use crate::api::Phase;
    use crate::reconcile::fixtures::{
        self, BY_BUILD, CLAIMS, Call, Done, JOBS, UID, claim, job, list, mocked, status, timeout,
    };
    use crate::reconcile::render::Step;
    use crate::reconcile::spare::tests::{SPARES, spares};
    use http::Method;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    /// The TTL passed: the build's Job and claim go and the spare it made (`-a`); a stranger's
    /// Job and the spare another build made stay.
    fn calls() -> Vec<Call> {
        let jobs = [
            job(&Step::Prepare, 3, Some(UID), Done::Complete),
            job(&Step::Push, 3, Some("uid-other"), Done::Complete),
        ];
        let delete = |path: String| Call::new(Method::DELETE, path, status(200, "deleted"));
        vec![
            Call::new(Method::GET, JOBS, list("JobList", &jobs)).query(BY_BUILD),
            Call::new(
                Method::GET,
                CLAIMS,
                list("PersistentVolumeClaimList", &[claim(3, Some(UID))]),
            )
            .query(BY_BUILD),
            delete(format!("{JOBS}/web-3-prepare")),
            delete(format!("{CLAIMS}/web-3-workspace")),
            Call::new(
                Method::GET,
                CLAIMS,
                list("PersistentVolumeClaimList", &spares()),
            )
            .query(SPARES),
            // Only as listed: taken since, it is another build's workspace (409).
            delete(format!("{CLAIMS}/slipway-spare-a")).body(serde_json::json!({
                "preconditions": {"uid": "uid-of-slipway-spare-a", "resourceVersion": "7"}
            })),
        ]
    }

    #[tokio::test]
    async fn an_expired_build_loses_its_own_objects_only() {
        let mut ib = fixtures::build();
        ib.status = Some(ImageBuildStatus {
            phase: Some(Phase::Succeeded),
            observed_generation: Some(3),
            completion_time: Some(Time(Timestamp::from_second(1_000).expect("time"))),
            ..Default::default()
        });
        let build = fixtures::validated(&ib, 1_000);
        let (apis, server) = mocked();
        let calls = server.run(calls());
        let action = expire(&apis, &ib, &build, &fixtures::settings())
            .await
            .expect("expired");
        timeout(calls).await;
        assert_eq!(action, Action::await_change());
    }
}
