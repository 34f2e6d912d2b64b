//! The driver's `/metrics` endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::LbError;
use crate::metrics::Metrics;
use crate::runtime;

#[derive(Clone)]
struct MetricsState {
    metrics: Arc<Metrics>,
    instances: Arc<Mutex<BTreeMap<String, String>>>,
    runtime_socket: PathBuf,
}

/// Serves `/metrics` on `listen` in the background: the driver's metrics and HAProxy's
/// statistics, read from the runtime socket at each scrape.
pub(crate) async fn metrics(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    instances: Arc<Mutex<BTreeMap<String, String>>>,
    runtime_socket: PathBuf,
) -> Result<(), LbError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| LbError::Io {
            what: format!("cannot listen on {listen}"),
            source,
        })?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(MetricsState {
            metrics,
            instances,
            runtime_socket,
        });
    tracing::info!(%listen, "load balancer metrics at /metrics");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    Ok(())
}

async fn scrape(State(state): State<MetricsState>) -> Response {
    // Without HAProxy (not started yet), the driver's own metrics still answer.
    let stat = runtime::send(&state.runtime_socket, "show stat").await.ok();
    let instances = state
        .instances
        .lock()
        .map(|instances| instances.clone())
        .unwrap_or_default();
    match state.metrics.render(stat.as_deref(), &instances) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
