//! What operators watch: Prometheus metrics in the text exposition format, and the health
//! endpoints, on one small HTTP port (`/metrics`, `/healthz`, `/readyz`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bounds of the duration histograms, in seconds.
const BUCKETS: &[f64] = &[5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Default)]
pub struct Metrics {
    /// Finished builds by (result, reason).
    builds: Mutex<BTreeMap<(String, String), u64>>,
    build_seconds: Mutex<Histogram>,
    stage_seconds: Mutex<Histogram>,
    reconciles: AtomicU64,
    reconcile_errors: AtomicU64,
    /// Builds seen and not finished, by namespace/name.
    active: Mutex<BTreeMap<String, bool>>,
    ready: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub fn build_finished(&self, result: &str, reason: &str, seconds: Option<f64>) {
        *lock(&self.builds)
            .entry((result.to_string(), reason.to_string()))
            .or_insert(0) += 1;
        if let Some(s) = seconds {
            lock(&self.build_seconds).observe(s);
        }
    }
    pub fn stage_finished(&self, seconds: f64) {
        lock(&self.stage_seconds).observe(seconds);
    }
    pub fn reconciled(&self) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
    }
    pub fn reconcile_failed(&self) {
        self.reconcile_errors.fetch_add(1, Ordering::Relaxed);
    }
    /// Whether a build is still in progress (pending or running), for the queue depth.
    pub fn set_active(&self, key: &str, active: bool) {
        let mut a = lock(&self.active);
        if active {
            a.insert(key.to_string(), true);
        } else {
            a.remove(key);
        }
    }
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP slipway_builds_total ImageBuilds finished, by result and reason.\n");
        out.push_str("# TYPE slipway_builds_total counter\n");
        for ((result, reason), n) in lock(&self.builds).iter() {
            let _ = writeln!(
                out,
                "slipway_builds_total{{result=\"{result}\",reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP slipway_build_duration_seconds From start to push or failure.\n");
        out.push_str("# TYPE slipway_build_duration_seconds histogram\n");
        lock(&self.build_seconds).write(&mut out, "slipway_build_duration_seconds");
        out.push_str(
            "# HELP slipway_stage_duration_seconds Stage Jobs, from start to completion.\n",
        );
        out.push_str("# TYPE slipway_stage_duration_seconds histogram\n");
        lock(&self.stage_seconds).write(&mut out, "slipway_stage_duration_seconds");
        out.push_str(
            "# HELP slipway_builds_in_progress ImageBuilds pending or running (the queue).\n",
        );
        out.push_str("# TYPE slipway_builds_in_progress gauge\n");
        let _ = writeln!(
            out,
            "slipway_builds_in_progress {}",
            lock(&self.active).len()
        );
        out.push_str("# HELP slipway_reconciles_total Reconciles run.\n");
        out.push_str("# TYPE slipway_reconciles_total counter\n");
        let _ = writeln!(
            out,
            "slipway_reconciles_total {}",
            self.reconciles.load(Ordering::Relaxed)
        );
        out.push_str("# HELP slipway_reconcile_errors_total Reconciles that failed (retried with backoff).\n");
        out.push_str("# TYPE slipway_reconcile_errors_total counter\n");
        let _ = writeln!(
            out,
            "slipway_reconcile_errors_total {}",
            self.reconcile_errors.load(Ordering::Relaxed)
        );
        out
    }

    /// The response to `GET path`: status line and body.
    pub fn respond(&self, path: &str) -> (&'static str, String) {
        match path {
            "/metrics" => ("200 OK", self.render()),
            "/healthz" => ("200 OK", "ok\n".into()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => ("200 OK", "ok\n".into()),
            "/readyz" => ("503 Service Unavailable", "not ready\n".into()),
            _ => ("404 Not Found", "not found\n".into()),
        }
    }
}

/// Serves the endpoints until the process ends.
pub async fn serve(metrics: std::sync::Arc<Metrics>, addr: String) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("metrics and health on http://{addr}/metrics, /healthz, /readyz");
    loop {
        let (mut sock, _) = listener.accept().await?;
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = m.respond(path.split('?').next().unwrap_or(path));
            let content_type = if path.starts_with("/metrics") {
                "text/plain; version=0.0.4"
            } else {
                "text/plain"
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_counts_builds_and_buckets_durations() {
        let m = Metrics::default();
        m.build_finished("succeeded", "Pushed", Some(42.0));
        m.build_finished("failed", "StageFailed", Some(7.0));
        m.build_finished("succeeded", "Pushed", None);
        m.stage_finished(3.0);
        m.set_active("ns/a", true);
        m.set_active("ns/b", true);
        m.set_active("ns/a", false);
        m.reconcile_failed();
        let text = m.render();
        assert!(text.contains("slipway_builds_total{result=\"succeeded\",reason=\"Pushed\"} 2"));
        assert!(text.contains("slipway_builds_total{result=\"failed\",reason=\"StageFailed\"} 1"));
        assert!(text.contains("slipway_build_duration_seconds_bucket{le=\"30\"} 1"));
        assert!(text.contains("slipway_build_duration_seconds_bucket{le=\"60\"} 2"));
        assert!(text.contains("slipway_build_duration_seconds_count 2"));
        assert!(text.contains("slipway_stage_duration_seconds_bucket{le=\"5\"} 1"));
        assert!(text.contains("slipway_builds_in_progress 1"));
        assert!(text.contains("slipway_reconcile_errors_total 1"));
        assert_eq!(m.respond("/readyz").0, "503 Service Unavailable");
        m.set_ready();
        assert_eq!(m.respond("/readyz").0, "200 OK");
        assert_eq!(m.respond("/nope").0, "404 Not Found");
    }
}
