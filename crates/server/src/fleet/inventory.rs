//! `/api/v1/fleet/{zones,data-centers,ranges,leases,templates}`: the catalog that hosts and
//! services refer to, and address lookups both ways.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use caravan_api::fleet::{LeaseView, RangeView, TemplateView};
use caravan_fleet::{
    AddressRange, Cidr, DataCenter, DcName, Fleet, FleetError, InstanceId, Lease, Outcome,
    Template, TemplateName, Zone, ZoneName,
};
use caravan_tenancy::{Principal, Scope};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{OwnerHints, require_admin, require_owner, require_read, sees};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// The catalog router.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_zones, create_zone))
        .routes(routes!(delete_zone))
        .routes(routes!(list_data_centers, create_data_center))
        .routes(routes!(delete_data_center))
        .routes(routes!(list_ranges, add_range))
        .routes(routes!(remove_range))
        .routes(routes!(leases))
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, replace_template, delete_template))
}

/// Runs one admin change on the fleet, persists it, and answers `view` of the fleet after it.
pub(super) async fn admin_change<R>(
    state: &AppState,
    principal: &Principal,
    operation: impl FnOnce(&mut Fleet) -> Result<Outcome, FleetError>,
    view: impl FnOnce(&Fleet) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    require_admin(principal)?;
    change(state, principal, operation, view).await
}

/// Runs one change on the fleet for a caller whose access is already checked, persists it, and
/// answers `view` of the fleet after it.
pub(super) async fn change<R>(
    state: &AppState,
    principal: &Principal,
    operation: impl FnOnce(&mut Fleet) -> Result<Outcome, FleetError>,
    view: impl FnOnce(&Fleet) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let mut writer = state.fleet().write().await?;
    let outcome = operation(writer.fleet())?;
    let mut writer = writer
        .commit(state, outcome, Some(principal.token()), OwnerHints::new())
        .await?;
    view(&*writer.fleet())
}

fn nothing(_: &Fleet) -> Result<(), ApiError> {
    Ok(())
}

/// Lists zones (`fleet:read`).
#[utoipa::path(get, path = "/fleet/zones", tag = "fleet",
    responses((status = 200, description = "Zones, by name: `[{\"name\": ...}]`", body = Vec<Object>),
        (status = 403, body = ErrorBody)))]
async fn list_zones(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Vec<Zone>>, ApiError> {
    require_read(&principal)?;
    Ok(Json(state.fleet().read().await?.zones().cloned().collect()))
}

/// Creates a zone (admin).
#[utoipa::path(post, path = "/fleet/zones", tag = "fleet",
    request_body(content = Object, description = "`{\"name\": \"production\"}`"),
    responses((status = 201, description = "The zone", body = Object), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_zone(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(zone): ApiJson<Zone>,
) -> Result<(StatusCode, Json<Zone>), ApiError> {
    let name = zone.name.clone();
    admin_change(&state, &principal, |fleet| fleet.create_zone(name), nothing).await?;
    Ok((StatusCode::CREATED, Json(zone)))
}

/// Deletes a zone without data centers (admin).
#[utoipa::path(delete, path = "/fleet/zones/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Zone name")),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "Data centers are in it", body = ErrorBody)))]
async fn delete_zone(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<ZoneName>,
) -> Result<StatusCode, ApiError> {
    admin_change(
        &state,
        &principal,
        |fleet| fleet.delete_zone(&name),
        nothing,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists data centers (`fleet:read`).
#[utoipa::path(get, path = "/fleet/data-centers", tag = "fleet",
    responses((status = 200, description = "Data centers, by name: `[{\"name\", \"zone\"}]`", body = Vec<Object>),
        (status = 403, body = ErrorBody)))]
async fn list_data_centers(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Vec<DataCenter>>, ApiError> {
    require_read(&principal)?;
    Ok(Json(
        state
            .fleet()
            .read()
            .await?
            .data_centers()
            .cloned()
            .collect(),
    ))
}

/// Creates a data center in a zone (admin).
#[utoipa::path(post, path = "/fleet/data-centers", tag = "fleet",
    request_body(content = Object, description = "`{\"name\": \"dc1\", \"zone\": \"production\"}`"),
    responses((status = 201, description = "The data center", body = Object), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "Unknown zone", body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_data_center(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(data_center): ApiJson<DataCenter>,
) -> Result<(StatusCode, Json<DataCenter>), ApiError> {
    let (name, zone) = (data_center.name.clone(), data_center.zone.clone());
    admin_change(
        &state,
        &principal,
        |fleet| fleet.create_data_center(name, &zone),
        nothing,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(data_center)))
}

/// Deletes a data center without hosts, templates, ranges or services (admin).
#[utoipa::path(delete, path = "/fleet/data-centers/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Data center name")),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "Something uses it; the error lists what", body = ErrorBody)))]
async fn delete_data_center(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<DcName>,
) -> Result<StatusCode, ApiError> {
    admin_change(
        &state,
        &principal,
        |fleet| fleet.delete_data_center(&name),
        nothing,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn range_view(fleet: &Fleet, range: &AddressRange) -> Result<RangeView, ApiError> {
    let usage = fleet
        .range_usage(&range.cidr)
        .ok_or_else(|| ApiError::internal(format!("range {} has no allocator", range.cidr)))?;
    Ok(RangeView {
        range: range.clone(),
        usage,
    })
}

/// Lists address ranges with their usage (`fleet:read`).
#[utoipa::path(get, path = "/fleet/ranges", tag = "fleet",
    responses((status = 200, body = Vec<RangeView>), (status = 403, body = ErrorBody)))]
async fn list_ranges(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Vec<RangeView>>, ApiError> {
    require_read(&principal)?;
    let fleet = state.fleet().read().await?;
    let ranges = fleet
        .ranges()
        .map(|range| range_view(&fleet, range))
        .collect::<Result<_, _>>()?;
    Ok(Json(ranges))
}

/// Adds an address range to a data center (admin). Ranges never overlap.
#[utoipa::path(post, path = "/fleet/ranges", tag = "fleet",
    request_body(content = Object, description = "`{\"cidr\": \"10.1.0.0/16\", \"data_center\": \"dc1\", \"gateway\": \"10.1.0.1\", \"reserved\": [\"10.1.0.2\"]}` (gateway and reserved optional)"),
    responses((status = 201, body = RangeView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "It overlaps another range", body = ErrorBody)))]
async fn add_range(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(range): ApiJson<AddressRange>,
) -> Result<(StatusCode, Json<RangeView>), ApiError> {
    let cidr = range.cidr;
    let view = admin_change(
        &state,
        &principal,
        |fleet| fleet.add_range(range),
        |fleet| {
            let range = fleet.ranges().find(|r| r.cidr == cidr).cloned();
            range_view(
                fleet,
                &range.ok_or_else(|| ApiError::internal("range vanished"))?,
            )
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize)]
struct RangePath {
    network: IpAddr,
    prefix_len: u8,
}

/// Removes an address range without leases (admin): `DELETE /fleet/ranges/10.1.0.0/16`.
#[utoipa::path(delete, path = "/fleet/ranges/{network}/{prefix_len}", tag = "fleet",
    params(("network" = String, Path, description = "Network address, such as 10.1.0.0"),
        ("prefix_len" = u8, Path, description = "Prefix length, such as 16")),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "Addresses are leased; the error lists them", body = ErrorBody)))]
async fn remove_range(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(path): ApiPath<RangePath>,
) -> Result<StatusCode, ApiError> {
    let cidr = Cidr::new(path.network, path.prefix_len)?;
    admin_change(
        &state,
        &principal,
        |fleet| fleet.remove_range(&cidr),
        nothing,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct LeaseParams {
    /// Who holds this address?
    ip: Option<String>,
    /// Which address does this instance hold? (`i-42` or `42`)
    instance: Option<String>,
}

/// Parses an instance id: `i-42` or `42`.
pub(super) fn parse_instance_id(text: &str) -> Result<InstanceId, ApiError> {
    text.strip_prefix("i-")
        .unwrap_or(text)
        .parse()
        .map(InstanceId)
        .map_err(|_| {
            ApiError::invalid(format!("invalid instance id {text:?}: expected i-42 or 42"))
        })
}

fn lease_view(fleet: &Fleet, lease: Lease) -> Option<LeaseView> {
    let instance = fleet.instance(lease.instance)?;
    Some(LeaseView {
        ip: lease.ip,
        range: lease.range,
        instance: lease.instance,
        service: instance.service.clone(),
        group: instance.group,
        data_center: instance.data_center.clone(),
        host: instance.host.clone(),
    })
}

fn visible_lease(fleet: &Fleet, principal: &Principal, lease: &LeaseView) -> bool {
    fleet
        .service(&lease.service)
        .is_some_and(|service| sees(principal, &service.tenant))
}

/// Address leases: who holds an address (`?ip=`), which address an instance holds
/// (`?instance=`), or all of them. A tenant token (`fleet:read`) sees its services' leases only;
/// a lookup that finds nothing it may see is a 404.
#[utoipa::path(get, path = "/fleet/leases", tag = "fleet", params(LeaseParams),
    responses((status = 200, body = Vec<LeaseView>), (status = 400, body = ErrorBody),
        (status = 404, description = "Nobody holds the address, or the instance has none", body = ErrorBody)))]
async fn leases(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(params): ApiQuery<LeaseParams>,
) -> Result<Json<Vec<LeaseView>>, ApiError> {
    let fleet = state.fleet().read().await?;
    let lookup = match (&params.ip, &params.instance) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("give ip or instance, not both"));
        }
        (Some(ip), None) => {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| ApiError::invalid(format!("invalid IP address {ip:?}")))?;
            Some((
                fleet.lease_holder(ip),
                format!("no instance holds the address {ip}"),
            ))
        }
        (None, Some(instance)) => {
            let id = parse_instance_id(instance)?;
            Some((
                fleet.instance_lease(id),
                format!("instance {id} holds no address (it does not exist or is pending)"),
            ))
        }
        (None, None) => None,
    };
    match lookup {
        Some((lease, missing)) => {
            let view = lease
                .and_then(|lease| lease_view(&fleet, lease))
                .ok_or_else(|| ApiError::not_found(missing.clone()))?;
            let owner = fleet
                .service(&view.service)
                .map(|service| service.tenant.clone())
                .ok_or_else(|| ApiError::not_found(missing.clone()))?;
            require_owner(&principal, &owner, Scope::FleetRead, || {
                ApiError::not_found(missing)
            })?;
            Ok(Json(vec![view]))
        }
        None => {
            require_read(&principal)?;
            Ok(Json(
                fleet
                    .leases()
                    .into_iter()
                    .filter_map(|lease| lease_view(&fleet, lease))
                    .filter(|view| visible_lease(&fleet, &principal, view))
                    .collect(),
            ))
        }
    }
}

/// Lists templates as stored (`fleet:read`).
#[utoipa::path(get, path = "/fleet/templates", tag = "fleet",
    responses((status = 200, description = "Templates, by name", body = Vec<Object>), (status = 403, body = ErrorBody)))]
async fn list_templates(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Vec<Template>>, ApiError> {
    require_read(&principal)?;
    Ok(Json(
        state.fleet().read().await?.templates().cloned().collect(),
    ))
}

fn template_view(fleet: &Fleet, name: &TemplateName) -> Result<TemplateView, ApiError> {
    let template = fleet
        .template(name)
        .ok_or_else(|| FleetError::NotFound {
            kind: TemplateName::KIND,
            name: name.to_string(),
        })?
        .clone();
    let (effective, incomplete) = match fleet.effective_template(name) {
        Ok(effective) => (Some(effective), None),
        Err(error) => (None, Some(error.to_string())),
    };
    Ok(TemplateView {
        template,
        effective,
        incomplete,
    })
}

/// Creates a template (admin). It may extend another and override its fields; it may be
/// incomplete (a base for others).
#[utoipa::path(post, path = "/fleet/templates", tag = "fleet",
    request_body(content = Object, description = "A template: `name`, and optional `extends`, `data_center`, `resources` {cpu_millis, memory_bytes, disk_bytes}, `run` {command, args, env, port, image}, `health` {probe: {kind: tcp|http|exec, ...}, interval_ms, timeout_ms, rise, fall}, `frontend_port`"),
    responses((status = 201, body = TemplateView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "The name is taken", body = ErrorBody)))]
async fn create_template(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(template): ApiJson<Template>,
) -> Result<(StatusCode, Json<TemplateView>), ApiError> {
    let name = template.name.clone();
    let view = admin_change(
        &state,
        &principal,
        |fleet| {
            if fleet.template(&template.name).is_some() {
                return Err(FleetError::AlreadyExists {
                    kind: TemplateName::KIND,
                    name: template.name.to_string(),
                });
            }
            fleet.upsert_template(template)
        },
        |fleet| template_view(fleet, &name),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Shows a template as stored and resolved through its `extends` chain (`fleet:read`).
#[utoipa::path(get, path = "/fleet/templates/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Template name")),
    responses((status = 200, body = TemplateView), (status = 404, body = ErrorBody)))]
async fn get_template(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TemplateName>,
) -> Result<Json<TemplateView>, ApiError> {
    require_read(&principal)?;
    let fleet = state.fleet().read().await?;
    Ok(Json(template_view(&fleet, &name)?))
}

/// Replaces a template (admin). Services keep what they resolved until they are next updated.
#[utoipa::path(put, path = "/fleet/templates/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Template name")),
    request_body(content = Object, description = "The whole template (see POST /fleet/templates); its name must be the path's"),
    responses((status = 200, body = TemplateView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replace_template(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TemplateName>,
    ApiJson(template): ApiJson<Template>,
) -> Result<Json<TemplateView>, ApiError> {
    if template.name != name {
        return Err(ApiError::invalid(format!(
            "the body names template {}, the path {name}",
            template.name
        )));
    }
    let view = admin_change(
        &state,
        &principal,
        |fleet| {
            if fleet.template(&name).is_none() {
                return Err(FleetError::NotFound {
                    kind: TemplateName::KIND,
                    name: name.to_string(),
                });
            }
            fleet.upsert_template(template)
        },
        |fleet| template_view(fleet, &name),
    )
    .await?;
    Ok(Json(view))
}

/// Deletes a template no service uses and no template extends (admin).
#[utoipa::path(delete, path = "/fleet/templates/{name}", tag = "fleet",
    params(("name" = String, Path, description = "Template name")),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "Services or templates use it; the error lists them", body = ErrorBody)))]
async fn delete_template(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TemplateName>,
) -> Result<StatusCode, ApiError> {
    admin_change(
        &state,
        &principal,
        |fleet| fleet.delete_template(&name),
        nothing,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
