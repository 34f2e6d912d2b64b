//! Logs: the Elasticsearch-compatible API (start-up calls, bulk and single-document ingestion)
//! and, in the native API, usage accounting, purge and retention.

mod bulk;
mod es_compat;
mod es_search;
mod filter_path;
mod ingest;
mod native;
mod routing;
mod search;
mod usage;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;

pub(crate) use es_compat::Unapplied;
pub(crate) use ingest::day_of;
pub(crate) use native::router as native_router;
pub(crate) use routing::IndexRouter;
pub(crate) use usage::UsageBook;

use bulk::BulkAction;
use ingest::{IngestParams, Input};

/// The Elasticsearch-compatible routes, served at the root like Elasticsearch's.
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let ingestion = Router::new()
        .route("/_bulk", post(bulk_any).put(bulk_any))
        .route("/{index}/_bulk", post(bulk_index).put(bulk_index))
        .route("/{index}/_doc", post(doc_auto_id))
        .route(
            "/{index}/_doc/{id}",
            get(get_doc).post(doc_with_id).put(doc_with_id),
        )
        .route("/{index}/_create/{id}", post(doc_create).put(doc_create))
        .route("/_search", get(es_search::search).post(es_search::search))
        .route(
            "/{index}/_search",
            get(es_search::search).post(es_search::search),
        )
        .route("/_count", get(es_search::count).post(es_search::count))
        .route(
            "/{index}/_count",
            get(es_search::count).post(es_search::count),
        )
        .layer(DefaultBodyLimit::max(
            state.config().logs.bulk_body_bytes_max,
        ));
    es_compat::router().merge(ingestion)
}

fn body_or_413(body: Result<Bytes, BytesRejection>, state: &AppState) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "request body is larger than the limit of {} bytes (logs.bulk_body_bytes_max)",
                state.config().logs.bulk_body_bytes_max
            ),
        ),
        _ => ApiError::invalid(rejection.body_text()),
    })
}

async fn bulk_any(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(params): ApiQuery<IngestParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    bulk(state, principal, params, headers, body, None).await
}

async fn bulk_index(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(index): Path<String>,
    ApiQuery(params): ApiQuery<IngestParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    bulk(state, principal, params, headers, body, Some(index)).await
}

async fn bulk(
    state: AppState,
    principal: caravan_tenancy::Principal,
    params: IngestParams,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    default_index: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let body = body_or_413(body, &state)?;
    let refresh = params.refresh()?;
    let (took_ms, results) = ingest::ingest(
        &state,
        principal,
        &headers,
        Input::Bulk {
            body,
            default_index,
        },
        refresh,
    )
    .await?;
    Ok(Json(ingest::bulk_answer(
        took_ms,
        &results,
        params.filter_path.as_deref(),
    )))
}

async fn doc_auto_id(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(index): Path<String>,
    ApiQuery(params): ApiQuery<IngestParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    single(
        state,
        principal,
        params,
        headers,
        body,
        index,
        None,
        BulkAction::Index,
    )
    .await
}

async fn doc_with_id(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((index, id)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<IngestParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let action = match params.op_type.as_deref() {
        None | Some("index") => BulkAction::Index,
        Some("create") => BulkAction::Create,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "op_type must be index or create, got [{other}]"
            )));
        }
    };
    single(
        state,
        principal,
        params,
        headers,
        body,
        index,
        Some(id),
        action,
    )
    .await
}

async fn doc_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((index, id)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<IngestParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    single(
        state,
        principal,
        params,
        headers,
        body,
        index,
        Some(id),
        BulkAction::Create,
    )
    .await
}

/// The tenant behind `index` when `principal` may read its logs; 404 otherwise (an index of
/// another tenant does not exist for a tenant token).
async fn readable_tenant(
    state: &AppState,
    principal: &caravan_tenancy::Principal,
    index: &str,
) -> Result<caravan_tenancy::TenantName, ApiError> {
    let tenants = state.store(|store| store.tenants()).await?;
    let names: Vec<String> = tenants.iter().map(|t| t.name.to_string()).collect();
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "index_not_found_exception",
            format!("no such index [{index}]"),
        )
    };
    let tenant = state
        .index_router()
        .tenant_for_index(index.trim_end_matches('*'), &names)
        .and_then(|t| caravan_tenancy::TenantName::new(t).ok())
        .ok_or_else(missing)?;
    caravan_tenancy::authorize(
        principal,
        caravan_tenancy::Requirement::Scope(caravan_tenancy::Scope::LogsRead),
        Some(&tenant),
    )
    .map_err(|denied| match denied {
        caravan_tenancy::Denied::NotFound => missing(),
        forbidden => ApiError::denied(forbidden, index),
    })?;
    Ok(tenant)
}

/// `GET /{index}/_doc/{id}`: one document by id, with its stored (normalised) source.
async fn get_doc(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((index, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = readable_tenant(&state, &principal, &index).await?;
    let found = state
        .logstore()
        .get(tenant.as_str(), &id)
        .await
        .map_err(ApiError::internal)?;
    Ok(match found {
        Some(document) => {
            let source: Value = serde_json::from_slice(&document.source).unwrap_or(Value::Null);
            Json(json!({
                "_index": index, "_id": id, "_version": 1, "_seq_no": 0, "_primary_term": 1,
                "found": true, "_source": source
            }))
            .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"_index": index, "_id": id, "found": false})),
        )
            .into_response(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn single(
    state: AppState,
    principal: caravan_tenancy::Principal,
    params: IngestParams,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    index: String,
    id: Option<String>,
    action: BulkAction,
) -> Result<Response, ApiError> {
    let body = body_or_413(body, &state)?;
    let refresh = params.refresh()?;
    let (_, mut results) = ingest::ingest(
        &state,
        principal,
        &headers,
        Input::Single {
            action,
            index,
            id,
            source: body,
        },
        refresh,
    )
    .await?;
    let result = results
        .pop()
        .ok_or_else(|| ApiError::internal("a single-document request produced no result"))?;
    let status = StatusCode::from_u16(result.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match &result.error {
        None => json!({
            "_index": result.index,
            "_id": result.id,
            "_version": 1,
            "result": "created",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": 0,
            "_primary_term": 1
        }),
        Some((kind, reason)) => json!({
            "error": {"type": kind, "reason": reason, "index": result.index},
            "status": result.status
        }),
    };
    Ok((status, Json(body)).into_response())
}

/// How often usage counters are written to the store.
const USAGE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Days of usage counters loaded at start (older ones stay in the store).
const USAGE_DAYS_LOADED: i64 = 400;

/// Opens the log store under `<data_dir>/logs`, replaying its write-ahead log.
pub(crate) async fn open_logstore(
    config: &crate::ServerConfig,
) -> Result<caravan_logstore::LogStore, crate::ServerError> {
    let mut logstore_config = caravan_logstore::LogStoreConfig::new(config.data_dir.join("logs"));
    logstore_config.wal_bytes_max = config.logs.wal_bytes_max;
    logstore_config.indexing_memory_budget_bytes = config.logs.indexing_memory_bytes;
    Ok(caravan_logstore::LogStore::open(logstore_config).await?)
}

/// Loads the recent usage counters, so that quotas hold across restarts.
pub(crate) async fn load_usage(state: &AppState) -> Result<(), crate::ServerError> {
    let from_day =
        day_of(time::OffsetDateTime::now_utc() - time::Duration::days(USAGE_DAYS_LOADED));
    let loader = state.clone();
    state
        .store(move |store| loader.usage().load(store, &from_day))
        .await
        .map_err(|e| crate::ServerError::Serve(std::io::Error::other(format!("{e:?}"))))
}

/// Starts the usage flusher and the retention enforcer; both stop on `stopping`.
pub(crate) fn spawn_background_tasks(
    state: &AppState,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let flusher = {
        let state = state.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(USAGE_FLUSH_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => flush_usage(&state).await,
                    () = crate::stopped(stopping.clone()) => break,
                }
            }
        })
    };
    let retention = {
        let state = state.clone();
        let stopping = stopping;
        let interval =
            std::time::Duration::from_secs(state.config().logs.retention_interval_seconds.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => enforce_retention(&state).await,
                    () = crate::stopped(stopping.clone()) => break,
                }
            }
        })
    };
    vec![flusher, retention]
}

/// Writes changed usage counters to the store.
pub(crate) async fn flush_usage(state: &AppState) {
    let Some(rows) = state.usage().take_dirty_rows() else {
        return;
    };
    if let Err(error) = state.store(move |store| store.save_log_usage(&rows)).await {
        state.usage().mark_dirty();
        tracing::warn!(?error, "cannot save log usage counters; will retry");
    }
}

/// Drops the partitions older than each tenant's retention, and logs what it dropped.
pub(crate) async fn enforce_retention(state: &AppState) {
    let tenants = match state.store(|store| store.tenants()).await {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::warn!(?error, "retention: cannot list tenants");
            return;
        }
    };
    let retention: std::collections::HashMap<String, u32> = tenants
        .into_iter()
        .map(|t| (t.name.to_string(), t.retention_days))
        .collect();
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    match state
        .logstore()
        .enforce_retention(now_ms, move |tenant| retention.get(tenant).copied())
        .await
    {
        Ok(dropped) => {
            for partition in dropped {
                tracing::info!(tenant = %partition.tenant, day = %partition.day, documents = partition.documents, disk_bytes = partition.disk_bytes, "retention: dropped a partition past the tenant's retention");
            }
        }
        Err(error) => tracing::warn!(%error, "retention failed"),
    }
}

/// Flushes the usage counters and commits the log store.
pub(crate) async fn shut_down(state: &AppState) {
    flush_usage(state).await;
    if let Err(error) = state.logstore().shutdown().await {
        tracing::error!(%error, "log store shutdown failed");
    }
}

/// Refuses to delete a tenant that still has logs, unless forced.
pub(crate) async fn check_tenant_deletion(
    state: &AppState,
    tenant: &caravan_tenancy::TenantName,
    force: bool,
) -> Result<(), ApiError> {
    if force {
        return Ok(());
    }
    let partitions = state
        .logstore()
        .partitions(Some(tenant.as_str()))
        .await
        .map_err(ApiError::internal)?;
    if partitions.is_empty() {
        return Ok(());
    }
    let documents: u64 = partitions.iter().map(|p| p.documents).sum();
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "in_use",
        format!(
            "tenant {:?} is in use: it owns {} log partitions ({documents} documents); purge them first or force",
            tenant.as_str(),
            partitions.len()
        ),
    ))
}

/// Drops a deleted tenant's logs and usage counters.
pub(crate) async fn forget_tenant(
    state: &AppState,
    tenant: &caravan_tenancy::TenantName,
) -> Result<(), ApiError> {
    let dropped = state
        .logstore()
        .drop_tenant(tenant.as_str())
        .await
        .map_err(ApiError::internal)?;
    state.usage().forget(tenant);
    if !dropped.is_empty() {
        tracing::info!(tenant = %tenant, partitions = dropped.len(), "dropped the logs of a deleted tenant");
    }
    Ok(())
}
