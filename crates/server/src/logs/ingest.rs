//! Ingestion: `_bulk` and the single-document endpoints, with Elasticsearch's semantics.
//!
//! One request goes through three steps:
//! 1. on a blocking thread, decompress (bounded), parse the NDJSON, route every item to its
//!    tenant, check access and the daily quota, and normalise each document against the
//!    dictionary in force for its tenant. Every item gets a slot in the answer; a bad item fails
//!    alone, with its line number.
//!    Each accepted document is pushed to the log store's batch as it is normalised (validated,
//!    encoded for the write-ahead log and converted for tantivy on this thread);
//! 2. append the batch to the log store in one call, which returns once it is durable
//!    (write-ahead log fsync'd, group-committed across concurrent requests);
//! 3. account for every item, refresh if asked, and answer `{took, errors, items}`.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use caravan_logstore::{AppendBatch, LogDocument, LogStoreError, WriteMode};
use caravan_normalize::{Limits, Normalized};
use caravan_schema::Dictionary;
use caravan_store::ControlStore;
use caravan_tenancy::{Denied, Principal, Requirement, Scope, Tenant, TenantName, authorize};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::bulk::{self, BulkAction, BulkItem};
use super::filter_path::{FilterPath, Selection};
use super::routing::IndexRouter;
use super::usage::ItemOutcome;
use crate::AppState;
use crate::error::ApiError;

/// Query parameters of the ingestion endpoints; others are refused, naming them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestParams {
    /// `true`, `wait_for` or `false`: make the documents searchable before answering.
    pub refresh: Option<String>,
    /// Keep only these parts of the answer.
    pub filter_path: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "timeout")]
    pub _timeout: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "pipeline")]
    pub _pipeline: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "routing")]
    pub _routing: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "wait_for_active_shards")]
    pub _wait_for_active_shards: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "require_alias")]
    pub _require_alias: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "require_data_stream")]
    pub _require_data_stream: Option<String>,
    /// `index` or `create` for single documents.
    pub op_type: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "pretty")]
    pub _pretty: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "error_trace")]
    pub _error_trace: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "human")]
    pub _human: Option<String>,
}

impl IngestParams {
    pub(crate) fn refresh(&self) -> Result<bool, ApiError> {
        match self.refresh.as_deref() {
            None | Some("false") => Ok(false),
            Some("" | "true" | "wait_for") => Ok(true),
            Some(other) => Err(ApiError::invalid(format!(
                "refresh must be true, false or wait_for, got [{other}]"
            ))),
        }
    }
}

/// The answer for one item.
#[derive(Debug, Clone)]
pub(crate) struct ItemResult {
    pub action: BulkAction,
    pub index: String,
    pub id: Option<String>,
    pub status: u16,
    pub error: Option<(&'static str, String)>,
}

impl ItemResult {
    fn failed(
        action: BulkAction,
        index: Option<String>,
        id: Option<String>,
        status: u16,
        kind: &'static str,
        reason: String,
    ) -> Self {
        Self {
            action,
            index: index.unwrap_or_default(),
            id,
            status,
            error: Some((kind, reason)),
        }
    }

    /// The item as the bulk answer shows it.
    pub(crate) fn to_json(&self) -> Value {
        let mut body = json!({
            "_index": self.index,
            "_id": self.id,
            "status": self.status,
        });
        match &self.error {
            None => {
                body["_version"] = json!(1);
                body["result"] = json!("created");
                body["_shards"] = json!({"total": 1, "successful": 1, "failed": 0});
                body["_seq_no"] = json!(0);
                body["_primary_term"] = json!(1);
            }
            Some((kind, reason)) => {
                body["error"] = json!({"type": kind, "reason": reason, "index": self.index});
            }
        }
        json!({ self.action.as_str(): body })
    }
}

/// The reason word under which a rejected item is counted in the tenant's usage.
fn rejection_reason(kind: &str) -> &'static str {
    match kind {
        "document_parsing_exception" => "document_parsing",
        "quota_exceeded_exception" => "quota",
        "version_conflict_engine_exception" => "conflict",
        "es_rejected_execution_exception" => "backpressure",
        "security_exception" => "forbidden",
        "illegal_argument_exception" => "unsupported_action",
        _ => "other",
    }
}

/// An item after the blocking step.
enum Slot {
    Done(ItemResult),
    Accepted {
        result: ItemResult,
        tenant: TenantName,
        bytes: u64,
        normalized: Box<NormalizedSummary>,
        document: usize,
        check_create: bool,
    },
}

/// What accounting needs of a normalised document.
struct NormalizedSummary {
    coerced: bool,
    ignored_values: u64,
    unknown_keys: Vec<String>,
}

/// The outcome of the blocking step.
struct Prepared {
    slots: Vec<Slot>,
    /// The accepted documents, prepared for the log store as they were normalised.
    batch: AppendBatch,
    day: String,
}

/// What one request looks up once rather than for every item: the tenant each index name
/// routes to (unless a document field routes), and each tenant's dictionary.
#[derive(Default)]
struct Lookups {
    tenant_of_index: std::collections::HashMap<String, Option<TenantName>>,
    dictionaries: std::collections::HashMap<TenantName, Option<Arc<Dictionary>>>,
}

/// What to ingest.
pub(crate) enum Input {
    /// A bulk body (NDJSON), with the `{index}` of `/{index}/_bulk`.
    Bulk {
        body: Bytes,
        default_index: Option<String>,
    },
    /// One document (`/{index}/_doc`, `/_create`).
    Single {
        action: BulkAction,
        index: String,
        id: Option<String>,
        source: Bytes,
    },
}

/// Ingests a body (already size-limited by the body limit) for `principal`.
pub(crate) async fn ingest(
    state: &AppState,
    principal: Principal,
    headers: &HeaderMap,
    input: Input,
    refresh: bool,
) -> Result<(u64, Vec<ItemResult>), ApiError> {
    let started = Instant::now();
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let config = state.config().logs.clone();
    let store = state.store_handle();
    let schema_state = state.clone();
    let prepared = tokio::task::spawn_blocking(move || -> Result<Prepared, ApiError> {
        let inflate = |body: Bytes| -> Result<Bytes, ApiError> {
            if gzip {
                decompress(&body, config.bulk_decompressed_bytes_max).map(Bytes::from)
            } else {
                Ok(body)
            }
        };
        let limits = Limits {
            document_bytes_max: config.document_bytes_max,
            depth_max: config.depth_max,
            keys_max: config.keys_max,
        };
        let router = schema_state.index_router().clone();
        let context = Context {
            store: store.as_ref(),
            state: &schema_state,
            principal: &principal,
            tenants: store.tenants()?,
            router,
            routing_field: config.routing_field.clone(),
            auto_create_tenants: config.auto_create_tenants,
            limits,
            now: OffsetDateTime::now_utc(),
            ids: IdGenerator::new().map_err(ApiError::internal)?,
        };
        Ok(match input {
            Input::Bulk {
                body,
                default_index,
            } => prepare(&context, &inflate(body)?, default_index.as_deref()),
            Input::Single {
                action,
                index,
                id,
                source,
            } => {
                let source = inflate(source)?;
                // A single document may be pretty-printed over several lines.
                let item = BulkItem {
                    action,
                    index: Some(index),
                    id,
                    source: Some(source.trim_ascii()),
                    // Errors name "line 1", the source's first line.
                    line: 0,
                };
                prepare_items(&context, vec![Ok(item)])
            }
        })
    })
    .await
    .map_err(ApiError::internal)??;

    let Prepared {
        mut slots,
        mut batch,
        day,
    } = prepared;
    let logstore = state.logstore();

    // `create` with an explicit id: refuse ids that exist already.
    for slot in &mut slots {
        if let Slot::Accepted {
            result,
            tenant,
            check_create: true,
            ..
        } = slot
            && let Some(id) = &result.id
            && logstore
                .id_exists(tenant.as_str(), id)
                .await
                .map_err(ApiError::internal)?
        {
            *slot = Slot::Done(ItemResult::failed(
                BulkAction::Create,
                Some(result.index.clone()),
                Some(id.clone()),
                409,
                "version_conflict_engine_exception",
                format!("[{id}]: version conflict, document already exists"),
            ));
        }
    }
    let mut keep = vec![false; batch.len()];
    for slot in &slots {
        if let Slot::Accepted { document, .. } = slot {
            keep[*document] = true;
        }
    }
    if keep.contains(&false) {
        batch.retain(|index| keep[index]);
    }
    let append_error = if batch.is_empty() {
        None
    } else {
        logstore.append_batch(batch).await.err()
    };

    let usage = state.usage();
    let mut results = Vec::with_capacity(slots.len());
    for slot in slots {
        match slot {
            Slot::Done(result) => {
                results.push(result);
            }
            Slot::Accepted {
                mut result,
                tenant,
                bytes,
                normalized,
                ..
            } => {
                if let Some(error) = &append_error {
                    let (status, kind) = match error {
                        LogStoreError::Backpressure(_) => (429, "es_rejected_execution_exception"),
                        LogStoreError::TooManyPartitions { .. } => {
                            (400, "illegal_argument_exception")
                        }
                        _ => (500, "store_exception"),
                    };
                    result.status = status;
                    result.error = Some((kind, error.to_string()));
                    usage.record(
                        &tenant,
                        &day,
                        &ItemOutcome::Rejected {
                            bytes,
                            reason: rejection_reason(kind),
                        },
                    );
                } else {
                    usage.record(
                        &tenant,
                        &day,
                        &ItemOutcome::Accepted {
                            bytes,
                            coerced: normalized.coerced,
                            ignored_values: normalized.ignored_values,
                            unknown_keys: &normalized.unknown_keys,
                        },
                    );
                }
                results.push(result);
            }
        }
    }
    if let Some(error) = &append_error {
        tracing::warn!(%error, "bulk append failed");
    }
    if refresh && append_error.is_none() {
        logstore.refresh().await.map_err(ApiError::internal)?;
    }
    Ok((started.elapsed().as_millis() as u64, results))
}

/// The JSON answer of `_bulk`, filtered by `filter_path` when given. Only what the filter
/// keeps is built: with `filter_path=errors`, the items are never made into JSON.
pub(crate) fn bulk_answer(took_ms: u64, results: &[ItemResult], filter: Option<&str>) -> Value {
    let errors = results.iter().any(|r| r.error.is_some());
    let Some(filter) = filter.and_then(FilterPath::parse) else {
        return json!({
            "took": took_ms,
            "errors": errors,
            "items": results.iter().map(ItemResult::to_json).collect::<Vec<_>>(),
        });
    };
    let mut answer = serde_json::Map::new();
    for (key, value) in [("took", json!(took_ms)), ("errors", json!(errors))] {
        if let Some(kept) = filter.select(key).filter(&value) {
            answer.insert(key.to_owned(), kept);
        }
    }
    let items = match filter.select("items") {
        Selection::Nothing => None,
        Selection::Whole => Some(results.iter().map(ItemResult::to_json).collect()),
        selection => {
            let kept: Vec<Value> = results
                .iter()
                .filter_map(|r| selection.filter(&r.to_json()))
                .collect();
            (!kept.is_empty()).then_some(kept)
        }
    };
    if let Some(items) = items {
        answer.insert("items".to_owned(), Value::Array(items));
    }
    Value::Object(answer)
}

struct Context<'a> {
    store: &'a dyn ControlStore,
    state: &'a AppState,
    principal: &'a Principal,
    tenants: Vec<Tenant>,
    router: IndexRouter,
    routing_field: Option<String>,
    auto_create_tenants: bool,
    limits: Limits,
    now: OffsetDateTime,
    ids: IdGenerator,
}

/// With `logs.auto_create_tenants`, an admin writing to an index no tenant matches creates the
/// tenant named by the index's prefix (up to the first `-`), with default settings.
fn auto_create(context: &Context<'_>, index: &str) -> Option<TenantName> {
    if !context.auto_create_tenants || !context.principal.is_admin() {
        return None;
    }
    let name = TenantName::new(index.split('-').next()?).ok()?;
    let request = caravan_tenancy::TenantCreate {
        name: name.clone(),
        display_name: None,
        retention_days: None,
        daily_quota_bytes: None,
    };
    let tenant = Tenant::create(request, context.now).ok()?;
    match context.store.create_tenant(&tenant) {
        Ok(()) => {
            tracing::info!(tenant = %name, index, "created a tenant for an unknown index (logs.auto_create_tenants)");
            Some(name)
        }
        Err(caravan_store::StoreError::AlreadyExists { .. }) => Some(name),
        Err(error) => {
            tracing::warn!(?error, index, "cannot auto-create a tenant");
            None
        }
    }
}

fn prepare(context: &Context<'_>, body: &[u8], default_index: Option<&str>) -> Prepared {
    prepare_items(context, bulk::parse(body, default_index))
}

fn prepare_items<'b>(
    context: &Context<'_>,
    items: Vec<Result<BulkItem<'b>, bulk::BulkLineError>>,
) -> Prepared {
    let day = day_of(context.now);
    let ingest_ms = (context.now.unix_timestamp_nanos() / 1_000_000) as i64;
    let names: Vec<String> = context.tenants.iter().map(|t| t.name.to_string()).collect();
    let mut pending_bytes: std::collections::HashMap<TenantName, u64> = Default::default();
    let mut batch_ids: std::collections::HashSet<(TenantName, String)> = Default::default();
    let mut lookups = Lookups::default();
    let mut slots = Vec::with_capacity(items.len());
    let mut batch = context.state.logstore().batch();
    batch.reserve(items.len());
    for parsed in items {
        let item = match parsed {
            Ok(item) => item,
            Err(error) => {
                slots.push(Slot::Done(ItemResult::failed(
                    error.action,
                    error.index,
                    error.id,
                    400,
                    "x_content_parse_exception",
                    error.reason,
                )));
                continue;
            }
        };
        let slot = prepare_item(
            context,
            &item,
            &names,
            ingest_ms,
            &day,
            &mut pending_bytes,
            &mut batch_ids,
            &mut lookups,
            &mut batch,
        );
        slots.push(slot);
    }
    Prepared { slots, batch, day }
}

#[allow(clippy::too_many_arguments)]
fn prepare_item(
    context: &Context<'_>,
    item: &BulkItem<'_>,
    tenant_names: &[String],
    ingest_ms: i64,
    day: &str,
    pending_bytes: &mut std::collections::HashMap<TenantName, u64>,
    batch_ids: &mut std::collections::HashSet<(TenantName, String)>,
    lookups: &mut Lookups,
    batch: &mut AppendBatch,
) -> Slot {
    let line = item.line;
    let fail = |status, kind, reason: String| {
        Slot::Done(ItemResult::failed(
            item.action,
            item.index.clone(),
            item.id.clone(),
            status,
            kind,
            reason,
        ))
    };
    if matches!(item.action, BulkAction::Delete | BulkAction::Update) {
        return fail(
            400,
            "illegal_argument_exception",
            format!(
                "line {line}: [{}] is not supported: logs are append-only; use index or create",
                item.action.as_str()
            ),
        );
    }
    let Some(index) = item.index.as_deref() else {
        return fail(
            400,
            "action_request_validation_exception",
            format!("line {line}: index is missing"),
        );
    };
    let Some(source) = item.source else {
        return fail(
            400,
            "action_request_validation_exception",
            format!("line {line}: the source line is missing"),
        );
    };
    let bytes = source.len() as u64;
    let routed = if context.routing_field.is_some() {
        route(context, index, source, tenant_names).or_else(|| auto_create(context, index))
    } else if let Some(tenant) = lookups.tenant_of_index.get(index) {
        tenant.clone()
    } else {
        let tenant =
            route(context, index, source, tenant_names).or_else(|| auto_create(context, index));
        lookups
            .tenant_of_index
            .insert(index.to_owned(), tenant.clone());
        tenant
    };
    let Some(tenant) = routed else {
        return fail(
            404,
            "index_not_found_exception",
            format!("no such index [{index}]: no tenant matches it"),
        );
    };
    let record_rejection = |reason| {
        context
            .state
            .usage()
            .record(&tenant, day, &ItemOutcome::Rejected { bytes, reason });
    };
    match authorize(
        context.principal,
        Requirement::Scope(Scope::LogsWrite),
        Some(&tenant),
    ) {
        Ok(()) => {}
        Err(Denied::NotFound) => {
            return fail(
                404,
                "index_not_found_exception",
                format!("no such index [{index}]"),
            );
        }
        Err(denied @ Denied::Forbidden(_)) => {
            record_rejection("forbidden");
            return fail(
                403,
                "security_exception",
                format!("action [indices:data/write/bulk] on [{index}]: {denied}"),
            );
        }
    }
    let quota = context
        .tenants
        .iter()
        .find(|t| t.name == tenant)
        .and_then(|t| t.daily_quota_bytes);
    let pending = pending_bytes.entry(tenant.clone()).or_default();
    if let Some(quota) = quota {
        let used = context.state.usage().bytes_accepted(&tenant, day) + *pending;
        if used + bytes > quota {
            record_rejection("quota");
            return fail(
                429,
                "quota_exceeded_exception",
                format!(
                    "tenant [{tenant}] reached its daily log quota of {quota} bytes ({used} bytes accepted today); the document ({bytes} bytes) was not stored"
                ),
            );
        }
    }
    if !lookups.dictionaries.contains_key(&tenant) {
        match context
            .state
            .schema()
            .dictionary_for(context.store, &tenant)
        {
            Ok(dictionary) => lookups.dictionaries.insert(tenant.clone(), dictionary),
            Err(error) => return fail(500, "schema_exception", format!("{error:?}")),
        };
    }
    let dictionary = lookups.dictionaries.get(&tenant).and_then(Option::as_deref);
    let normalized =
        match caravan_normalize::normalize(source, dictionary, ingest_ms, &context.limits) {
            Ok(normalized) => normalized,
            Err(error) => {
                record_rejection("document_parsing");
                return fail(
                    400,
                    "document_parsing_exception",
                    format!("line {}: {error}", line + 1),
                );
            }
        };
    let (id, check_create) = match &item.id {
        Some(id) => {
            if item.action == BulkAction::Create && !batch_ids.insert((tenant.clone(), id.clone()))
            {
                record_rejection("conflict");
                return fail(
                    409,
                    "version_conflict_engine_exception",
                    format!("[{id}]: version conflict, document already exists"),
                );
            }
            (id.clone(), item.action == BulkAction::Create)
        }
        None => (context.ids.next(), false),
    };
    let summary = NormalizedSummary {
        coerced: normalized.coerced_values > 0,
        ignored_values: normalized.ignored.len() as u64,
        unknown_keys: normalized.unknown_keys.clone(),
    };
    let mode = if item.id.is_some() && item.action == BulkAction::Index {
        WriteMode::Upsert
    } else {
        WriteMode::Create
    };
    // Prepared for the store now, while the document is in this thread's cache.
    if let Err(error) = batch.push(to_document(&tenant, &id, normalized, mode)) {
        record_rejection("invalid_document");
        return fail(
            400,
            "illegal_argument_exception",
            format!("line {line}: {error}"),
        );
    }
    *pending += bytes;
    Slot::Accepted {
        result: ItemResult {
            action: item.action,
            index: index.to_owned(),
            id: Some(id),
            status: 201,
            error: None,
        },
        tenant,
        bytes,
        normalized: Box::new(summary),
        document: batch.len() - 1,
        check_create,
    }
}

fn route(
    context: &Context<'_>,
    index: &str,
    source: &[u8],
    tenant_names: &[String],
) -> Option<TenantName> {
    if let Some(field) = &context.routing_field
        && let Ok(document) = serde_json::from_slice::<Value>(source)
    {
        let value = document
            .get(field)
            .or_else(|| field.split('.').try_fold(&document, |v, k| v.get(k)));
        if let Some(Value::String(name)) = value
            && tenant_names.iter().any(|t| t == name)
        {
            return TenantName::new(name.clone()).ok();
        }
    }
    let name = context.router.tenant_for_index(index, tenant_names)?;
    TenantName::new(name).ok()
}

fn to_document(
    tenant: &TenantName,
    id: &str,
    normalized: Normalized,
    mode: WriteMode,
) -> LogDocument {
    let mut source = Vec::with_capacity(512);
    normalized.write_source(&mut source);
    let fields = normalized
        .indexed
        .into_iter()
        .map(|indexed| (indexed.key, indexed.value))
        .collect();
    LogDocument {
        tenant: tenant.to_string(),
        id: id.to_owned(),
        timestamp_ms: normalized.timestamp_ms,
        source,
        fields,
        mode,
    }
}

/// Generated `_id`s: 20 URL-safe characters like Elasticsearch's, from 9 random bytes drawn
/// once per request and a 6-byte sequence within it (one system call per request, not per
/// document; two requests collide with probability 2^-72).
pub(crate) struct IdGenerator {
    prefix: [u8; 9],
    sequence: std::cell::Cell<u64>,
}

impl IdGenerator {
    pub(crate) fn new() -> Result<IdGenerator, getrandom::Error> {
        Ok(IdGenerator {
            prefix: crate::auth::random_bytes::<9>()?,
            sequence: std::cell::Cell::new(0),
        })
    }

    fn next(&self) -> String {
        use base64::Engine;
        let sequence = self.sequence.get();
        self.sequence.set(sequence + 1);
        let mut bytes = [0u8; 15];
        bytes[..9].copy_from_slice(&self.prefix);
        bytes[9..].copy_from_slice(&sequence.to_be_bytes()[2..]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// The UTC day, `YYYY-MM-DD`.
pub(crate) fn day_of(at: OffsetDateTime) -> String {
    let date = at.to_offset(time::UtcOffset::UTC).date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

fn decompress(body: &[u8], limit_bytes: usize) -> Result<Vec<u8>, ApiError> {
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit_bytes as u64 + 1);
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit_bytes));
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ApiError::invalid(format!("the gzip body cannot be decompressed: {e}")))?;
    if out.len() > limit_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the decompressed body is larger than the limit of {limit_bytes} bytes (logs.bulk_decompressed_bytes_max)"
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::IdGenerator;

    #[test]
    fn generated_ids_are_distinct_url_safe_and_twenty_characters() {
        let (first, second) = (IdGenerator::new().unwrap(), IdGenerator::new().unwrap());
        let mut ids: Vec<String> = (0..1_000).map(|_| first.next()).collect();
        ids.extend((0..1_000).map(|_| second.next()));
        assert!(ids.iter().all(|id| {
            id.len() == 20
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 2_000);
    }
}
