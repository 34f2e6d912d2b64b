//! `/api/v1/tokens`: admin, tenant and agent tokens (admin only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use caravan_tenancy::{
    Requirement, TenantName, TokenCreate, TokenCreated, TokenId, TokenInfo, authorize,
};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, new_token};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::tenants::now;

/// The tokens router.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(get_token, revoke_token))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Only this tenant's tokens.
    tenant: Option<TenantName>,
}

/// Lists tokens, without their secrets.
#[utoipa::path(get, path = "/tokens", tag = "tokens", params(ListParams),
    responses((status = 200, body = Vec<TokenInfo>), (status = 403, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    authorize(&principal, Requirement::Admin, None).map_err(|d| ApiError::denied(d, "tokens"))?;
    let tokens = state
        .store(move |store| store.tokens(params.tenant.as_ref()))
        .await?;
    Ok(Json(tokens))
}

/// Creates a token and shows its secret once.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = TokenCreate,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "Unknown tenant", body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(request): ApiJson<TokenCreate>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    authorize(&principal, Requirement::Admin, None).map_err(|d| ApiError::denied(d, "tokens"))?;
    let (id, secret) = new_token().map_err(ApiError::internal)?;
    let record = request.into_record(id, &secret, now())?;
    let info = record.info.clone();
    state
        .store(move |store| store.insert_token(&record))
        .await?;
    tracing::info!(token = %info.id, kind = info.kind.as_str(), tenant = ?info.tenant, host = ?info.host, by = %principal.token(), "token created");
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token: info,
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// Shows a token, without its secret.
#[utoipa::path(get, path = "/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenInfo), (status = 404, body = ErrorBody)))]
async fn get_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    authorize(&principal, Requirement::Admin, None).map_err(|d| ApiError::denied(d, "tokens"))?;
    let lookup = TokenId::from_string(id.clone());
    state
        .store(move |store| store.token(&lookup))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("token {id:?} not found")))
}

/// Revokes a token, at once. The record stays, marked revoked, for audit.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenInfo), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    authorize(&principal, Requirement::Admin, None).map_err(|d| ApiError::denied(d, "tokens"))?;
    let id = TokenId::from_string(id);
    let at = now();
    let info = state
        .store(move |store| store.revoke_token(&id, at))
        .await?;
    tracing::info!(token = %info.id, by = %principal.token(), "token revoked");
    Ok(Json(info))
}
