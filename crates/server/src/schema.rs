//! The schema registry: `/api/v1/schema` (the common schema, pushed by admins) and
//! `/api/v1/tenants/{name}/schema` (a tenant's extension with tenant-only keys).
//!
//! A push is compiled and validated, compared with the version in use, and stored as the next
//! version. It is refused, with every conflict listed, when an existing key would change type (a
//! mapping conflict), when an extension would redefine a common key or alias, or when a new
//! common schema would collide with a tenant's extension. Pushes are serialised so that these
//! checks always see the state they are applied to.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use caravan_schema::{CompileOptions, Dictionary, Format, RenderOptions, SchemaDiff};
use caravan_store::{ControlStore, SchemaFile, SchemaRecord, SchemaScope, SchemaVersionInfo};
use caravan_tenancy::{Principal, Requirement, Scope, TenantName, authorize};
use serde::Deserialize;
use tokio::sync::Mutex;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use caravan_api::{
    SchemaFileBody, SchemaPush, SchemaPushed, SchemaVersionSummary, SchemaVersionView,
};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::tenants::now;

/// The most files one schema version may have.
pub const SCHEMA_FILES_MAX: usize = 100;

/// The registry's own state: the lock that serialises pushes, and the dictionaries in force.
#[derive(Default)]
pub(crate) struct SchemaState {
    push_lock: Mutex<()>,
    dictionaries: std::sync::RwLock<HashMap<TenantName, Option<Arc<Dictionary>>>>,
}

/// The schema router.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_common_schema, push_common_schema))
        .routes(routes!(common_schema_versions))
        .routes(routes!(get_tenant_schema, push_tenant_schema))
        .routes(routes!(tenant_schema_versions))
        .routes(routes!(tenant_dictionary))
        .routes(routes!(tenant_template))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct VersionParams {
    /// A version number; default the latest.
    version: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct TemplateParams {
    /// `es-template` (composable, default) or `es-legacy-template`.
    format: Option<String>,
    /// An ILM policy name to set as `index.lifecycle.name`.
    lifecycle_policy: Option<String>,
}

/// Shows the common schema (any token).
#[utoipa::path(get, path = "/schema", tag = "schema", params(VersionParams),
    responses((status = 200, body = SchemaVersionView), (status = 404, body = ErrorBody)))]
async fn get_common_schema(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(params): ApiQuery<VersionParams>,
) -> Result<Json<SchemaVersionView>, ApiError> {
    let record = load(&state, SchemaScope::Common, params.version).await?;
    Ok(Json(view(record)?))
}

/// Lists the common schema's versions (any token).
#[utoipa::path(get, path = "/schema/versions", tag = "schema",
    responses((status = 200, body = Vec<SchemaVersionSummary>)))]
async fn common_schema_versions(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<SchemaVersionSummary>>, ApiError> {
    versions(&state, SchemaScope::Common).await
}

/// Pushes a new version of the common schema (admin).
#[utoipa::path(post, path = "/schema", tag = "schema", request_body = SchemaPush,
    responses((status = 201, body = SchemaPushed),
        (status = 400, description = "The schema does not compile or breaks a rule", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "Type changes of existing keys, or collisions with tenant extensions", body = ErrorBody)))]
async fn push_common_schema(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(request): ApiJson<SchemaPush>,
) -> Result<(StatusCode, Json<SchemaPushed>), ApiError> {
    authorize(&principal, Requirement::Admin, None).map_err(|d| ApiError::denied(d, "schema"))?;
    push(&state, &principal, SchemaScope::Common, request).await
}

/// Shows a tenant's extension schema.
#[utoipa::path(get, path = "/tenants/{name}/schema", tag = "schema",
    params(("name" = String, Path, description = "Tenant name"), VersionParams),
    responses((status = 200, body = SchemaVersionView), (status = 404, body = ErrorBody)))]
async fn get_tenant_schema(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
    ApiQuery(params): ApiQuery<VersionParams>,
) -> Result<Json<SchemaVersionView>, ApiError> {
    visible(&principal, &name)?;
    let record = load(&state, SchemaScope::Tenant(name), params.version).await?;
    Ok(Json(view(record)?))
}

/// Lists a tenant's extension schema versions.
#[utoipa::path(get, path = "/tenants/{name}/schema/versions", tag = "schema",
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 200, body = Vec<SchemaVersionSummary>), (status = 404, body = ErrorBody)))]
async fn tenant_schema_versions(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
) -> Result<Json<Vec<SchemaVersionSummary>>, ApiError> {
    visible(&principal, &name)?;
    versions(&state, SchemaScope::Tenant(name)).await
}

/// Pushes a new version of a tenant's extension schema (admin, or the tenant's token with
/// `logs:write`). It may add keys; it may never redefine a common key or alias.
#[utoipa::path(post, path = "/tenants/{name}/schema", tag = "schema", request_body = SchemaPush,
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 201, body = SchemaPushed), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn push_tenant_schema(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
    ApiJson(request): ApiJson<SchemaPush>,
) -> Result<(StatusCode, Json<SchemaPushed>), ApiError> {
    authorize(
        &principal,
        Requirement::Manage(Scope::LogsWrite),
        Some(&name),
    )
    .map_err(|d| ApiError::denied(d, format!("tenant {name:?}")))?;
    push(&state, &principal, SchemaScope::Tenant(name), request).await
}

/// The dictionary in force for a tenant: the common schema plus its extension.
#[utoipa::path(get, path = "/tenants/{name}/schema/dictionary", tag = "schema",
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 200, description = "The field dictionary"), (status = 404, body = ErrorBody)))]
async fn tenant_dictionary(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
) -> Result<Json<Dictionary>, ApiError> {
    visible(&principal, &name)?;
    let (dictionary, _) = effective_dictionary(&state, &name).await?;
    Ok(Json(dictionary))
}

/// An Elasticsearch index template for a tenant's indexes (`<tenant>-*`), from the dictionary in
/// force for it, with the tenant's retention recorded.
#[utoipa::path(get, path = "/tenants/{name}/schema/template", tag = "schema",
    params(("name" = String, Path, description = "Tenant name"), TemplateParams),
    responses((status = 200, description = "The index template"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn tenant_template(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<TenantName>,
    ApiQuery(params): ApiQuery<TemplateParams>,
) -> Result<impl IntoResponse, ApiError> {
    visible(&principal, &name)?;
    let format = match params.format.as_deref().unwrap_or("es-template") {
        "es-template" => Format::EsTemplate,
        "es-legacy-template" => Format::EsLegacyTemplate,
        other => {
            return Err(ApiError::invalid(format!(
                "unknown template format {other:?}: expected es-template or es-legacy-template"
            )));
        }
    };
    let lookup = name.clone();
    let tenant = state
        .store(move |store| store.tenant(&lookup))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant {name:?} not found")))?;
    let (dictionary, versions) = effective_dictionary(&state, &name).await?;
    let options = RenderOptions {
        format,
        index_patterns: vec![format!("{name}-*")],
        lifecycle_policy: params.lifecycle_policy,
        retention_days: Some(tenant.retention_days),
        schema_version: Some(versions),
        ..RenderOptions::default()
    };
    let template = caravan_schema::render(&dictionary, &options)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], template))
}

fn visible(principal: &Principal, tenant: &TenantName) -> Result<(), ApiError> {
    authorize(principal, Requirement::Visible, Some(tenant))
        .map_err(|d| ApiError::denied(d, format!("tenant {tenant:?}")))
}

fn scope_name(scope: &SchemaScope) -> String {
    match scope {
        SchemaScope::Common => "the common schema".to_owned(),
        SchemaScope::Tenant(tenant) => format!("the extension schema of tenant {tenant}"),
    }
}

async fn load(
    state: &AppState,
    scope: SchemaScope,
    version: Option<u64>,
) -> Result<SchemaRecord, ApiError> {
    let what = scope_name(&scope);
    let record = state
        .store(move |store| store.schema(&scope, version))
        .await?;
    record.ok_or_else(|| match version {
        Some(version) => ApiError::not_found(format!("{what} has no version {version}")),
        None => ApiError::not_found(format!(
            "{what} has not been pushed yet: push one with `caravan schema push`"
        )),
    })
}

async fn versions(
    state: &AppState,
    scope: SchemaScope,
) -> Result<Json<Vec<SchemaVersionSummary>>, ApiError> {
    let versions = state
        .store(move |store| store.schema_versions(&scope))
        .await?;
    Ok(Json(versions.into_iter().map(summary).collect()))
}

fn summary(info: SchemaVersionInfo) -> SchemaVersionSummary {
    SchemaVersionSummary {
        version: info.version,
        root_message: info.root_message,
        created_at: info.created_at,
        created_by: info.created_by.to_string(),
    }
}

fn view(record: SchemaRecord) -> Result<SchemaVersionView, ApiError> {
    let dictionary: Dictionary = parse_dictionary(&record)?;
    Ok(SchemaVersionView {
        tenant: match record.scope {
            SchemaScope::Common => None,
            SchemaScope::Tenant(tenant) => Some(tenant),
        },
        version: record.version,
        root_message: record.root_message,
        created_at: record.created_at,
        created_by: record.created_by.to_string(),
        keys: dictionary.fields().len(),
        files: record
            .files
            .into_iter()
            .map(|f| SchemaFileBody {
                name: f.name,
                content: f.content,
            })
            .collect(),
        dictionary: serde_json::to_value(&dictionary).map_err(ApiError::internal)?,
    })
}

fn parse_dictionary(record: &SchemaRecord) -> Result<Dictionary, ApiError> {
    serde_json::from_str(&record.dictionary_json).map_err(|e| {
        ApiError::internal(format!(
            "stored dictionary of {} version {} is unreadable: {e}",
            scope_name(&record.scope),
            record.version
        ))
    })
}

/// The common dictionary extended with the tenant's extension, and a description of the
/// versions it comes from (`common v3 + payments v1`).
async fn effective_dictionary(
    state: &AppState,
    tenant: &TenantName,
) -> Result<(Dictionary, String), ApiError> {
    let tenant = tenant.clone();
    let found = state
        .store(move |store| Ok(effective_dictionary_blocking(store, &tenant)))
        .await??;
    found.ok_or_else(|| {
        ApiError::not_found("no schema has been pushed yet: push one with `caravan schema push`")
    })
}

/// [`effective_dictionary`] for callers already on a blocking thread; `None` when neither a
/// common schema nor an extension exists.
fn effective_dictionary_blocking(
    store: &dyn ControlStore,
    tenant: &TenantName,
) -> Result<Option<(Dictionary, String)>, ApiError> {
    let common = store.schema(&SchemaScope::Common, None)?;
    let extension = store.schema(&SchemaScope::Tenant(tenant.clone()), None)?;
    Ok(match (common, extension) {
        (None, None) => None,
        (Some(common), None) => Some((
            parse_dictionary(&common)?,
            format!("common v{}", common.version),
        )),
        (None, Some(extension)) => Some((
            parse_dictionary(&extension)?,
            format!("{tenant} v{}", extension.version),
        )),
        (Some(common), Some(extension)) => {
            let merged = parse_dictionary(&common)?
                .extend(&parse_dictionary(&extension)?)
                .map_err(ApiError::internal)?;
            Some((
                merged,
                format!(
                    "common v{} + {tenant} v{}",
                    common.version, extension.version
                ),
            ))
        }
    })
}

impl SchemaState {
    /// The dictionary in force for `tenant`, cached until the next push; `None` before any
    /// schema was pushed. Blocks on the store on a cache miss: call it from a blocking thread.
    pub(crate) fn dictionary_for(
        &self,
        store: &dyn ControlStore,
        tenant: &TenantName,
    ) -> Result<Option<Arc<Dictionary>>, ApiError> {
        let cache = self
            .dictionaries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = cache.get(tenant) {
            return Ok(found.clone());
        }
        drop(cache);
        let found = effective_dictionary_blocking(store, tenant)?.map(|(d, _)| Arc::new(d));
        self.dictionaries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tenant.clone(), found.clone());
        Ok(found)
    }

    fn invalidate(&self) {
        self.dictionaries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// Compiles, validates against what is in force, and stores a push as the next version.
async fn push(
    state: &AppState,
    principal: &Principal,
    scope: SchemaScope,
    push: SchemaPush,
) -> Result<(StatusCode, Json<SchemaPushed>), ApiError> {
    if push.files.is_empty() {
        return Err(ApiError::invalid(
            "files: at least one .proto file is needed",
        ));
    }
    if push.files.len() > SCHEMA_FILES_MAX {
        return Err(ApiError::invalid(format!(
            "files: at most {SCHEMA_FILES_MAX} files per schema, got {}",
            push.files.len()
        )));
    }
    let options = CompileOptions {
        root_message: push
            .root_message
            .clone()
            .unwrap_or_else(|| caravan_schema::DEFAULT_ROOT_MESSAGE.to_owned()),
        ..CompileOptions::default()
    };
    let sources: Vec<(String, String)> = push
        .files
        .iter()
        .map(|f| (f.name.clone(), f.content.clone()))
        .collect();
    let compiled = tokio::task::spawn_blocking(move || {
        caravan_schema::compile_files(sources, &options).map(|d| {
            let root = d.root().to_owned();
            (d, root)
        })
    })
    .await
    .map_err(ApiError::internal)?;
    let (dictionary, root_message) = compiled.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_schema",
            format!("{}: {e}", scope_name(&scope)),
        )
    })?;
    let dictionary = Arc::new(dictionary);

    let _serialised = state.schema().push_lock.lock().await;
    let check_scope = scope.clone();
    let (previous, common, extensions) = state
        .store(move |store| {
            let previous = store.schema(&check_scope, None)?;
            let common = match &check_scope {
                SchemaScope::Common => None,
                SchemaScope::Tenant(_) => store.schema(&SchemaScope::Common, None)?,
            };
            let extensions = match &check_scope {
                SchemaScope::Common => store.latest_tenant_schemas()?,
                SchemaScope::Tenant(_) => Vec::new(),
            };
            Ok((previous, common, extensions))
        })
        .await?;

    let changes = match &previous {
        Some(previous) => caravan_schema::diff(&parse_dictionary(previous)?, &dictionary),
        None => SchemaDiff {
            added: dictionary
                .fields()
                .iter()
                .map(|field| caravan_schema::KeySummary {
                    key: field.key.clone(),
                    field_type: field.field_type,
                })
                .collect(),
            ..SchemaDiff::default()
        },
    };
    let mut conflicts = type_conflicts(&changes);
    if let Some(common) = &common
        && let Err(error) = parse_dictionary(common)?.extend(&dictionary)
    {
        conflicts.push(format!("collides with the common schema:\n{error}"));
    }
    for extension in &extensions {
        if let Err(error) = dictionary.extend(&parse_dictionary(extension)?) {
            conflicts.push(format!(
                "collides with {} (version {}):\n{error}",
                scope_name(&extension.scope),
                extension.version
            ));
        }
    }
    if !conflicts.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "schema_conflict",
            format!("{} refused:\n{}", scope_name(&scope), conflicts.join("\n")),
        ));
    }

    let record = SchemaRecord {
        scope: scope.clone(),
        version: previous.as_ref().map_or(1, |p| p.version + 1),
        root_message,
        files: push
            .files
            .into_iter()
            .map(|f| SchemaFile {
                name: f.name,
                content: f.content,
            })
            .collect(),
        dictionary_json: serde_json::to_string(dictionary.as_ref()).map_err(ApiError::internal)?,
        created_at: now(),
        created_by: principal.token().clone(),
    };
    let version = record.version;
    state
        .store(move |store| store.insert_schema(&record))
        .await?;
    state.schema().invalidate();
    tracing::info!(schema = %scope_name(&scope), version, keys = dictionary.fields().len(), by = %principal.token(), "schema pushed");
    Ok((
        StatusCode::CREATED,
        Json(SchemaPushed {
            tenant: match scope {
                SchemaScope::Common => None,
                SchemaScope::Tenant(tenant) => Some(tenant),
            },
            version,
            keys: dictionary.fields().len(),
            changes: changes.to_string().lines().map(str::to_owned).collect(),
        }),
    ))
}

fn type_conflicts(changes: &SchemaDiff) -> Vec<String> {
    changes
        .conflicts
        .iter()
        .map(|c| {
            format!(
                "key `{}` would change type from {} to {} (an Elasticsearch mapping conflict)",
                c.key, c.old, c.new
            )
        })
        .collect()
}
