//! The operator's HTTP port (axum): `/metrics` (Prometheus text format), `/healthz` (the
//! process answers) and `/readyz` (connected to the cluster).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tracing::info;

use crate::metrics::{CONTENT_TYPE, Metrics};

/// The routes, over the operator's metrics.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(exposition))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

async fn exposition(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.render())
}

async fn readyz(State(m): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if m.ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Serves the endpoints on `addr` until the process ends.
pub async fn serve(metrics: Arc<Metrics>, addr: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!("metrics and health on http://{addr}/metrics, /healthz, /readyz");
    axum::serve(listener, router(metrics)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(app: &Router, path: &str) -> (StatusCode, String, String) {
        let req = Request::get(path).body(Body::empty()).expect("request");
        let resp = app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        (status, ct, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let m = Arc::new(Metrics::default());
        let app = router(m.clone());
        assert_eq!(get(&app, "/healthz").await.2, "ok\n");
        assert_eq!(
            get(&app, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        m.set_ready();
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
        let (status, ct, body) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        assert!(
            body.contains("slipway_reconcile_errors_total 0\n"),
            "{body}"
        );
        assert_eq!(get(&app, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
