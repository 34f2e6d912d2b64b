//! `/api/v1/fleet/hosts` and `/api/v1/fleet/instances`: hosts, their heartbeats and drains,
//! what each must run, and the instance reports of agents (healthy, stopped).
//!
//! Agent calls (registration and re-registration, heartbeat, desired instances, instance
//! reports) are made by admins and by the host's own agent token: another host's, or an
//! instance placed on another host, is a 403 naming the token's host (not a 404: an agent reads
//! the registry, which shows every endpoint's host). An agent token may change its host's
//! capacity and labels, never its state (drain, maintenance, down: admins).

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use caravan_api::fleet::{HostPatch, HostSummary, HostView};
use caravan_fleet::{
    DesiredInstance, DrainStatus, Fleet, FleetError, HealthReport, Host, HostName, HostSpec,
    HostUpdate, Instance, InstanceId, Outcome,
};
use caravan_tenancy::{Principal, Requirement, Scope, authorize};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::inventory::{admin_change, change, parse_instance_id};
use super::{OwnerHints, all_or_nothing, long_poll, merge, now_ms, require_owner, require_read};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::tenants::now;

/// The hosts and instances router.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_hosts, register_host))
        .routes(routes!(get_host, update_host, delete_host))
        .routes(routes!(heartbeat))
        .routes(routes!(desired_instances))
        .routes(routes!(drain_status, drain_host))
        .routes(routes!(get_instance))
        .routes(routes!(instance_healthy))
        .routes(routes!(instance_stopped))
        .routes(routes!(instance_unhealthy))
}

fn host_not_found(name: &HostName) -> FleetError {
    FleetError::NotFound {
        kind: HostName::KIND,
        name: name.to_string(),
    }
}

/// Whether `principal` may do what `requirement` needs on hosts (403 otherwise).
fn require(principal: &Principal, requirement: Requirement<'_>) -> Result<(), ApiError> {
    authorize(principal, requirement, None).map_err(|d| ApiError::denied(d, "fleet"))
}

fn host_view(fleet: &Fleet, name: &HostName) -> Result<HostView, ApiError> {
    let host = fleet.host(name).ok_or_else(|| host_not_found(name))?;
    Ok(HostView {
        host: host.clone(),
        allocated: fleet.host_allocated(name).unwrap_or_default(),
        instances: fleet.host_instances(name).into_iter().cloned().collect(),
    })
}

/// Lists hosts with what is allocated on them (`fleet:read`).
#[utoipa::path(get, path = "/fleet/hosts", tag = "fleet",
    responses((status = 200, body = Vec<HostSummary>), (status = 403, body = ErrorBody)))]
async fn list_hosts(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Vec<HostSummary>>, ApiError> {
    require_read(&principal)?;
    let fleet = state.fleet().read().await?;
    Ok(Json(
        fleet
            .hosts()
            .map(|host| HostSummary {
                host: host.clone(),
                allocated: fleet.host_allocated(&host.name).unwrap_or_default(),
                instances: fleet.host_instances(&host.name).len(),
            })
            .collect(),
    ))
}

/// Registers a host (admin, or the host's agent token); registration counts as its first heartbeat. Pending instances may
/// be placed on it at once.
#[utoipa::path(post, path = "/fleet/hosts", tag = "fleet",
    request_body(content = Object, description = "`{\"name\": \"dc1-h1\", \"data_center\": \"dc1\", \"capacity\": {\"cpu_millis\": 16000, \"memory_bytes\": 68719476736, \"disk_bytes\": 1099511627776}, \"labels\": {}, \"state\": \"up\"}` (labels and state optional; state up or maintenance)"),
    responses((status = 201, body = HostView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "Unknown data center", body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn register_host(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(spec): ApiJson<HostSpec>,
) -> Result<(StatusCode, Json<HostView>), ApiError> {
    let name = spec.name.clone();
    require(&principal, Requirement::Host(&name))?;
    let view = change(
        &state,
        &principal,
        |fleet| fleet.register_host(spec, now_ms()),
        |fleet| host_view(fleet, &name),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Shows a host and its instances (`fleet:read`, or the host's agent token).
#[utoipa::path(get, path = "/fleet/hosts/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, body = HostView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_host(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<HostName>,
) -> Result<Json<HostView>, ApiError> {
    require(&principal, Requirement::HostRead(&name))?;
    let fleet = state.fleet().read().await?;
    Ok(Json(host_view(&fleet, &name)?))
}

/// Changes a host's capacity, labels or state (admin; the host's agent token may change its
/// capacity and labels, as a re-registration does), all or nothing. `draining` starts a drain,
/// `down` reschedules its instances, `up` cancels a drain, `maintenance` needs an empty host.
#[utoipa::path(patch, path = "/fleet/hosts/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Host name")), request_body = HostPatch,
    responses((status = 200, body = HostView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_host(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<HostName>,
    ApiJson(patch): ApiJson<HostPatch>,
) -> Result<Json<HostView>, ApiError> {
    match patch.state {
        Some(_) => require(&principal, Requirement::Admin)?,
        None => require(&principal, Requirement::Host(&name))?,
    }
    let view = change(
        &state,
        &principal,
        |fleet| {
            let HostPatch {
                capacity,
                labels,
                state,
            } = patch;
            let update = HostUpdate { capacity, labels };
            match (update != HostUpdate::default(), state) {
                (true, None) => fleet.update_host(&name, update),
                (false, Some(state)) => fleet.set_host_state(&name, state),
                (true, Some(state)) => all_or_nothing(fleet, |fleet, outcome| {
                    merge(outcome, fleet.update_host(&name, update)?);
                    merge(outcome, fleet.set_host_state(&name, state)?);
                    Ok(())
                }),
                (false, None) => match fleet.host(&name) {
                    Some(_) => Ok(caravan_fleet::Outcome::default()),
                    None => Err(host_not_found(&name)),
                },
            }
        },
        |fleet| host_view(fleet, &name),
    )
    .await?;
    Ok(Json(view))
}

/// Deletes a host that runs nothing (admin), and revokes its agent tokens: a host registered
/// later under the same name is another machine, which gets a token of its own.
#[utoipa::path(delete, path = "/fleet/hosts/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "Instances are on it; the error lists them", body = ErrorBody)))]
async fn delete_host(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<HostName>,
) -> Result<StatusCode, ApiError> {
    admin_change(
        &state,
        &principal,
        |fleet| fleet.delete_host(&name),
        |_| Ok(()),
    )
    .await?;
    let at = now();
    let host = name.clone();
    let revoked = state
        .store(move |store| store.revoke_host_tokens(&host, at))
        .await
        .map_err(|error| {
            ApiError::internal(format!(
                "host {name} was deleted, but revoking its agent tokens failed ({error:?}): \
                 revoke them with DELETE /api/v1/tokens/{{id}}"
            ))
        })?;
    for token in revoked {
        tracing::info!(token = %token.id, host = %name, by = %principal.token(), "agent token revoked with its host");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A heartbeat from a host's agent (its agent token, or admin). A `down` host comes back `up`,
/// empty: what it still runs is no longer in its desired instances.
#[utoipa::path(post, path = "/fleet/hosts/{name}/heartbeat", tag = "fleet",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, description = "The host after the heartbeat", body = Object),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn heartbeat(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<HostName>,
) -> Result<Json<Host>, ApiError> {
    require(&principal, Requirement::Host(&name))?;
    let host = change(
        &state,
        &principal,
        |fleet| fleet.heartbeat(&name, now_ms()),
        |fleet| {
            fleet
                .host(&name)
                .cloned()
                .ok_or_else(|| host_not_found(&name).into())
        },
    )
    .await?;
    Ok(Json(host))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct DesiredParams {
    /// With `If-None-Match`: wait up to this many milliseconds (at most 30000) for the desired
    /// instances to differ from that version; 304 if they do not.
    wait_ms: Option<u64>,
}

/// The version of a list of desired instances: a quoted hash of its JSON, for `ETag`.
fn desired_version(desired: &[DesiredInstance]) -> Result<String, ApiError> {
    use std::hash::{Hash, Hasher};
    let body = serde_json::to_vec(desired).map_err(ApiError::internal)?;
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    Ok(format!("\"{:016x}\"", hasher.finish()))
}

/// What a host must run (`run`) or stop (`stop`), with everything its agent needs (its agent
/// token, or admin).
/// The answer's `ETag` is its version; a request with `If-None-Match` of the current version is
/// answered 304, after up to `wait_ms` of waiting for a change (long poll: an agent learns of a
/// change at once without polling).
#[utoipa::path(get, path = "/fleet/hosts/{name}/desired", tag = "fleet",
    params(("name" = String, Path, description = "Host name"), DesiredParams),
    responses((status = 200, description = "Desired instances", body = Vec<Object>),
        (status = 304, description = "Unchanged since the version in If-None-Match"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn desired_instances(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<HostName>,
    ApiQuery(params): ApiQuery<DesiredParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&principal, Requirement::Host(&name))?;
    let known = headers
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0));
    let (desired, version, changed) = long_poll(&state, wait, |fleet| {
        let desired = fleet.desired_instances(&name)?;
        let version = desired_version(&desired)?;
        let changed = known.as_deref() != Some(version.as_str());
        Ok(((desired, version, changed), changed))
    })
    .await?;
    if changed {
        Ok(([(ETAG, version)], Json(desired)).into_response())
    } else {
        Ok((StatusCode::NOT_MODIFIED, [(ETAG, version)]).into_response())
    }
}

/// Starts draining a host (admin): it receives nothing new and its instances move away one at
/// a time, each replacement healthy before the old instance stops. Answers the drain status.
#[utoipa::path(post, path = "/fleet/hosts/{name}/drain", tag = "fleet",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, description = "The drain status", body = Object),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The host is down or in maintenance", body = ErrorBody)))]
async fn drain_host(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<HostName>,
) -> Result<Json<DrainStatus>, ApiError> {
    let status = admin_change(
        &state,
        &principal,
        |fleet| fleet.drain_host(&name),
        |fleet| Ok(fleet.drain_status(&name)?),
    )
    .await?;
    Ok(Json(status))
}

/// Where the drain of a host is, and what must happen next (`fleet:read`).
#[utoipa::path(get, path = "/fleet/hosts/{name}/drain", tag = "fleet",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, description = "The drain status", body = Object),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn drain_status(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<HostName>,
) -> Result<Json<DrainStatus>, ApiError> {
    require_read(&principal)?;
    let fleet = state.fleet().read().await?;
    Ok(Json(fleet.drain_status(&name)?))
}

/// Shows an instance (admin, or its service's tenant with `fleet:read`).
#[utoipa::path(get, path = "/fleet/instances/{id}", tag = "fleet",
    params(("id" = String, Path, description = "Instance id: i-42 or 42")),
    responses((status = 200, description = "The instance", body = Object), (status = 404, body = ErrorBody)))]
async fn get_instance(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Instance>, ApiError> {
    let id = parse_instance_id(&id)?;
    let missing = || ApiError::not_found(format!("instance {id} does not exist"));
    let fleet = state.fleet().read().await?;
    let instance = fleet.instance(id).ok_or_else(missing)?;
    let owner = fleet
        .service(&instance.service)
        .map(|service| service.tenant.clone())
        .ok_or_else(missing)?;
    require_owner(&principal, &owner, Scope::FleetRead, missing)?;
    Ok(Json(instance.clone()))
}

/// An agent reports an instance of its host healthy (its agent token, or admin), optionally with the port it gave it and its
/// warm-up weight (`{"port": 20001, "weight": 25}`, each optional; what is left out stays as
/// known): `placed` becomes `running`; if it replaces another (a drain or migration), that one
/// is told to stop. Each step of a warm-up ramp is one such report.
#[utoipa::path(post, path = "/fleet/instances/{id}/healthy", tag = "fleet",
    params(("id" = String, Path, description = "Instance id: i-42 or 42")),
    request_body(content = Object, description = "Optional: `{\"port\": 20001, \"weight\": 25}` (weight 1 to 100)"),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The instance is pending", body = ErrorBody)))]
async fn instance_healthy(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    require(&principal, Requirement::AgentCall)?;
    let id = parse_instance_id(&id)?;
    let report: HealthReport = if body.iter().all(u8::is_ascii_whitespace) {
        HealthReport::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::invalid(format!("healthy report: {error}")))?
    };
    instance_report(&state, &principal, id, |fleet, id| {
        fleet.instance_healthy_report(id, report)
    })
    .await
}

/// An agent reports a `running` instance of its host unhealthy (its agent token, or admin): it goes back to `placed`, out of
/// the service registry's healthy endpoints, until reported healthy again. An event records it.
#[utoipa::path(post, path = "/fleet/instances/{id}/unhealthy", tag = "fleet",
    params(("id" = String, Path, description = "Instance id: i-42 or 42")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn instance_unhealthy(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    instance_report(
        &state,
        &principal,
        parse_instance_id(&id)?,
        Fleet::instance_unhealthy,
    )
    .await
}

/// An agent reports a `stopping` instance of its host stopped (its agent token, or admin): it is removed, its address
/// released, and the next move of a drain starts.
#[utoipa::path(post, path = "/fleet/instances/{id}/stopped", tag = "fleet",
    params(("id" = String, Path, description = "Instance id: i-42 or 42")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The instance was not told to stop", body = ErrorBody)))]
async fn instance_stopped(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    instance_report(
        &state,
        &principal,
        parse_instance_id(&id)?,
        Fleet::instance_stopped,
    )
    .await
}

/// Applies an agent's report about the instance `id`: 204 once the change is in the store.
/// Admins report any instance; an agent token only those placed on its host.
async fn instance_report(
    state: &AppState,
    principal: &Principal,
    id: InstanceId,
    report: impl FnOnce(&mut Fleet, InstanceId) -> Result<Outcome, FleetError>,
) -> Result<StatusCode, ApiError> {
    require(principal, Requirement::AgentCall)?;
    let mut writer = state.fleet().write().await?;
    require_instance_host(writer.fleet(), principal, id)?;
    let outcome = report(writer.fleet(), id)?;
    writer
        .commit(state, outcome, Some(principal.token()), OwnerHints::new())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `principal` may report about the instance `id`: the agent of the host it is placed
/// on, or an admin. An unknown instance passes (the report then answers 404); a pending one is
/// on no host, so no agent reports it.
fn require_instance_host(
    fleet: &Fleet,
    principal: &Principal,
    id: InstanceId,
) -> Result<(), ApiError> {
    let Some(instance) = fleet.instance(id) else {
        return Ok(());
    };
    match &instance.host {
        Some(host) => require(principal, Requirement::Host(host)),
        None => require(principal, Requirement::Admin).map_err(|_| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("instance {id} is pending: it is on no host, so no agent reports it"),
            )
        }),
    }
}
