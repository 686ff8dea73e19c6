//! The operator's HTTP port (axum): `/metrics` (Prometheus text format), `/healthz` (the
//! process answers) and `/readyz` (connected to the cluster). It is served by an accept loop
//! of our own (hyper's HTTP/1 server, as axum's `serve` uses it) for what `axum::serve` does
//! not bound (L8): a client has 5 s to send a request's head, a connection lives 60 s at
//! most, and 32 are served at once (more are closed at once), so that slow or many clients
//! cannot hold the port, or the operator's memory.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

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

/// What one client may take of the port.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// To send a request's head (slowloris).
    pub header: Duration,
    /// One connection's whole life, keep-alive included.
    pub lifetime: Duration,
    /// Connections served at once.
    pub connections: usize,
}

pub const LIMITS: Limits = Limits {
    header: Duration::from_secs(5),
    lifetime: Duration::from_secs(60),
    connections: 32,
};

/// Serves the endpoints on `addr` until the process ends.
pub async fn serve(metrics: Arc<Metrics>, addr: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    info!("metrics and health on http://{addr}/metrics, /healthz, /readyz");
    serve_on(listener, router(metrics), LIMITS).await
}

/// Serves `app` on `listener`, within `limits`.
pub async fn serve_on(listener: TcpListener, app: Router, limits: Limits) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.connections));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, say: wait a little rather than spin.
            Err(e) => {
                warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the limit, the connection is dropped (closed) at once.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.lifetime, conn).await;
            drop(slot);
        });
    }
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

    /// The port of a server with `limits`.
    async fn served(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve_on(
            listener,
            router(Arc::new(Metrics::default())),
            limits,
        ));
        addr
    }

    /// Reads until the server closes the connection (or `within` passes: `None`).
    async fn read_all(s: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        tokio::time::timeout(within, s.read_to_end(&mut out))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn slow_and_surplus_clients_are_cut_off() {
        use tokio::io::AsyncWriteExt;
        use tokio::net::TcpStream;
        let addr = served(Limits {
            header: Duration::from_millis(200),
            lifetime: Duration::from_secs(2),
            connections: 1,
        })
        .await;
        // A whole request is answered.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = read_all(&mut s, Duration::from_secs(5))
            .await
            .expect("answered");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
            "{answer}"
        );
        // A request head that never ends is cut off after the header timeout.
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("write");
        // Meanwhile the only slot is taken: another client is closed at once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut surplus = TcpStream::connect(addr).await.expect("connect");
        assert!(
            read_all(&mut surplus, Duration::from_secs(1))
                .await
                .is_some()
        );
        let cut = read_all(&mut slow, Duration::from_secs(1)).await;
        assert!(cut.is_some_and(|a| !a.contains("200 OK")), "not cut off");
    }
}
