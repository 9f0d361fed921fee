//! The artifact HTTP server: serves the storage root as plain files, as Flux's file server does.

use std::path::PathBuf;

use axum::Router;
use axum::routing::get;
use tower_http::services::ServeDir;

/// The router serving `root`: `GET /<path>` returns the file, `GET /` answers `ok` (readiness).
pub fn router(root: PathBuf) -> Router {
    Router::new().route("/", get(|| async { "ok" })).fallback_service(ServeDir::new(root))
}

/// Serves `root` on `listener` until `shutdown` completes.
pub async fn serve(
    root: PathBuf,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(root)).with_graceful_shutdown(shutdown).await
}
