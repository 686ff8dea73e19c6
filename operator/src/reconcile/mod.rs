//! The ImageBuild controller: a kube-runtime Controller owning the build's Jobs, and the
//! reconcile of one build as a pipeline of steps (after Stackable's operators):
//!
//! 1. [`validate`]: the spec as settings (timeout, deadline, parallelism, push target); no client;
//! 2. [`observe`]: the build's Jobs and workspace claim, and the results their pods reported;
//! 3. [`decide`]: where the build stands and what comes next; pure;
//! 4. [`render`]: the objects the decision needs; pure;
//! 5. [`apply`]: superseded generations removed, the workspace and Jobs created (or adopted,
//!    when this ImageBuild owns them), a failed build's Jobs stopped;
//! 6. [`status`]: events, metrics and the status patch.
//!
//! A finished build only waits for its `ttlSecondsAfterFinished` ([`expire`]). Everything is
//! found again by name, label and owner, so a restarted controller carries on.

mod apply;
mod context;
mod decide;
mod expire;
#[cfg(test)]
pub(crate) mod fixtures;
mod observe;
mod render;
mod status;
mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use self::apply::apply;
use self::context::Apis;
pub use self::context::{Ctx, Error};
use self::decide::decide;
use self::expire::expire;
use self::observe::observe;
pub use self::render::Settings;
use self::render::render;
use self::status::report;
use self::validate::validate;
use crate::api::{ImageBuild, Phase};
use crate::metrics::Metrics;

/// Runs the controller until SIGTERM (or `shutdown`).
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let builds = Api::<ImageBuild>::all(client.clone());
    let jobs = Api::<Job>::all(client.clone());
    let controller = Controller::new(builds, watcher::Config::default()).owns(
        jobs,
        watcher::Config::default().labels("app.kubernetes.io/managed-by=slipway"),
    );
    let store = controller.store();
    metrics.count_builds(store.clone());
    let ctx = Arc::new(Ctx::new(client, settings, metrics, store));
    info!("watching ImageBuilds");
    controller
        .shutdown_on_signal()
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                warn!("reconcile: {e}");
            }
        })
        .await;
    info!("controller stopped");
}

fn key(ib: &ImageBuild) -> String {
    format!("{}/{}", ib.namespace().unwrap_or_default(), ib.name_any())
}

fn error_policy(ib: Arc<ImageBuild>, e: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.metrics.reconcile_failed();
    let wait = ctx.backoff.failed(ObjectRef::from_obj(&*ib));
    // Builds deleted while failing are never reconciled again: forget them here.
    ctx.backoff.retain(|b| ctx.builds.get(b).is_some());
    warn!(build = %key(&ib), step = e.step(), error = %e, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

async fn reconcile(ib: Arc<ImageBuild>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let r = reconcile_build(&ib, &ctx).await;
    if r.is_ok() {
        ctx.backoff.succeeded(&ObjectRef::from_obj(&*ib));
    }
    r
}

/// One pass over one build: the steps, in order.
async fn reconcile_build(ib: &ImageBuild, ctx: &Ctx) -> Result<Action, Error> {
    if ib.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change()); // owner references take the Jobs and PVC along
    }
    let build = validate(ib, Timestamp::now())?;
    let apis = Apis::namespaced(&ctx.client, &build.namespace);
    if build.same_generation && finished(ib) {
        return expire(&apis, ib, &build, &ctx.settings).await;
    }
    let seen = observe(&apis, ib, &build).await?;
    let decision = decide(&seen.observed, &build.limits);
    let objects = render(ib, &ctx.settings, &build, &seen, &decision)?;
    apply(&apis, ib, &build, &seen, &decision, objects).await?;
    report(ctx, &apis, ib, &build, &decision).await?;
    Ok(requeue(ib, &build, &decision, &ctx.settings))
}

fn finished(ib: &ImageBuild) -> bool {
    ib.status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(Phase::finished)
}

/// When to look again: at the TTL once finished; else within a minute, or at the timeout.
fn requeue(ib: &ImageBuild, build: &validate::Build, d: &decide::Decision, s: &Settings) -> Action {
    if d.phase.finished() {
        return Action::requeue(Duration::from_secs(expire::ttl(ib, s).max(1) as u64));
    }
    // Job events wake us; the timeout (and a missed event) is covered by a timer.
    let left = (build.limit - build.elapsed).clamp(1, 60) as u64;
    Action::requeue(Duration::from_secs(left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::{Scenario, mocked_client, timeout};
    use kube::runtime::reflector::store;

    #[tokio::test]
    async fn a_new_build_is_observed_applied_and_reported_in_that_order() {
        let (client, server) = mocked_client();
        let metrics = Arc::new(Metrics::default());
        let ctx = Ctx::new(client, fixtures::settings(), metrics.clone(), store().0);
        let calls = server.run(Scenario::ReconcileNewBuild.calls());
        let action = reconcile(Arc::new(fixtures::build()), Arc::new(ctx))
            .await
            .expect("reconciled");
        timeout(calls).await;
        // Job events wake the controller; the timer covers the timeout.
        assert_eq!(action, Action::requeue(Duration::from_secs(60)));
        assert!(metrics.render().contains("slipway_reconciles_total 1\n"));
    }

    #[tokio::test]
    async fn a_failed_step_is_named_and_retried_later() {
        let (client, server) = mocked_client();
        let ctx = Arc::new(Ctx::new(
            client,
            fixtures::settings(),
            Arc::new(Metrics::default()),
            store().0,
        ));
        let calls = server.run(vec![
            fixtures::Call::new(
                http::Method::GET,
                fixtures::JOBS,
                fixtures::status(403, "Forbidden"),
            )
            .status(http::StatusCode::FORBIDDEN),
        ]);
        let ib = Arc::new(fixtures::build());
        let e = reconcile(ib.clone(), ctx.clone())
            .await
            .expect_err("forbidden");
        timeout(calls).await;
        assert_eq!(e.step(), "observe");
        assert!(e.to_string().starts_with("kubernetes API: "), "{e}");
        let action = error_policy(ib, &e, ctx.clone());
        assert_eq!(action, Action::requeue(Duration::from_secs(2)));
        assert!(
            ctx.metrics
                .render()
                .contains("slipway_reconcile_errors_total 1\n")
        );
        // The build is not in the (empty) cache: its backoff is forgotten.
        assert_eq!(ctx.backoff.len(), 0);
    }
}
