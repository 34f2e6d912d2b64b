//! The whole HTTP application: every capability's router, merged once, with the layers that
//! apply to all of them.

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::{AppState, fleet, logs, metrics, schema, system, tenants, tokens};

#[derive(OpenApi)]
#[openapi(
    info(title = "Caravan", description = "Caravan's native API. Every call needs `Authorization: Bearer <token>` (or basic auth with the token as password)."),
    components(schemas(crate::ErrorBody)),
    modifiers(&Security),
    security(("bearer" = []), ("basic" = []))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The native API (`/api/v1`), with its OpenAPI description generated from the handlers.
fn native_api() -> (Router<AppState>, OpenApiDoc) {
    let api = OpenApiRouter::new()
        .routes(routes!(auth::whoami))
        .merge(tenants::router())
        .merge(schema::router())
        .merge(logs::native_router())
        .merge(fleet::router())
        .merge(tokens::router());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api)
        .split_for_parts()
}

/// The OpenAPI document of the native API.
pub fn openapi() -> OpenApiDoc {
    native_api().1
}

/// The complete application over `state`.
pub fn app(state: AppState) -> Router {
    let (api, doc) = native_api();
    let doc = std::sync::Arc::new(doc);
    let api = api.route(
        "/api/v1/openapi.json",
        get(move |_: Caller| async move { Json(doc.as_ref().clone()) }),
    );
    let max_body_bytes = state.config().max_body_bytes;
    Router::new()
        .merge(system::router())
        .merge(api)
        .merge(logs::router(&state))
        // The web UI's files under `/ui/` (the UI calls the native API above).
        .merge(caravan_ui::router())
        .method_not_allowed_fallback(system::wrong_method)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(system::no_route)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        // Elasticsearch clients check this header on every answer before they trust a server.
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-elastic-product"),
            HeaderValue::from_static("Elasticsearch"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal("a handler panicked"))
        }))
        .with_state(state)
}
