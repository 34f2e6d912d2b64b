//! Search, shared by the native API (`POST /api/v1/logs/search`), the Elasticsearch
//! `_search` / `_count` endpoints and live tail: which tenants a caller reaches, the query
//! resolved against each tenant's dictionary, aggregations on dictionary keys, then one
//! [`LogStore::search`](caravan_logstore::LogStore::search) over all of them.

use std::sync::Arc;

use axum::http::StatusCode;
use caravan_logstore::{
    Aggregation, LogStoreError, SearchRequest, SearchResult, SortKey, SortOrder, TimeRange,
};
use caravan_query::{Filter, Query, QueryError, TIMESTAMP_KEY};
use caravan_schema::{Dictionary, FieldType};
use caravan_tenancy::{Denied, Principal, Requirement, Scope, TenantName, authorize};

use crate::AppState;
use crate::error::{ApiError, ErrorPosition};

/// Hits returned when the caller does not say.
pub(crate) const SIZE_DEFAULT: usize = 100;
/// Buckets a date histogram aims for when the caller gives no interval.
pub(crate) const HISTOGRAM_BUCKETS_DEFAULT: u32 = 50;
/// Most values a terms aggregation returns.
pub(crate) const TERMS_SIZE_MAX: u32 = 1_000;

/// An aggregation as asked, on fields as written.
#[derive(Debug, Clone)]
pub(crate) enum AggregationPlan {
    /// Over `@timestamp`: a fixed interval, or one chosen for a bucket count.
    DateHistogram {
        interval_ms: Option<i64>,
        buckets: u32,
        /// Empty buckets over the whole range (the native API); Elasticsearch only fills
        /// between the first and last documents.
        fill_range: bool,
    },
    /// Top values of a keyword field.
    Terms { field: String, size: u32 },
    /// Statistics of a number or date field.
    Stats { field: String },
}

/// A search as asked, before resolution.
#[derive(Debug, Clone)]
pub(crate) struct SearchPlan {
    pub tenants: Vec<TenantName>,
    pub query: Query,
    /// The caller's explicit range; the query's `@timestamp` ranges narrow it further.
    pub range: TimeRange,
    pub order: SortOrder,
    pub from: usize,
    pub size: usize,
    pub after: Option<SortKey>,
    pub aggregations: Vec<(String, AggregationPlan)>,
    pub now_ms: i64,
}

/// The tenants `patterns` name that `principal` may read. A pattern with `*` selects the
/// matching tenants it may read, silently skipping the others (a tenant token's `*` is its own
/// tenant); a name without `*` must route to a tenant it may read, or it is a 404
/// (`index_not_found_exception`, as other tenants' indexes do not exist for it).
pub(crate) async fn select_tenants(
    state: &AppState,
    principal: &Principal,
    patterns: &[String],
) -> Result<Vec<TenantName>, ApiError> {
    // Patterns skip unreadable tenants silently; a token that reads none is refused outright.
    authorize(principal, Requirement::TenantData, None).map_err(|d| ApiError::denied(d, "logs"))?;
    let all = state.store(|store| store.tenants()).await?;
    let names: Vec<String> = all.iter().map(|tenant| tenant.name.to_string()).collect();
    let readable = |tenant: &TenantName| {
        authorize(principal, Requirement::Scope(Scope::LogsRead), Some(tenant))
    };
    let mut selected: Vec<TenantName> = Vec::new();
    for pattern in patterns.iter().flat_map(|p| p.split(',')).map(str::trim) {
        if pattern.is_empty() {
            continue;
        }
        if pattern.contains('*') {
            for name in &names {
                if !super::routing::pattern_reaches(pattern, name) {
                    continue;
                }
                let Ok(tenant) = TenantName::new(name) else {
                    continue;
                };
                if readable(&tenant).is_ok() && !selected.contains(&tenant) {
                    selected.push(tenant);
                }
            }
            continue;
        }
        let missing = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "index_not_found_exception",
                format!("no such index [{pattern}]"),
            )
        };
        let tenant = state
            .index_router()
            .tenant_for_index(pattern, &names)
            .and_then(|name| TenantName::new(name).ok())
            .ok_or_else(missing)?;
        readable(&tenant).map_err(|denied| match denied {
            Denied::NotFound => missing(),
            forbidden => ApiError::denied(forbidden, pattern),
        })?;
        if !selected.contains(&tenant) {
            selected.push(tenant);
        }
    }
    Ok(selected)
}

/// The tenants a caller reaches when it names none: a tenant token's own tenant; an admin
/// must name them.
pub(crate) fn implicit_tenants(principal: &Principal) -> Result<Vec<String>, ApiError> {
    match principal {
        Principal::Tenant { tenant, .. } => Ok(vec![tenant.to_string()]),
        Principal::Admin { .. } => Err(ApiError::invalid(
            "name the tenants to search (`tenants`, globs allowed: `*` for all)",
        )),
        Principal::Agent { .. } => {
            // Refused: an agent token reads no tenant's logs.
            authorize(principal, Requirement::TenantData, None)
                .map_err(|d| ApiError::denied(d, "logs"))?;
            Ok(Vec::new())
        }
    }
}

/// Resolves and runs `plan`.
pub(crate) async fn run(state: &AppState, plan: SearchPlan) -> Result<SearchResult, ApiError> {
    let dictionaries = dictionaries(state, &plan.tenants).await?;
    let mut tenants = Vec::with_capacity(plan.tenants.len());
    let mut first_error = None;
    let mut query_bounds = (i64::MAX, i64::MIN);
    for (tenant, dictionary) in plan.tenants.iter().zip(&dictionaries) {
        match caravan_query::resolve(&plan.query, dictionary.as_deref(), plan.now_ms) {
            Ok(filter) => {
                let (from, to) = filter.timestamp_bounds();
                query_bounds = (query_bounds.0.min(from), query_bounds.1.max(to));
                tenants.push((tenant.to_string(), filter));
            }
            // With several tenants, one whose schema lacks a field matches nothing there.
            Err(error @ QueryError::UnknownField { .. }) if plan.tenants.len() > 1 => {
                first_error.get_or_insert(error);
                tenants.push((tenant.to_string(), Filter::None));
            }
            Err(error) => return Err(query_error(error)),
        }
    }
    if let Some(error) = first_error
        && tenants.iter().all(|(_, filter)| *filter == Filter::None)
    {
        return Err(query_error(error));
    }
    let mut range = plan.range;
    if query_bounds.0 <= query_bounds.1 {
        range.from_ms = range.from_ms.max(query_bounds.0);
        range.to_ms = range.to_ms.min(query_bounds.1);
    }
    if range.to_ms < range.from_ms {
        range.to_ms = range.from_ms;
    }
    let aggregations = plan
        .aggregations
        .iter()
        .map(|(name, aggregation)| {
            resolve_aggregation(name, aggregation, &dictionaries, range, plan.now_ms)
                .map(|resolved| (name.clone(), resolved))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let request = SearchRequest {
        tenants,
        range,
        order: plan.order,
        from: plan.from,
        size: plan.size,
        search_after: plan.after,
        aggregations,
    };
    state.logstore().search(request).await.map_err(store_error)
}

async fn dictionaries(
    state: &AppState,
    tenants: &[TenantName],
) -> Result<Vec<Option<Arc<Dictionary>>>, ApiError> {
    let state_for_lookup = state.clone();
    let tenants = tenants.to_vec();
    let store = state.store_handle();
    tokio::task::spawn_blocking(move || {
        tenants
            .iter()
            .map(|tenant| {
                state_for_lookup
                    .schema()
                    .dictionary_for(store.as_ref(), tenant)
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(ApiError::internal)?
}

fn resolve_aggregation(
    name: &str,
    aggregation: &AggregationPlan,
    dictionaries: &[Option<Arc<Dictionary>>],
    range: TimeRange,
    now_ms: i64,
) -> Result<Aggregation, ApiError> {
    let invalid = |reason: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!("aggregation [{name}]: {reason}"),
        )
    };
    let key_of = |field: &str, accepts: &dyn Fn(FieldType) -> bool, kinds: &str| {
        let mut known = false;
        for dictionary in dictionaries.iter().flatten() {
            let Some(def) = dictionary.resolve(field) else {
                continue;
            };
            known = true;
            if def.indexed && accepts(def.field_type) {
                let key = if def.key.ends_with(".*") {
                    field.to_owned()
                } else {
                    def.key.clone()
                };
                return Ok(key);
            }
        }
        Err(invalid(if known {
            format!("field `{field}` is not an indexed {kinds} field")
        } else {
            format!("unknown field `{field}`")
        }))
    };
    Ok(match aggregation {
        AggregationPlan::DateHistogram {
            interval_ms,
            buckets,
            fill_range,
        } => {
            // Bounds for empty buckets and the automatic interval: the range, capped at now.
            let bounded = range.from_ms > i64::MIN / 2 && range.to_ms < i64::MAX / 2;
            let end = if bounded { range.to_ms } else { now_ms };
            let interval_ms = match interval_ms {
                Some(interval) if *interval > 0 => *interval,
                Some(_) => return Err(invalid("the interval must be positive".into())),
                None if bounded => caravan_query::auto_interval(end - range.from_ms, *buckets),
                None => {
                    return Err(invalid(
                        "give an interval, or a time range to choose one from".into(),
                    ));
                }
            };
            if bounded && (end - range.from_ms) / interval_ms > 10_000 {
                return Err(invalid(format!(
                    "{interval_ms} ms buckets over this range make more than 10000 buckets"
                )));
            }
            Aggregation::DateHistogram {
                interval_ms,
                bounds: (bounded && *fill_range).then_some((range.from_ms, end)),
            }
        }
        AggregationPlan::Terms { field, size } => {
            if *size == 0 || *size > TERMS_SIZE_MAX {
                return Err(invalid(format!(
                    "size must be between 1 and {TERMS_SIZE_MAX}, got {size}"
                )));
            }
            Aggregation::Terms {
                key: key_of(
                    field,
                    &|t| matches!(t, FieldType::Keyword | FieldType::Boolean),
                    "keyword",
                )?,
                size: *size,
            }
        }
        AggregationPlan::Stats { field } => {
            if field == TIMESTAMP_KEY {
                return Err(invalid(
                    "statistics of `@timestamp` are not supported; use a date histogram".into(),
                ));
            }
            Aggregation::Stats {
                key: key_of(
                    field,
                    &|t| matches!(t, FieldType::Long | FieldType::Double | FieldType::Date),
                    "number or date",
                )?,
            }
        }
    })
}

/// A query error as the API reports it (400, Elasticsearch's error types), with its place
/// in the query string when it has one.
pub(crate) fn query_error(error: QueryError) -> ApiError {
    let kind = match &error {
        QueryError::Syntax { .. } | QueryError::Malformed { .. } => "parsing_exception",
        QueryError::Unsupported { .. } => "illegal_argument_exception",
        _ => "query_shard_exception",
    };
    let position = error.span().map(|span| ErrorPosition {
        start: span.start,
        end: span.end,
    });
    let api_error = ApiError::new(StatusCode::BAD_REQUEST, kind, error.to_string());
    match position {
        Some(position) => api_error.at(position),
        None => api_error,
    }
}

fn store_error(error: LogStoreError) -> ApiError {
    match error {
        LogStoreError::InvalidSearch(reason) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            reason,
        ),
        other => ApiError::internal(other),
    }
}

/// A cursor (`search_after` of the native API): `<@timestamp ms>.<_tie>`, opaque to callers
/// and exact in JavaScript (the tie-break does not fit a double).
pub(crate) fn cursor(key: SortKey) -> String {
    format!("{}.{}", key.timestamp_ms, key.tiebreak)
}

/// Reads a [`cursor`].
pub(crate) fn parse_cursor(text: &str) -> Result<SortKey, ApiError> {
    let parsed = text.split_once('.').and_then(|(time, tie)| {
        Some(SortKey {
            timestamp_ms: time.parse().ok()?,
            tiebreak: tie.parse().ok()?,
        })
    });
    parsed.ok_or_else(|| {
        ApiError::invalid(format!(
            "`{text}` is not a search cursor: pass a previous answer's `next` or a hit's `cursor`"
        ))
    })
}

/// Now, in epoch milliseconds: what date math (`now-15m`) is relative to.
pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Epoch milliseconds as RFC 3339 with milliseconds (`2026-11-23T10:00:00.000Z`).
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}
