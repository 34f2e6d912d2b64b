//! `/api/v1/tenants`: teams, their retention and quota.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use caravan_tenancy::{Requirement, Tenant, TenantCreate, TenantName, TenantUpdate, authorize};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// The tenants router.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
}

/// Lists tenants: all of them for admins, its own for a tenant token (none for an agent token).
#[utoipa::path(get, path = "/tenants", tag = "tenants",
    responses((status = 200, body = Vec<Tenant>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_tenants(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Vec<Tenant>>, ApiError> {
    authorize(&principal, Requirement::TenantData, None)
        .map_err(|d| ApiError::denied(d, "tenants"))?;
    let mut tenants = state.store(|store| store.tenants()).await?;
    if let Some(own) = principal.tenant() {
        tenants.retain(|tenant| &tenant.name == own);
    }
    Ok(Json(tenants))
}

/// Creates a tenant (admin).
#[utoipa::path(post, path = "/tenants", tag = "tenants", request_body = TenantCreate,
    responses((status = 201, body = Tenant), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_tenant(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(request): ApiJson<TenantCreate>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    authorize(&principal, Requirement::Admin, None).map_err(|d| ApiError::denied(d, "tenant"))?;
    let tenant = Tenant::create(request, now())?;
    let created = tenant.clone();
    state
        .store(move |store| store.create_tenant(&created))
        .await?;
    tracing::info!(tenant = %tenant.name, by = %principal.token(), "tenant created");
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// Shows a tenant.
#[utoipa::path(get, path = "/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
async fn get_tenant(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
) -> Result<Json<Tenant>, ApiError> {
    authorize(&principal, Requirement::Visible, Some(&name))
        .map_err(|d| ApiError::denied(d, format!("tenant {name:?}")))?;
    let lookup = name.clone();
    state
        .store(move |store| store.tenant(&lookup))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("tenant {name:?} not found")))
}

/// Changes a tenant's display name, retention or quota (admin).
#[utoipa::path(patch, path = "/tenants/{name}", tag = "tenants", request_body = TenantUpdate,
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 200, body = Tenant), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_tenant(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
    ApiJson(update): ApiJson<TenantUpdate>,
) -> Result<Json<Tenant>, ApiError> {
    authorize(&principal, Requirement::Admin, Some(&name))
        .map_err(|d| ApiError::denied(d, format!("tenant {name:?}")))?;
    let at = now();
    let tenant = state
        .store(move |store| store.update_tenant(&name, &|t| t.updated(update.clone(), at)))
        .await?;
    tracing::info!(tenant = %tenant.name, by = %principal.token(), "tenant updated");
    Ok(Json(tenant))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    /// Also delete everything the tenant owns.
    #[serde(default)]
    force: bool,
}

/// Deletes a tenant (admin). Refused while it owns anything unless `force=true`.
#[utoipa::path(delete, path = "/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "Tenant name"), DeleteParams),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The tenant owns something", body = ErrorBody)))]
async fn delete_tenant(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    authorize(&principal, Requirement::Admin, Some(&name))
        .map_err(|d| ApiError::denied(d, format!("tenant {name:?}")))?;
    // Logs are owned too: refused without force, dropped with the tenant.
    crate::logs::check_tenant_deletion(&state, &name, params.force).await?;
    // The fleet is consulted first: services are owned too, and go with the tenant on force.
    crate::fleet::delete_tenant(&state, principal.token(), &name, params.force).await?;
    crate::logs::forget_tenant(&state, &name).await?;
    tracing::info!(tenant = %name, force = params.force, by = %principal.token(), "tenant deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
