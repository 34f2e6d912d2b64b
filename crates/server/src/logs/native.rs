//! The native API of logs: `/api/v1/tenants/{name}/logs/usage` (accounting per day) and
//! `/api/v1/tenants/{name}/logs/purge` (dropping partitions for disk spikes).

use axum::Json;
use axum::extract::State;
use caravan_api::{DayUsage, LogPurge, PurgedPartition};
use caravan_logstore::Day;
use caravan_tenancy::{Requirement, TenantName, authorize};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// Days of usage shown when none is asked for.
const USAGE_DAYS_DEFAULT: u32 = 14;
/// The most days of usage one request may ask for.
const USAGE_DAYS_MAX: u32 = 400;

/// The native logs router.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenant_usage))
        .routes(routes!(purge))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct UsageParams {
    /// How many days back, today included (default 14, at most 400).
    days: Option<u32>,
}

/// A tenant's log usage per UTC day: documents and bytes received and accepted, bytes stored,
/// coerced and ignored values, rejections by reason and the top unknown keys.
#[utoipa::path(get, path = "/tenants/{name}/logs/usage", tag = "logs",
    params(("name" = String, Path, description = "Tenant name"), UsageParams),
    responses((status = 200, body = Vec<DayUsage>), (status = 404, body = ErrorBody)))]
async fn tenant_usage(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<Json<Vec<DayUsage>>, ApiError> {
    authorize(&principal, Requirement::Visible, Some(&name))
        .map_err(|d| ApiError::denied(d, format!("tenant {name:?}")))?;
    let days = params.days.unwrap_or(USAGE_DAYS_DEFAULT);
    if !(1..=USAGE_DAYS_MAX).contains(&days) {
        return Err(ApiError::invalid(format!(
            "days must be between 1 and {USAGE_DAYS_MAX}, got {days}"
        )));
    }
    let lookup = name.clone();
    if state
        .store(move |store| store.tenant(&lookup))
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("tenant {name:?} not found")));
    }
    let now = time::OffsetDateTime::now_utc();
    let from_day = super::day_of(now - time::Duration::days(i64::from(days) - 1));
    let mut usage = state.usage().tenant_days(&name, &from_day);
    let partitions = state
        .logstore()
        .partitions(Some(name.as_str()))
        .await
        .map_err(ApiError::internal)?;
    for partition in partitions {
        let day = partition.day.to_string();
        if day < from_day {
            continue;
        }
        match usage.iter_mut().find(|u| u.day == day) {
            Some(existing) => existing.bytes_stored = partition.disk_bytes,
            None => usage.push(DayUsage {
                day,
                bytes_stored: partition.disk_bytes,
                ..DayUsage::default()
            }),
        }
    }
    usage.sort_by(|a, b| b.day.cmp(&a.day));
    Ok(Json(usage))
}

/// Drops one day (`day`) or every day before a date (`before`) of a tenant's logs (admin).
#[utoipa::path(post, path = "/tenants/{name}/logs/purge", tag = "logs", request_body = LogPurge,
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 200, body = Vec<PurgedPartition>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn purge(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
    ApiJson(request): ApiJson<LogPurge>,
) -> Result<Json<Vec<PurgedPartition>>, ApiError> {
    authorize(&principal, Requirement::Admin, Some(&name))
        .map_err(|d| ApiError::denied(d, format!("tenant {name:?}")))?;
    let parse = |field: &str, text: &str| {
        Day::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "{field}: expected a day as YYYY-MM-DD, got {text:?}"
            ))
        })
    };
    let logstore = state.logstore();
    let dropped = match (&request.day, &request.before) {
        (Some(day), None) => logstore
            .drop_partition(name.as_str(), parse("day", day)?)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .collect::<Vec<_>>(),
        (None, Some(before)) => logstore
            .drop_partitions_before(name.as_str(), parse("before", before)?)
            .await
            .map_err(ApiError::internal)?,
        _ => return Err(ApiError::invalid("give exactly one of day or before")),
    };
    let purged: Vec<PurgedPartition> = dropped
        .into_iter()
        .map(|p| PurgedPartition {
            tenant: p.tenant,
            day: p.day.to_string(),
            documents: p.documents,
            disk_bytes: p.disk_bytes,
        })
        .collect();
    for partition in &purged {
        tracing::info!(tenant = %partition.tenant, day = %partition.day, documents = partition.documents, by = %principal.token(), "purged a log partition");
    }
    Ok(Json(purged))
}
