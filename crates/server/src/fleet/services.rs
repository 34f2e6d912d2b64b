//! `/api/v1/fleet/{services,capacity,quotas,events}`: services and their placement, checks and
//! migrations, capacity, tenant quotas and the audit log.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use caravan_api::fleet::{
    CapacityReport, FLEET_EVENTS_LIMIT_DEFAULT, FLEET_EVENTS_LIMIT_MAX, FleetEvent, GroupView,
    MigrateRequest, QuotaView, RegistryView, ServicePatch, ServiceSummary, ServiceView,
};
use caravan_fleet::{
    CheckReport, Fleet, FleetError, GroupShape, InstanceState, Migration, ResourceOverride,
    Resources, Service, ServiceEndpoints, ServiceName, ServiceSpec, TemplateName, TenantName,
};
use caravan_store::FleetEventFilter;
use caravan_tenancy::{Principal, Requirement, Scope, authorize};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::inventory::admin_change;
use super::{
    OwnerHints, ensure_tenant_exists, fleet_tenant, long_poll, require_owner, require_read, sees,
};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// The services router.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_services, create_service))
        .routes(routes!(get_service, update_service, delete_service))
        .routes(routes!(service_endpoints))
        .routes(routes!(registry))
        .routes(routes!(check_service))
        .routes(routes!(check_services))
        .routes(routes!(migrate_service))
        .routes(routes!(capacity))
        .routes(routes!(list_quotas))
        .routes(routes!(get_quota, set_quota, remove_quota))
        .routes(routes!(events))
}

fn service_missing(name: &ServiceName) -> ApiError {
    FleetError::NotFound {
        kind: ServiceName::KIND,
        name: name.to_string(),
    }
    .into()
}

/// The service, if `principal` may act on it with `requirement` (a scope, or the registry);
/// another tenant's is "not found".
fn owned_service<'f, 'r>(
    fleet: &'f Fleet,
    principal: &Principal,
    name: &ServiceName,
    requirement: impl Into<Requirement<'r>>,
) -> Result<&'f Service, ApiError> {
    let service = fleet.service(name).ok_or_else(|| service_missing(name))?;
    require_owner(principal, &service.tenant, requirement, || {
        service_missing(name)
    })?;
    Ok(service)
}

fn service_view(fleet: &Fleet, name: &ServiceName) -> Result<ServiceView, ApiError> {
    let service = fleet.service(name).ok_or_else(|| service_missing(name))?;
    let mut instances = fleet.service_instances(name);
    instances.sort_by_key(|instance| (instance.group, instance.member, instance.id));
    let mut groups: Vec<GroupView> = Vec::new();
    for instance in instances {
        match groups.last_mut() {
            Some(group) if group.group == instance.group => {
                group.instances.push(instance.clone());
            }
            _ => groups.push(GroupView {
                group: instance.group,
                instances: vec![instance.clone()],
            }),
        }
    }
    Ok(ServiceView {
        service: service.clone(),
        demand: service.demand(),
        groups,
    })
}

fn service_summary(fleet: &Fleet, service: &Service) -> ServiceSummary {
    let instances = fleet.service_instances(&service.name);
    ServiceSummary {
        name: service.name.clone(),
        tenant: service.tenant.clone(),
        templates: service.members.iter().map(|m| m.template.clone()).collect(),
        groups: service.groups,
        policy: service.policy,
        demand: service.demand(),
        instances: instances.len(),
        running: instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .count(),
        pending: instances
            .iter()
            .filter(|i| matches!(i.state, InstanceState::Pending { .. }))
            .count(),
    }
}

/// Lists services: all for admins, its tenant's for a tenant token with `fleet:read`.
#[utoipa::path(get, path = "/fleet/services", tag = "fleet",
    responses((status = 200, body = Vec<ServiceSummary>), (status = 403, body = ErrorBody)))]
async fn list_services(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Vec<ServiceSummary>>, ApiError> {
    require_read(&principal)?;
    let fleet = state.fleet().read().await?;
    Ok(Json(
        fleet
            .services()
            .filter(|service| sees(&principal, &service.tenant))
            .map(|service| service_summary(&fleet, service))
            .collect(),
    ))
}

/// Creates a service and places all its groups (admin, or the owner tenant's token with
/// `fleet:write`). Refused as a whole, with one explanation per member that cannot be placed.
#[utoipa::path(post, path = "/fleet/services", tag = "fleet",
    request_body(content = Object, description = "`{\"name\": \"web\", \"tenant\": \"payments\", \"templates\": [\"web_dc1\", \"web_dc2\"], \"groups\": 3, \"resources\": {\"memory_bytes\": 4294967296}, \"policy\": \"spread\"}` (resources and policy optional)"),
    responses((status = 201, body = ServiceView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "Unknown tenant or template", body = ErrorBody),
        (status = 409, description = "Exists, or cannot be placed, or over quota: the reason says which", body = ErrorBody)))]
async fn create_service(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(spec): ApiJson<ServiceSpec>,
) -> Result<(StatusCode, Json<ServiceView>), ApiError> {
    let tenant_missing =
        || ApiError::not_found(format!("tenant {:?} not found", spec.tenant.as_str()));
    require_owner(&principal, &spec.tenant, Scope::FleetWrite, tenant_missing)?;
    let mut writer = state.fleet().write().await?;
    // Checked under the fleet lock: a tenant deletion holds it too, so no orphan can appear.
    ensure_tenant_exists(&state, &spec.tenant).await?;
    let name = spec.name.clone();
    let outcome = writer.fleet().create_service(spec)?;
    let mut writer = writer
        .commit(&state, outcome, Some(principal.token()), OwnerHints::new())
        .await?;
    tracing::info!(service = %name, by = %principal.token(), "service created");
    Ok((
        StatusCode::CREATED,
        Json(service_view(writer.fleet(), &name)?),
    ))
}

/// Shows a service and its instances by group.
#[utoipa::path(get, path = "/fleet/services/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Service name")),
    responses((status = 200, body = ServiceView), (status = 404, body = ErrorBody)))]
async fn get_service(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<ServiceName>,
) -> Result<Json<ServiceView>, ApiError> {
    let fleet = state.fleet().read().await?;
    owned_service(&fleet, &principal, &name, Scope::FleetRead)?;
    Ok(Json(service_view(&fleet, &name)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct WatchParams {
    /// With `version`: wait up to this many milliseconds (at most 30000) for the answer to
    /// differ from that version; the answer is the current one either way.
    wait_ms: Option<u64>,
    /// The version the caller knows (from a previous answer).
    version: Option<String>,
}

impl WatchParams {
    /// How long to wait for a change: `wait_ms`, only with a `version` to compare with.
    fn wait(&self) -> Duration {
        Duration::from_millis(match self.version {
            Some(_) => self.wait_ms.unwrap_or(0),
            None => 0,
        })
    }
}

/// The service registry: a service's endpoints (instance, host, data center, ip, port, weight,
/// healthy, draining) and their version (admin, agent tokens, or the owner tenant with
/// `fleet:read`). With
/// `version` and `wait_ms`, a long poll: answers as soon as the endpoints differ from that
/// version (woken by every fleet change), or with the same version once `wait_ms` has passed.
#[utoipa::path(get, path = "/fleet/services/{name}/endpoints", tag = "fleet",
    params(("name" = String, Path, description = "Service name"), WatchParams),
    responses((status = 200, description = "`{\"version\": \"...\", \"endpoints\": [...]}`", body = Object),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn service_endpoints(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<ServiceName>,
    ApiQuery(params): ApiQuery<WatchParams>,
) -> Result<Json<ServiceEndpoints>, ApiError> {
    let wait = params.wait();
    let known = params.version;
    let endpoints = long_poll(&state, wait, |fleet| {
        // Checked on every look: the service may be deleted, or change hands, while waiting.
        owned_service(fleet, &principal, &name, Requirement::Registry)?;
        let endpoints = fleet.service_endpoints(&name)?;
        let differs = known.as_deref() != Some(endpoints.version.as_str());
        Ok((endpoints, differs))
    })
    .await?;
    Ok(Json(endpoints))
}

/// The service registry: every service the caller may read (admin and agent tokens: all; a
/// tenant token with `fleet:read`: its own), with its frontend port and endpoints; what a load
/// balancer follows. With `version` and `wait_ms`,
/// a long poll: answers as soon as the registry differs from that version, or with the same
/// version once `wait_ms` has passed.
#[utoipa::path(get, path = "/fleet/registry", tag = "fleet", params(WatchParams),
    responses((status = 200, body = RegistryView), (status = 403, body = ErrorBody)))]
async fn registry(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(params): ApiQuery<WatchParams>,
) -> Result<Json<RegistryView>, ApiError> {
    authorize(&principal, Requirement::Registry, None)
        .map_err(|d| ApiError::denied(d, "registry"))?;
    let wait = params.wait();
    let known = params.version;
    let registry = long_poll(&state, wait, |fleet| {
        let registry = fleet.registry(|service| sees(&principal, &service.tenant));
        let differs = known.as_deref() != Some(registry.version.as_str());
        Ok((registry, differs))
    })
    .await?;
    Ok(Json(RegistryView {
        version: registry.version,
        changed_at_ms: state.fleet().changed_at_ms(),
        services: registry.services,
    }))
}

/// Scales (`groups`), resizes (`resources`), or changes the templates or policy of a service,
/// all or nothing.
#[utoipa::path(patch, path = "/fleet/services/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Service name")), request_body = ServicePatch,
    responses((status = 200, body = ServiceView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_service(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<ServiceName>,
    ApiJson(patch): ApiJson<ServicePatch>,
) -> Result<Json<ServiceView>, ApiError> {
    let mut writer = state.fleet().write().await?;
    let mut spec = owned_service(writer.fleet(), &principal, &name, Scope::FleetWrite)?.spec();
    if let Some(groups) = patch.groups {
        spec.groups = groups;
    }
    if let Some(resources) = patch.resources {
        spec.resources = resources.over(&spec.resources);
    }
    if let Some(templates) = patch.templates {
        spec.templates = templates;
    }
    if let Some(policy) = patch.policy {
        spec.policy = policy;
    }
    let outcome = writer.fleet().update_service(spec)?;
    let mut writer = writer
        .commit(&state, outcome, Some(principal.token()), OwnerHints::new())
        .await?;
    tracing::info!(service = %name, by = %principal.token(), "service updated");
    Ok(Json(service_view(writer.fleet(), &name)?))
}

/// Deletes a service, its instances and their leases.
#[utoipa::path(delete, path = "/fleet/services/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Service name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_service(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<ServiceName>,
) -> Result<StatusCode, ApiError> {
    let mut writer = state.fleet().write().await?;
    let owner = owned_service(writer.fleet(), &principal, &name, Scope::FleetWrite)?
        .tenant
        .clone();
    let outcome = writer.fleet().delete_service(&name)?;
    let hints = OwnerHints::from([(name.clone(), owner)]);
    writer
        .commit(&state, outcome, Some(principal.token()), hints)
        .await?;
    tracing::info!(service = %name, by = %principal.token(), "service deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Reports a service's placement problems: two members of a group in one data center,
/// instances sharing a host when avoidable, hosts over capacity, instances on hosts that are
/// not up, pending instances.
#[utoipa::path(get, path = "/fleet/services/{name}/check", tag = "fleet",
    params(("name" = String, Path, description = "Service name")),
    responses((status = 200, description = "`{service, findings, messages}`; no findings: all is well", body = Object),
        (status = 404, body = ErrorBody)))]
async fn check_service(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<ServiceName>,
) -> Result<Json<CheckReport>, ApiError> {
    let fleet = state.fleet().read().await?;
    owned_service(&fleet, &principal, &name, Scope::FleetRead)?;
    Ok(Json(fleet.check(&name)?))
}

/// Reports the placement problems of every service the token sees (all for admins, its
/// tenant's for a tenant token with `fleet:read`): one report per service that has findings,
/// by service name; an empty list when all is well. The UI's overview shows them as alerts.
#[utoipa::path(get, path = "/fleet/checks", tag = "fleet",
    responses((status = 200, description = "`[{service, findings, messages}]`, services with findings only", body = Vec<Object>),
        (status = 403, body = ErrorBody)))]
async fn check_services(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Vec<CheckReport>>, ApiError> {
    require_read(&principal)?;
    let fleet = state.fleet().read().await?;
    let mut reports = Vec::new();
    for service in fleet.services() {
        if sees(&principal, &service.tenant) {
            let report = fleet.check(&service.name)?;
            if !report.findings.is_empty() {
                reports.push(report);
            }
        }
    }
    Ok(Json(reports))
}

/// Fixes what the check reports by moving instances (replacement placed first), to `to_host`
/// if given. All or nothing.
#[utoipa::path(post, path = "/fleet/services/{name}/migrate", tag = "fleet",
    params(("name" = String, Path, description = "Service name")), request_body = MigrateRequest,
    responses((status = 200, description = "`{moves, unfixable}`: the moves started and what a move cannot fix", body = Object),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A move cannot be placed", body = ErrorBody)))]
async fn migrate_service(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<ServiceName>,
    ApiJson(request): ApiJson<MigrateRequest>,
) -> Result<Json<Migration>, ApiError> {
    let mut writer = state.fleet().write().await?;
    owned_service(writer.fleet(), &principal, &name, Scope::FleetWrite)?;
    let (migration, outcome) = writer.fleet().migrate(&name, request.to_host.as_ref())?;
    writer
        .commit(&state, outcome, Some(principal.token()), OwnerHints::new())
        .await?;
    tracing::info!(service = %name, moves = migration.moves.len(), by = %principal.token(), "service migrated");
    Ok(Json(migration))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct CapacityParams {
    /// A group shape: its templates, comma-separated (one per member).
    templates: Option<String>,
    /// Override of the templates' CPU, in millicores.
    cpu_millis: Option<u64>,
    /// Override of the templates' memory, in bytes.
    memory_bytes: Option<u64>,
    /// Override of the templates' disk, in bytes.
    disk_bytes: Option<u64>,
}

/// Total, allocated and free resources per zone and data center (`fleet:read`), and, given a
/// group shape (`templates`, optional resource overrides), how many more groups of it fit.
#[utoipa::path(get, path = "/fleet/capacity", tag = "fleet", params(CapacityParams),
    responses((status = 200, body = CapacityReport), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "Unknown template", body = ErrorBody)))]
async fn capacity(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(params): ApiQuery<CapacityParams>,
) -> Result<Json<CapacityReport>, ApiError> {
    require_read(&principal)?;
    let overrides = ResourceOverride {
        cpu_millis: params.cpu_millis,
        memory_bytes: params.memory_bytes,
        disk_bytes: params.disk_bytes,
    };
    let shape = match params.templates {
        Some(templates) => Some(GroupShape {
            templates: templates
                .split(',')
                .map(|t| t.trim().parse::<TemplateName>())
                .collect::<Result<_, _>>()?,
            resources: overrides,
        }),
        None if overrides != ResourceOverride::default() => {
            return Err(ApiError::invalid(
                "resource overrides need a shape: give templates too",
            ));
        }
        None => None,
    };
    let fleet = state.fleet().read().await?;
    let fit = shape.map(|shape| fleet.fit_groups(&shape)).transpose()?;
    Ok(Json(CapacityReport {
        zones: fleet.capacity(),
        fit,
    }))
}

fn quota_view(fleet: &Fleet, tenant: &TenantName) -> QuotaView {
    QuotaView {
        tenant: tenant.clone(),
        limits: fleet
            .quotas()
            .find(|(t, _)| *t == tenant)
            .map(|(_, limits)| *limits),
        usage: fleet.tenant_usage(tenant),
    }
}

/// Tenant quotas and usage: every tenant with a quota or services for admins, its own for a
/// tenant token with `fleet:read`.
#[utoipa::path(get, path = "/fleet/quotas", tag = "fleet",
    responses((status = 200, body = Vec<QuotaView>), (status = 403, body = ErrorBody)))]
async fn list_quotas(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Vec<QuotaView>>, ApiError> {
    authorize(&principal, Requirement::TenantData, None)
        .map_err(|d| ApiError::denied(d, "quotas"))?;
    let fleet = state.fleet().read().await?;
    if let Some(own) = principal.tenant() {
        let tenant = fleet_tenant(own)?;
        require_owner(&principal, &tenant, Scope::FleetRead, || {
            ApiError::not_found("no quota")
        })?;
        return Ok(Json(vec![quota_view(&fleet, &tenant)]));
    }
    let mut tenants: std::collections::BTreeSet<TenantName> =
        fleet.quotas().map(|(tenant, _)| tenant.clone()).collect();
    tenants.extend(fleet.services().map(|service| service.tenant.clone()));
    Ok(Json(
        tenants
            .iter()
            .map(|tenant| quota_view(&fleet, tenant))
            .collect(),
    ))
}

/// A tenant's quota and usage (admin, or the tenant's token with `fleet:read`).
#[utoipa::path(get, path = "/fleet/quotas/{tenant}", tag = "fleet",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = QuotaView), (status = 404, body = ErrorBody)))]
async fn get_quota(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(tenant): ApiPath<caravan_tenancy::TenantName>,
) -> Result<Json<QuotaView>, ApiError> {
    let missing = || ApiError::not_found(format!("tenant {:?} not found", tenant.as_str()));
    let name = fleet_tenant(&tenant)?;
    require_owner(&principal, &name, Scope::FleetRead, missing)?;
    ensure_tenant_exists(&state, &name).await?;
    let fleet = state.fleet().read().await?;
    Ok(Json(quota_view(&fleet, &name)))
}

/// Sets a tenant's quota (admin): the most CPU, memory and disk its services may ask for in
/// all. Lowering it below usage refuses only new requests.
#[utoipa::path(put, path = "/fleet/quotas/{tenant}", tag = "fleet",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body(content = Object, description = "`{\"cpu_millis\": 64000, \"memory_bytes\": 274877906944, \"disk_bytes\": 1099511627776}`"),
    responses((status = 200, body = QuotaView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_quota(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(tenant): ApiPath<caravan_tenancy::TenantName>,
    ApiJson(limits): ApiJson<Resources>,
) -> Result<Json<QuotaView>, ApiError> {
    super::require_admin(&principal)?;
    let name = fleet_tenant(&tenant)?;
    let mut writer = state.fleet().write().await?;
    ensure_tenant_exists(&state, &name).await?;
    let outcome = writer
        .fleet()
        .set_tenant_quota(name.clone(), Some(limits))?;
    let mut writer = writer
        .commit(&state, outcome, Some(principal.token()), OwnerHints::new())
        .await?;
    Ok(Json(quota_view(writer.fleet(), &name)))
}

/// Removes a tenant's quota (admin): its services are then unlimited.
#[utoipa::path(delete, path = "/fleet/quotas/{tenant}", tag = "fleet",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_quota(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(tenant): ApiPath<caravan_tenancy::TenantName>,
) -> Result<StatusCode, ApiError> {
    let name = fleet_tenant(&tenant)?;
    admin_change(
        &state,
        &principal,
        |fleet| fleet.set_tenant_quota(name, None),
        |_| Ok(()),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct EventParams {
    /// Only events about this service.
    service: Option<String>,
    /// Only events about this host.
    host: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<usize>,
}

/// The audit log of placement decisions, newest first: what, where, why, by which token, when.
/// Admins see every event; a tenant token with `fleet:read` sees its services' events.
#[utoipa::path(get, path = "/fleet/events", tag = "fleet", params(EventParams),
    responses((status = 200, body = Vec<FleetEvent>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn events(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(params): ApiQuery<EventParams>,
) -> Result<Json<Vec<FleetEvent>>, ApiError> {
    require_read(&principal)?;
    let limit = params.limit.unwrap_or(FLEET_EVENTS_LIMIT_DEFAULT);
    if limit == 0 || limit > FLEET_EVENTS_LIMIT_MAX {
        return Err(ApiError::invalid(format!(
            "limit must be 1 to {FLEET_EVENTS_LIMIT_MAX}, got {limit}"
        )));
    }
    let filter = FleetEventFilter {
        service: params.service,
        host: params.host,
        tenant: principal.tenant().map(ToString::to_string),
        limit,
    };
    let records = state
        .store(move |store| store.fleet_events(&filter))
        .await?;
    Ok(Json(
        records
            .into_iter()
            .map(|record| FleetEvent {
                id: record.id,
                at: record.at,
                by: record.by.map(|token| token.to_string()),
                kind: record.kind,
                service: record.service,
                instance: record.instance,
                host: record.host,
                data_center: record.data_center,
                message: record.message,
            })
            .collect(),
    ))
}
