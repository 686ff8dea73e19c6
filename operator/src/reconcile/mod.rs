//! The ImageBuild controller: a kube-runtime Controller owning the build's Jobs, and the
//! reconcile of one build as a pipeline of steps (after Stackable's operators):
//!
//! 1. [`validate`]: the spec as settings (timeout, deadline, parallelism, push target); no client;
//! 2. [`observe`]: the build's Jobs and workspace claim, and the results their pods reported;
//! 3. [`decide`]: where the build stands and what comes next; pure;
//! 4. [`render`]: the objects the decision needs; pure;
//! 5. [`apply`]: superseded generations removed, the workspace and Jobs created (or adopted,
//!    when this ImageBuild owns them), a failed build's Jobs stopped;
//! 6. [`status`]: events, metrics and the status patch; [`conditions`] from the phase.
//!
//! A finished build only waits for its `ttlSecondsAfterFinished` ([`expire`]). Everything is
//! found again by name, label and owner, so a restarted controller carries on. A build that
//! cannot go on ends with a reason rather than at its timeout: a pod a policy refuses or one
//! evicted again and again ([`pods`]), an object the API server refuses (`Invalid`); what it
//! writes is bounded ([`text`]).

mod apply;
mod awaited;
mod bases;
mod conditions;
mod context;
mod decide;
#[cfg(test)]
mod decide_tests;
mod early;
mod expire;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod health_tests;
mod observe;
mod pods;
mod render;
mod spare;
mod stage_status;
mod status;
mod text;
#[cfg(test)]
mod trust_tests;
mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use self::apply::{ApplyError, apply, stop};
use self::context::Apis;
pub use self::context::{Ctx, Error};
use self::decide::{BuildReason, decide};
use self::early::Early;
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
    let ours = || watcher::Config::default().labels("app.kubernetes.io/managed-by=slipway");
    // Pods too: a Job's status trails its pod's by about a second (the Job controller folds
    // pod updates), and every step of a build waits for the one before. And a result line
    // read as printed (early.rs), before the pod's end is seen.
    let (wake, woken) = futures::channel::mpsc::unbounded();
    let controller = Controller::new(builds, watcher::Config::default())
        .owns(jobs, ours())
        .watches(Api::<Pod>::all(client.clone()), ours(), build_of_pod)
        .reconcile_on(woken);
    let store = controller.store();
    metrics.count_builds(store.clone());
    let ctx = Arc::new(Ctx::new(client, settings, metrics, store, Early::new(wake)));
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

/// The ImageBuild a build pod belongs to (its annotation; the label may be shortened).
fn build_of_pod(p: Pod) -> Option<ObjectRef<ImageBuild>> {
    let name = p.annotations().get(render::ANNOTATION_BUILD)?;
    Some(ObjectRef::new(name).within(&p.namespace()?))
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
        forget(ctx, ib);
        return Ok(Action::await_change()); // owner references take the Jobs and PVC along
    }
    if !finished(ib) && ctx.ended.ended(ib) {
        // The cache has not caught up with the status this controller wrote: that write's
        // own event wakes the build again.
        return Ok(Action::requeue(LAGGING));
    }
    let build = validate(ib, Timestamp::now())?;
    let apis = Apis::namespaced(&ctx.client, &build.namespace);
    if build.same_generation && finished(ib) {
        forget(ctx, ib);
        return expire(&apis, ib, &build, &ctx.settings).await;
    }
    let seen = observe(&apis, ib, &build, &ctx.early).await?;
    let decision = decide(&seen.observed, &build.limits);
    let objects = render(ib, &ctx.settings, &build, &seen, &decision)?;
    let decision = match apply(&apis, ib, &build, &seen, &decision, objects).await {
        Ok(()) => decision,
        // The API server will refuse it again: the build ends here, its Jobs stopped.
        Err(Error::Apply(e @ ApplyError::Invalid { .. })) => {
            stop(&apis, &seen).await.map_err(Error::Apply)?;
            decision.failed(BuildReason::Invalid, e.to_string())
        }
        // The build waits for it to go (its timeout ends it): the status says why.
        Err(Error::Apply(e @ ApplyError::NotOwned { .. })) => {
            report(ctx, &apis, ib, &build, &decision.waiting(e.to_string())).await?;
            return Err(Error::Apply(e));
        }
        Err(e) => return Err(e),
    };
    report(ctx, &apis, ib, &build, &decision).await?;
    Ok(requeue(ib, &build, &decision, &ctx.settings))
}

/// Drops what was read early of this build's pods, and of builds gone; and its end, now that
/// the cache has it.
fn forget(ctx: &Ctx, ib: &ImageBuild) {
    ctx.ended.forget(ib, |b| ctx.builds.get(b).is_some());
    let me = ObjectRef::from_obj(ib);
    ctx.early
        .retain(|b| *b != me && ctx.builds.get(b).is_some());
}

/// How soon a build whose end the cache does not show yet is looked at again, should the
/// status event not come.
const LAGGING: Duration = Duration::from_secs(2);

/// How soon a build whose Job has no pod is looked at again.
const SOON: Duration = Duration::from_secs(5);

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
    // A Job without a pod: the events that say why do not wake us.
    if d.soon {
        return Action::requeue(SOON);
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
    use render::Step;

    #[tokio::test]
    async fn a_new_build_is_observed_applied_and_reported_in_that_order() {
        let (client, server) = mocked_client();
        let metrics = Arc::new(Metrics::default());
        let ctx = Ctx::new(
            client,
            fixtures::settings(),
            metrics.clone(),
            store().0,
            fixtures::early(),
        );
        let calls = server.run(Scenario::ReconcileNewBuild.calls());
        let action = reconcile(Arc::new(fixtures::build()), Arc::new(ctx))
            .await
            .expect("reconciled");
        timeout(calls).await;
        // Job events wake the controller; the timer covers the timeout.
        assert_eq!(action, Action::requeue(Duration::from_secs(60)));
        assert!(metrics.render().contains("slipway_reconciles_total 1\n"));
    }

    fn ctx_of(client: kube::Client) -> Arc<Ctx> {
        Arc::new(Ctx::new(
            client,
            fixtures::settings(),
            Arc::new(Metrics::default()),
            store().0,
            fixtures::early(),
        ))
    }

    fn created(path: &str) -> fixtures::Call {
        fixtures::Call::new(http::Method::POST, path, serde_json::json!({}))
            .status(http::StatusCode::CREATED)
    }

    fn event(reason: &str) -> fixtures::Call {
        created("/apis/events.k8s.io/v1/namespaces/ns/events")
            .body(serde_json::json!({"reason": reason}))
    }

    fn status_patch(body: serde_json::Value) -> fixtures::Call {
        fixtures::Call::new(
            http::Method::PATCH,
            "/apis/build.slipway.dev/v1alpha1/namespaces/ns/imagebuilds/web/status",
            serde_json::to_value(fixtures::build()).expect("json"),
        )
        .body(body)
    }

    #[tokio::test]
    async fn a_strangers_object_in_the_way_is_said_in_the_status_and_retried() {
        let (client, server) = mocked_client();
        let ctx = ctx_of(client);
        let mut calls = Scenario::ObserveNothing.calls();
        calls.extend([
            created(fixtures::CLAIMS),
            fixtures::Call::new(http::Method::POST, fixtures::JOBS, fixtures::status(409, "AlreadyExists"))
                .status(http::StatusCode::CONFLICT),
            fixtures::Call::new(
                http::Method::GET,
                format!("{}/web-3-prepare", fixtures::JOBS),
                serde_json::to_value(fixtures::job(&Step::Prepare, 3, None, fixtures::Done::Running))
                    .expect("json"),
            ),
            event("Started"),
            status_patch(serde_json::json!({"status": {"phase": "Pending", "conditions":
                (["Succeeded", "Ready", "Reconciling"].map(|t| serde_json::json!({
                    "type": t,
                    "reason": "Pending",
                    "message": "Job ns/web-3-prepare exists and is not owned by ImageBuild ns/web: it is not adopted",
                })))}})),
        ]);
        let calls = server.run(calls);
        let e = reconcile(Arc::new(fixtures::build()), ctx)
            .await
            .expect_err("waits");
        timeout(calls).await;
        assert_eq!(e.step(), "apply");
    }

    #[tokio::test]
    async fn an_object_the_api_server_refuses_fails_the_build() {
        let (client, server) = mocked_client();
        let ctx = ctx_of(client);
        let refused = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": "Invalid", "code": 422,
            "message": "PersistentVolumeClaim \"web-3-workspace\" is invalid: spec.resources[storage]: Invalid value: \"10Gx\"",
        });
        let mut calls = Scenario::ObserveNothing.calls();
        calls.extend([
            fixtures::Call::new(http::Method::POST, fixtures::CLAIMS, refused)
                .status(http::StatusCode::UNPROCESSABLE_ENTITY),
            event("Failed"),
            status_patch(serde_json::json!({"status": {"phase": "Failed", "conditions":
                ([("Succeeded", "False"), ("Ready", "False"), ("Stalled", "True")].map(|(t, s)| serde_json::json!({
                    "type": t,
                    "status": s,
                    "reason": "Invalid",
                    "message": "PersistentVolumeClaim web-3-workspace was refused by the API server: PersistentVolumeClaim \"web-3-workspace\" is invalid: spec.resources[storage]: Invalid value: \"10Gx\"",
                })))}})),
        ]);
        let calls = server.run(calls);
        let action = reconcile(Arc::new(fixtures::build()), ctx.clone())
            .await
            .expect("the build failed; the reconcile did not");
        timeout(calls).await;
        assert_eq!(action, Action::requeue(Duration::from_secs(3600)));
        assert!(ctx.ended.ended(&fixtures::build()), "its end is kept");
    }

    /// A failed build's stopped Jobs wake a reconcile before the cache holds the `Failed` just
    /// written: that reconcile makes no call (no Job made again, no `Building` written), until
    /// the cache catches up; a new generation, or a new build of that name, builds.
    #[tokio::test]
    async fn a_build_that_ended_is_not_run_again_from_a_cache_that_trails_its_status() {
        let (client, server) = mocked_client();
        let ctx = ctx_of(client);
        let stale = fixtures::build();
        assert!(!ctx.ended.ended(&stale));
        // What `report` does as it writes a finished phase.
        ctx.ended.record(&stale);
        let calls = server.run(vec![]);
        let action = reconcile(Arc::new(stale.clone()), ctx.clone())
            .await
            .expect("no call made");
        timeout(calls).await;
        assert_eq!(action, Action::requeue(LAGGING));
        let mut next = stale.clone();
        next.metadata.generation = Some(4);
        let mut renamed = stale.clone();
        renamed.metadata.uid = Some("uid-new".into());
        assert!(!ctx.ended.ended(&next) && !ctx.ended.ended(&renamed));
        ctx.ended.forget(&stale, |_| true);
        assert!(!ctx.ended.ended(&stale));
    }

    #[tokio::test]
    async fn a_failed_step_is_named_and_retried_later() {
        let (client, server) = mocked_client();
        let ctx = Arc::new(Ctx::new(
            client,
            fixtures::settings(),
            Arc::new(Metrics::default()),
            store().0,
            fixtures::early(),
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
