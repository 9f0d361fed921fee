//! The HTTP endpoints of a controller: `/healthz` and `/readyz` probes, and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::Shutdown;
use crate::error::Error;
use crate::metrics::Metrics;

/// Turns a Go-style listen address into one tokio can bind: `:8080` means all interfaces.
///
/// Returns `None` for `0` or an empty string, which disable the endpoint as in
/// controller-runtime.
pub fn listen_address(addr: &str) -> Option<String> {
    match addr {
        "" | "0" => None,
        _ if addr.starts_with(':') => Some(format!("0.0.0.0{addr}")),
        _ => Some(addr.to_string()),
    }
}

/// The router of the health endpoints; `/readyz` answers 503 until `ready` is set.
pub fn health_router(ready: Arc<AtomicBool>) -> Router {
    async fn healthz() -> &'static str {
        "ok"
    }
    async fn readyz(State(ready): State<Arc<AtomicBool>>) -> (StatusCode, &'static str) {
        if ready.load(Ordering::Relaxed) {
            (StatusCode::OK, "ok")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
        }
    }
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(ready)
}

/// The router of the metrics endpoint.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    async fn serve(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
        (
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            metrics.encode(),
        )
    }
    Router::new().route("/metrics", get(serve)).with_state(metrics)
}

/// Binds `addr` and serves `router` until `shutdown`; returns the bound address.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    what: &'static str,
    addr: &str,
    router: Router,
    shutdown: Shutdown,
) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Serve {
        what,
        addr: addr.to_string(),
        source,
    })?;
    let bound = listener.local_addr().map_err(|source| Error::Serve {
        what,
        addr: addr.to_string(),
        source,
    })?;
    tracing::info!(%bound, "serving {what}");
    tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "{what} server failed");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_listen_addresses() {
        for (addr, expected) in [
            (":8080", Some("0.0.0.0:8080")),
            ("127.0.0.1:9440", Some("127.0.0.1:9440")),
            ("localhost:1", Some("localhost:1")),
            ("0", None),
            ("", None),
        ] {
            assert_eq!(listen_address(addr).as_deref(), expected, "{addr:?}");
        }
    }

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn health_and_metrics_endpoints() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shutdown = Shutdown::new();
        let ready = Arc::new(AtomicBool::new(false));
        let health =
            serve("health probes", "127.0.0.1:0", health_router(ready.clone()), shutdown.clone())
                .await
                .unwrap();
        assert_eq!(get_text(health, "/healthz").await, (200, "ok".to_string()));
        assert_eq!(get_text(health, "/readyz").await.0, 503);
        ready.store(true, Ordering::Relaxed);
        assert_eq!(get_text(health, "/readyz").await, (200, "ok".to_string()));

        let metrics = Arc::new(Metrics::new());
        metrics.count_result("gitrepository", "success");
        let addr = serve("metrics", "127.0.0.1:0", metrics_router(metrics), shutdown.clone())
            .await
            .unwrap();
        let (status, body) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("controller_runtime_reconcile_total{controller=\"gitrepository\",result=\"success\"} 1"), "{body}");
        shutdown.trigger();
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let error = serve("metrics", &addr, Router::new(), Shutdown::new()).await.unwrap_err();
        assert!(error.to_string().contains(&addr), "{error}");
    }
}
