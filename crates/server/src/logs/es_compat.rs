//! The Elasticsearch endpoints that shippers and clients call at start-up: product and version
//! discovery, license, nodes, cluster health (also `_cat/health`, rsyslog's check before it
//! resumes), `_refresh` (the JavaScript client's bulk helper calls it), and the template / ILM /
//! pipeline / data stream calls. Uploaded objects are stored (per tenant) and shown back; Caravan
//! does not act on them — the schema registry defines mappings and tenants define retention —
//! and says so once in the log for each kind, instead of silently pretending.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use caravan_store::EsObject;
use caravan_tenancy::{Principal, Requirement, Scope, authorize};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::tenants::now;

use super::filter_path::glob;

/// The Elasticsearch version Caravan answers as.
pub(crate) const ES_VERSION: &str = "8.11.0";

/// Kinds of uploaded objects already reported as not acted on.
#[derive(Default)]
pub(crate) struct Unapplied(Mutex<HashSet<&'static str>>);

impl Unapplied {
    fn note(&self, kind: &'static str, why: &str) {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.insert(kind) {
            tracing::warn!(
                kind,
                "stored an uploaded {kind}; caravan does not act on it: {why}"
            );
        }
    }
}

/// The start-up and management endpoints.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(info).head(info_head))
        .route("/_license", get(license))
        .route("/_xpack", get(xpack))
        .route("/_nodes", get(nodes))
        .route("/_nodes/{*rest}", get(nodes))
        .route("/_cluster/health", get(cluster_health))
        .route("/_cluster/health/{index}", get(cluster_health))
        .route("/_cat/health", get(cat_health))
        .route("/_refresh", get(refresh).post(refresh))
        .route("/{index}/_refresh", get(refresh).post(refresh))
        .merge(objects("/_index_template", Kind::IndexTemplate))
        .merge(objects("/_component_template", Kind::ComponentTemplate))
        .merge(objects("/_template", Kind::LegacyTemplate))
        .merge(objects("/_ilm/policy", Kind::IlmPolicy))
        .merge(objects("/_ingest/pipeline", Kind::IngestPipeline))
        .merge(objects("/_data_stream", Kind::DataStream))
}

async fn info(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(json!({
        "name": "caravan",
        "cluster_name": "caravan",
        "cluster_uuid": state.cluster_uuid(),
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "build_type": "caravan",
            "build_hash": env!("CARGO_PKG_VERSION"),
            "build_date": "2026-01-01T00:00:00.000Z",
            "build_snapshot": false,
            "lucene_version": "9.8.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    }))
}

async fn info_head(_caller: Caller) -> StatusCode {
    StatusCode::OK
}

async fn license(_caller: Caller) -> Json<Value> {
    Json(json!({"license": license_body()}))
}

fn license_body() -> Value {
    json!({
        "status": "active",
        "uid": "caravan-basic",
        "type": "basic",
        "issue_date": "2026-01-01T00:00:00.000Z",
        "issue_date_in_millis": 1_767_225_600_000_u64,
        "max_nodes": 1000,
        "issued_to": "caravan",
        "issuer": "caravan",
        "start_date_in_millis": -1
    })
}

async fn xpack(_caller: Caller) -> Json<Value> {
    let disabled = json!({"available": false, "enabled": false});
    Json(json!({
        "build": {"hash": env!("CARGO_PKG_VERSION"), "date": "2026-01-01T00:00:00.000Z"},
        "license": {"uid": "caravan-basic", "type": "basic", "mode": "basic", "status": "active"},
        "features": {
            "ilm": {"available": true, "enabled": true},
            "security": {"available": true, "enabled": true},
            "monitoring": disabled,
            "ml": disabled,
            "watcher": disabled
        },
        "tagline": "You know, for X"
    }))
}

async fn nodes(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let address = state.config().listen.to_string();
    Json(json!({
        "_nodes": {"total": 1, "successful": 1, "failed": 0},
        "cluster_name": "caravan",
        "nodes": {
            "caravan-node-0": {
                "name": "caravan",
                "version": ES_VERSION,
                "roles": ["data", "ingest", "master"],
                "ip": address,
                "host": address,
                "http": {"publish_address": address}
            }
        }
    }))
}

async fn cluster_health(_caller: Caller) -> Json<Value> {
    Json(json!({
        "cluster_name": "caravan",
        "status": "green",
        "timed_out": false,
        "number_of_nodes": 1,
        "number_of_data_nodes": 1,
        "active_primary_shards": 0,
        "active_shards": 0,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": 0,
        "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0,
        "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0,
        "active_shards_percent_as_number": 100.0
    }))
}

/// Query parameters of the `_cat` APIs that change the answer; others (`h`, `s`, `ts`...) are
/// accepted and ignored.
#[derive(Debug, Default, Deserialize)]
struct CatParams {
    /// `json` for an array of objects; text otherwise.
    format: Option<String>,
    /// Present: a header line before the text.
    v: Option<String>,
}

const CAT_HEALTH_COLUMNS: [&str; 14] = [
    "epoch",
    "timestamp",
    "cluster",
    "status",
    "node.total",
    "node.data",
    "shards",
    "pri",
    "relo",
    "init",
    "unassign",
    "pending_tasks",
    "max_task_wait_time",
    "active_shards_percent",
];

/// `_cat/health`: a text table (with a header line under `v`), or JSON under `format=json`.
async fn cat_health(_caller: Caller, ApiQuery(params): ApiQuery<CatParams>) -> Response {
    let at = OffsetDateTime::now_utc();
    let time = format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second());
    let row: Vec<String> = [at.unix_timestamp().to_string(), time]
        .into_iter()
        .chain(
            [
                "caravan", "green", "1", "1", "0", "0", "0", "0", "0", "0", "-", "100.0%",
            ]
            .map(str::to_owned),
        )
        .collect();
    if params.format.as_deref() == Some("json") {
        let object: Map<String, Value> = CAT_HEALTH_COLUMNS
            .iter()
            .map(|column| (*column).to_owned())
            .zip(row.into_iter().map(Value::String))
            .collect();
        return Json(json!([object])).into_response();
    }
    let mut text = String::new();
    if params.v.is_some() {
        text = CAT_HEALTH_COLUMNS.join(" ") + "\n";
    }
    text.push_str(&row.join(" "));
    text.push('\n');
    ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], text).into_response()
}

/// `_refresh`, of any index: makes every acknowledged document searchable, as `?refresh=true`
/// does on ingestion (the log store refreshes as a whole). Needs `logs:write`, like that flag.
async fn refresh(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &principal,
        Requirement::Scope(Scope::LogsWrite),
        principal.tenant(),
    )
    .map_err(|d| ApiError::denied(d, "refresh"))?;
    state
        .logstore()
        .refresh()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({"_shards": {"total": 1, "successful": 1, "failed": 0}}),
    ))
}

/// The kinds of objects clients upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    IndexTemplate,
    ComponentTemplate,
    LegacyTemplate,
    IlmPolicy,
    IngestPipeline,
    DataStream,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::IndexTemplate => "index_template",
            Kind::ComponentTemplate => "component_template",
            Kind::LegacyTemplate => "template",
            Kind::IlmPolicy => "ilm_policy",
            Kind::IngestPipeline => "ingest_pipeline",
            Kind::DataStream => "data_stream",
        }
    }

    fn why_not_applied(self) -> &'static str {
        match self {
            Kind::IndexTemplate | Kind::ComponentTemplate | Kind::LegacyTemplate => {
                "mappings come from the schema registry (caravan schema push)"
            }
            Kind::IlmPolicy => "retention is the tenant's retention_days (caravan tenant update)",
            Kind::IngestPipeline => "documents are normalised against the schema instead",
            Kind::DataStream => "documents are routed to tenants by index name",
        }
    }

    /// The answer to a GET of `objects`.
    fn listing(self, objects: &[EsObject]) -> Value {
        let body = |object: &EsObject| -> Value {
            serde_json::from_str(&object.body_json).unwrap_or(Value::Null)
        };
        match self {
            Kind::IndexTemplate | Kind::ComponentTemplate => {
                let key = format!("{}s", self.as_str());
                let inner = self.as_str();
                json!({ key: objects.iter().map(|o| json!({"name": o.name, inner: body(o)})).collect::<Vec<_>>() })
            }
            Kind::DataStream => json!({
                "data_streams": objects.iter().map(|o| json!({
                    "name": o.name,
                    "timestamp_field": {"name": "@timestamp"},
                    "indices": [],
                    "generation": 1,
                    "status": "GREEN",
                    "template": ""
                })).collect::<Vec<_>>()
            }),
            Kind::IlmPolicy => Value::Object(
                objects
                    .iter()
                    .map(|o| {
                        let policy = body(o).get("policy").cloned().unwrap_or_else(|| body(o));
                        (o.name.clone(), json!({"version": 1, "modified_date": o.updated_at.unix_timestamp() * 1000, "policy": policy}))
                    })
                    .collect::<Map<_, _>>(),
            ),
            Kind::LegacyTemplate | Kind::IngestPipeline => Value::Object(
                objects.iter().map(|o| (o.name.clone(), body(o))).collect::<Map<_, _>>(),
            ),
        }
    }

    fn missing(self, name: &str) -> ApiError {
        let kind = match self {
            Kind::DataStream => "index_not_found_exception",
            _ => "resource_not_found_exception",
        };
        ApiError::new(
            StatusCode::NOT_FOUND,
            kind,
            format!("{} [{name}] not found", self.as_str().replace('_', " ")),
        )
    }
}

fn objects(prefix: &str, kind: Kind) -> Router<AppState> {
    let list: MethodRouter<AppState> =
        get(move |state: State<AppState>, caller: Caller| async move {
            list_objects(state, caller, kind, None).await
        });
    let one: MethodRouter<AppState> = get(
        move |state: State<AppState>, caller: Caller, Path(name): Path<String>| async move {
            list_objects(state, caller, kind, Some(name)).await
        },
    )
    .head(
        move |state: State<AppState>, caller: Caller, Path(name): Path<String>| async move {
            list_objects(state, caller, kind, Some(name))
                .await
                .map(|_| StatusCode::OK)
        },
    )
    .put(
        move |state: State<AppState>, caller: Caller, Path(name): Path<String>, body: Bytes| async move {
            put_object(state, caller, kind, name, body).await
        },
    )
    .post(
        move |state: State<AppState>, caller: Caller, Path(name): Path<String>, body: Bytes| async move {
            put_object(state, caller, kind, name, body).await
        },
    )
    .delete(
        move |state: State<AppState>, caller: Caller, Path(name): Path<String>| async move {
            delete_object(state, caller, kind, name).await
        },
    );
    Router::new()
        .route(prefix, list)
        .route(&format!("{prefix}/{{name}}"), one)
}

fn owner(principal: &Principal) -> String {
    principal
        .tenant()
        .map(ToString::to_string)
        .unwrap_or_default()
}

async fn list_objects(
    State(state): State<AppState>,
    Caller(principal): Caller,
    kind: Kind,
    name: Option<String>,
) -> Result<Response, ApiError> {
    // An admin's objects are the platform's, a tenant token's its tenant's; an agent has none.
    authorize(&principal, Requirement::TenantData, None)
        .map_err(|d| ApiError::denied(d, kind.as_str()))?;
    let owner = owner(&principal);
    let names: Option<Vec<String>> = name
        .as_deref()
        .map(|n| n.split(',').map(str::to_owned).collect());
    let all = state
        .store(move |store| store.es_objects(kind.as_str(), &owner, None))
        .await?;
    let selected: Vec<EsObject> = match &names {
        None => all,
        Some(names) => all
            .into_iter()
            .filter(|o| names.iter().any(|n| glob(n, &o.name)))
            .collect(),
    };
    if selected.is_empty()
        && let Some(names) = names
    {
        return Err(kind.missing(&names.join(",")));
    }
    Ok(Json(kind.listing(&selected)).into_response())
}

async fn put_object(
    State(state): State<AppState>,
    Caller(principal): Caller,
    kind: Kind,
    name: String,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &principal,
        Requirement::Scope(Scope::LogsWrite),
        principal.tenant(),
    )
    .map_err(|d| ApiError::denied(d, kind.as_str()))?;
    if name.is_empty() || name.len() > 255 || name.contains(['/', '*', ',', ' ']) {
        return Err(ApiError::invalid(format!(
            "invalid {} name [{name}]",
            kind.as_str()
        )));
    }
    let body: Value = if body.is_empty() && kind == Kind::DataStream {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid(format!("{} [{name}]: body is not JSON: {e}", kind.as_str()))
        })?
    };
    if !body.is_object() {
        return Err(ApiError::invalid(format!(
            "{} [{name}]: body must be a JSON object",
            kind.as_str()
        )));
    }
    let object = EsObject {
        kind: kind.as_str().to_owned(),
        owner: owner(&principal),
        name,
        body_json: body.to_string(),
        updated_at: now(),
    };
    state
        .store(move |store| store.put_es_object(&object))
        .await?;
    state
        .unapplied()
        .note(kind.as_str(), kind.why_not_applied());
    Ok(Json(json!({"acknowledged": true})))
}

async fn delete_object(
    State(state): State<AppState>,
    Caller(principal): Caller,
    kind: Kind,
    name: String,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &principal,
        Requirement::Scope(Scope::LogsWrite),
        principal.tenant(),
    )
    .map_err(|d| ApiError::denied(d, kind.as_str()))?;
    let owner = owner(&principal);
    let deleted_name = name.clone();
    let deleted = state
        .store(move |store| store.delete_es_object(kind.as_str(), &owner, &deleted_name))
        .await?;
    if !deleted {
        return Err(kind.missing(&name));
    }
    Ok(Json(json!({"acknowledged": true})))
}
