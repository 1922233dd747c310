//! `/healthz` and `/metrics` for a component running as its own process. In-process components
//! hand their metrics to the API server's `/metrics` instead (the composition root wires it).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;

/// Renders a component's metrics in the Prometheus text format.
pub type MetricsRender = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Serves `/healthz` and `/metrics` over plain HTTP on `addr` until `shutdown` resolves.
pub async fn serve_health(
    addr: SocketAddr,
    metrics: MetricsRender,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    let mut out = String::new();
                    metrics(&mut out);
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        out,
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
