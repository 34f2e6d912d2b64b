//! Unauthenticated endpoints for orchestrators and scrapers: `/healthz`, `/readyz`, `/metrics`;
//! and the answers to requests that match no route.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::metrics::UNMATCHED_ROUTE;

/// The router of the unauthenticated endpoints.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Alive: the process answers.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: start-up completed and no shutdown in progress.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.is_ready() {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::unavailable(
            "not ready: starting or shutting down",
        ))
    }
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state.metrics().encode().map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// Any path no router knows.
pub(crate) async fn no_route(State(state): State<AppState>, method: Method, uri: Uri) -> ApiError {
    let error = ApiError::not_found(format!("no route for {method} {}", uri.path()));
    state
        .metrics()
        .observe(&method, UNMATCHED_ROUTE, error.status().as_u16(), 0.0);
    error
}

/// A known path with a method it does not serve.
pub(crate) async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}
