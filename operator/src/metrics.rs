//! What operators watch: the Prometheus metrics (prometheus-client, in the Prometheus text
//! format 0.0.4), and whether the operator is ready. [`endpoints`](crate::endpoints) serves
//! them. `slipway_builds_in_progress` is counted at scrape time from the controller's cache
//! of ImageBuilds, so a build deleted mid-way stops counting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::ImageBuild;

/// Upper bounds of the build and stage duration histograms, in seconds.
const BUCKETS: [f64; 9] = [5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];
/// Upper bounds of the reconcile duration histogram, in seconds.
const RECONCILE_BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The content type of [`Metrics::render`].
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    result: String,
    reason: String,
}

pub struct Metrics {
    registry: Registry,
    /// Finished builds by result and reason.
    builds: Family<BuildLabels, Counter>,
    build_seconds: Histogram,
    stage_seconds: Histogram,
    reconciles: Counter,
    reconcile_errors: Counter,
    reconcile_seconds: Histogram,
    /// Stages of finished builds restored from the layer cache, and those looked up in vain.
    cache_hits: Counter,
    cache_misses: Counter,
    /// The controller's cache, once the controller runs (a replica waiting for the lease
    /// has none and counts no build).
    builds_store: Arc<OnceLock<Store<ImageBuild>>>,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let builds = Family::<BuildLabels, Counter>::default();
        let build_seconds = Histogram::new(BUCKETS);
        let stage_seconds = Histogram::new(BUCKETS);
        let reconciles = Counter::default();
        let reconcile_errors = Counter::default();
        let reconcile_seconds = Histogram::new(RECONCILE_BUCKETS);
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let builds_store = Arc::new(OnceLock::new());
        let mut registry = Registry::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "slipway_builds",
            "ImageBuilds finished, by result and reason",
            builds.clone(),
        );
        registry.register(
            "slipway_build_duration_seconds",
            "From start to push or failure",
            build_seconds.clone(),
        );
        registry.register(
            "slipway_stage_duration_seconds",
            "Stage Jobs, from start to completion",
            stage_seconds.clone(),
        );
        registry.register_collector(Box::new(InProgress(builds_store.clone())));
        registry.register("slipway_reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "slipway_reconcile_errors",
            "Reconciles that failed (retried with backoff)",
            reconcile_errors.clone(),
        );
        registry.register(
            "slipway_reconcile_duration_seconds",
            "How long one reconcile took",
            reconcile_seconds.clone(),
        );
        registry.register(
            "slipway_cache_hits",
            "Stages of finished builds restored from the layer cache",
            cache_hits.clone(),
        );
        registry.register(
            "slipway_cache_misses",
            "Stages of finished builds looked up in the layer cache and not found",
            cache_misses.clone(),
        );
        Metrics {
            registry,
            cache_hits,
            cache_misses,
            builds,
            build_seconds,
            stage_seconds,
            reconciles,
            reconcile_errors,
            reconcile_seconds,
            builds_store,
            ready: AtomicBool::new(false),
        }
    }
}

/// Times one reconcile: the duration is observed when it is dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_seconds
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl Metrics {
    pub fn build_finished(&self, result: &str, reason: &str, seconds: Option<f64>) {
        self.builds
            .get_or_create(&BuildLabels {
                result: result.into(),
                reason: reason.into(),
            })
            .inc();
        if let Some(s) = seconds {
            self.build_seconds.observe(s);
        }
    }

    pub fn cache_outcome(&self, hits: i32, misses: i32) {
        self.cache_hits.inc_by(u64::try_from(hits).unwrap_or(0));
        self.cache_misses.inc_by(u64::try_from(misses).unwrap_or(0));
    }

    pub fn stage_finished(&self, seconds: f64) {
        self.stage_seconds.observe(seconds);
    }

    /// Counts a reconcile, and times it until the timer is dropped.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            metrics: self,
            start: Instant::now(),
        }
    }

    pub fn reconcile_failed(&self) {
        self.reconcile_errors.inc();
    }

    /// Counts the builds in progress from the controller's cache from now on.
    pub fn count_builds(&self, store: Store<ImageBuild>) {
        let _ = self.builds_store.set(store);
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The exposition, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Whether a build is pending or running: not finished for its current generation, and not
/// being deleted.
pub fn in_progress(ib: &ImageBuild) -> bool {
    let generation = ib.metadata.generation.unwrap_or(1);
    let finished = ib.status.as_ref().is_some_and(|s| {
        s.observed_generation == Some(generation) && s.phase.is_some_and(|p| p.finished())
    });
    ib.metadata.deletion_timestamp.is_none() && !finished
}

/// `slipway_builds_in_progress`, counted from the cache on each scrape.
#[derive(Debug)]
struct InProgress(Arc<OnceLock<Store<ImageBuild>>>);

impl Collector for InProgress {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let n = self.0.get().map_or(0, |store| {
            store.state().iter().filter(|ib| in_progress(ib)).count()
        });
        let gauge = ConstGauge::new(n as i64);
        let metric = encoder.encode_descriptor(
            "slipway_builds_in_progress",
            "ImageBuilds pending or running (the queue).",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ImageBuildStatus, Phase};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn build(name: &str, observed: i64, phase: Phase) -> ImageBuild {
        let mut ib = crate::reconcile::fixtures::build();
        ib.metadata.name = Some(name.into());
        ib.status = Some(ImageBuildStatus {
            observed_generation: Some(observed),
            phase: Some(phase),
            ..Default::default()
        });
        ib
    }

    #[test]
    fn exposition_counts_builds_and_buckets_durations() {
        let m = Metrics::default();
        m.build_finished("succeeded", "Pushed", Some(42.0));
        m.build_finished("failed", "StageFailed", Some(7.0));
        m.build_finished("succeeded", "Pushed", None);
        m.stage_finished(3.0);
        m.cache_outcome(3, 1);
        m.reconcile_failed();
        drop(m.reconcile_started());
        let text = m.render();
        assert!(text.contains("slipway_builds_total{result=\"succeeded\",reason=\"Pushed\"} 2\n"));
        assert!(
            text.contains("slipway_builds_total{result=\"failed\",reason=\"StageFailed\"} 1\n")
        );
        assert!(text.contains("slipway_build_duration_seconds_bucket{le=\"30\"} 1\n"));
        assert!(text.contains("slipway_build_duration_seconds_bucket{le=\"60\"} 2\n"));
        assert!(text.contains("slipway_build_duration_seconds_count 2\n"));
        assert!(text.contains("slipway_stage_duration_seconds_bucket{le=\"5\"} 1\n"));
        assert!(text.contains("slipway_stage_duration_seconds_count 1\n"));
        assert!(text.contains("slipway_builds_in_progress 0\n"));
        assert!(text.contains("slipway_reconciles_total 1\n"));
        assert!(text.contains("slipway_cache_hits_total 3\n"));
        assert!(text.contains("slipway_cache_misses_total 1\n"));
        assert!(text.contains("slipway_reconcile_errors_total 1\n"));
        assert!(text.contains("slipway_reconcile_duration_seconds_count 1\n"));
        assert!(text.contains("# TYPE slipway_builds_in_progress gauge\n"));
    }

    #[test]
    fn builds_in_progress_come_from_the_cache_at_scrape_time() {
        let m = Metrics::default();
        let (reader, mut writer) = store::<ImageBuild>();
        m.count_builds(reader);
        let running = build("running", 3, Phase::Building);
        let done = build("done", 3, Phase::Succeeded);
        // Finished for an older generation: the new one is pending.
        let changed = build("changed", 2, Phase::Failed);
        let mut leaving = build("leaving", 3, Phase::Building);
        leaving.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        for ib in [&running, &done, &changed, &leaving] {
            writer.apply_watcher_event(&Event::Apply(ib.clone()));
        }
        assert!(m.render().contains("slipway_builds_in_progress 2\n"));
        // A build deleted mid-way stops counting.
        writer.apply_watcher_event(&Event::Delete(running));
        assert!(m.render().contains("slipway_builds_in_progress 1\n"));
    }
}
