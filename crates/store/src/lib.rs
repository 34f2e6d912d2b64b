//! Caravan's control-plane store.
//!
//! Tenants, tokens and (later) the fleet live here. [`ControlStore`] is the interface the server
//! uses; [`SqliteStore`] is the embedded implementation. No SQL, no driver type and no dialect
//! detail crosses this crate's boundary, so that a PostgreSQL implementation can be added beside
//! the SQLite one without touching callers.
//!
//! The interface is synchronous: implementations block on I/O, so async callers run them on a
//! blocking thread (`tokio::task::spawn_blocking`). Every method is one transaction: it applies
//! fully or not at all.

mod error;
mod fleet;
mod schema;
mod sqlite;

use caravan_tenancy::{
    HostName, TenancyError, Tenant, TenantName, TokenId, TokenInfo, TokenRecord,
};
use time::OffsetDateTime;

pub use error::StoreError;
pub use fleet::{
    FLEET_EVENTS_KEPT_MAX, FleetEventFilter, FleetEventRecord, FleetRow, FleetRowChange,
};
pub use schema::{SchemaFile, SchemaRecord, SchemaScope, SchemaVersionInfo};
pub use sqlite::SqliteStore;

/// Something a tenant owns, which blocks its deletion unless forced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// What is held, in the plural: `active tokens`.
    pub what: &'static str,
    /// How many.
    pub count: u64,
}

/// An object uploaded through the Elasticsearch-compatible API (templates, policies,
/// pipelines), kept so that clients see what they uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsObject {
    /// `index_template`, `template`, `component_template`, `ilm_policy`, `ingest_pipeline`,
    /// `data_stream`.
    pub kind: String,
    /// The tenant whose token uploaded it, or "" for admins.
    pub owner: String,
    /// The object's name.
    pub name: String,
    /// Its JSON body, as uploaded.
    pub body_json: String,
    /// When it was last uploaded.
    pub updated_at: OffsetDateTime,
}

/// One tenant's log usage on one day, as stored: the accounting itself is opaque JSON owned by
/// the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogUsageRow {
    /// The tenant.
    pub tenant: TenantName,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// The counters, as JSON.
    pub usage_json: String,
}

/// A tenant change computed from the current row, inside the store's transaction.
pub type TenantChange<'a> = &'a dyn Fn(&Tenant) -> Result<Tenant, TenancyError>;

/// The control-plane store.
pub trait ControlStore: Send + Sync {
    /// Adds a tenant; fails with [`StoreError::AlreadyExists`] if the name is taken.
    fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;
    /// One tenant, if it exists.
    fn tenant(&self, name: &TenantName) -> Result<Option<Tenant>, StoreError>;
    /// Every tenant, by name.
    fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Reads a tenant, applies `change` and writes the result, atomically.
    fn update_tenant(
        &self,
        name: &TenantName,
        change: TenantChange<'_>,
    ) -> Result<Tenant, StoreError>;
    /// What the tenant owns (only non-zero holdings are listed).
    fn tenant_holdings(&self, name: &TenantName) -> Result<Vec<Holding>, StoreError>;
    /// Deletes a tenant. Refused with [`StoreError::InUse`] while it owns anything, unless
    /// `force`, in which case everything it owns goes with it: nothing is left orphaned.
    fn delete_tenant(&self, name: &TenantName, force: bool) -> Result<(), StoreError>;

    /// Adds a token; a tenant token's tenant must exist.
    fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// The token whose secret has this digest, revoked or not.
    fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// One token, revoked or not.
    fn token(&self, id: &TokenId) -> Result<Option<TokenInfo>, StoreError>;
    /// Tokens, optionally only one tenant's, oldest first.
    fn tokens(&self, tenant: Option<&TenantName>) -> Result<Vec<TokenInfo>, StoreError>;
    /// Marks a token revoked from `now` on; revoking twice keeps the first time.
    fn revoke_token(&self, id: &TokenId, now: OffsetDateTime) -> Result<TokenInfo, StoreError>;
    /// Revokes, from `now` on, every agent token of `host` not revoked yet; returns them.
    fn revoke_host_tokens(
        &self,
        host: &HostName,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenInfo>, StoreError>;
    /// Adds a schema version. Its version must be the scope's latest plus one (1 for the
    /// first), otherwise [`StoreError::Conflict`]: another push won the race.
    fn insert_schema(&self, schema: &SchemaRecord) -> Result<(), StoreError>;
    /// A schema version of a scope; `None` asks for the latest.
    fn schema(
        &self,
        scope: &SchemaScope,
        version: Option<u64>,
    ) -> Result<Option<SchemaRecord>, StoreError>;
    /// Every version of a scope's schema, oldest first, without their sources.
    fn schema_versions(&self, scope: &SchemaScope) -> Result<Vec<SchemaVersionInfo>, StoreError>;
    /// The latest extension schema of every tenant that has one, by tenant.
    fn latest_tenant_schemas(&self) -> Result<Vec<SchemaRecord>, StoreError>;

    /// Stores (or replaces) an object uploaded through the Elasticsearch-compatible API, such as
    /// an index template, under its kind, owner (a tenant name, or "" for admins) and name.
    fn put_es_object(&self, object: &EsObject) -> Result<(), StoreError>;
    /// Objects of a kind and owner, by name; only `name` when given.
    fn es_objects(
        &self,
        kind: &str,
        owner: &str,
        name: Option<&str>,
    ) -> Result<Vec<EsObject>, StoreError>;
    /// Deletes an object; false when there was none.
    fn delete_es_object(&self, kind: &str, owner: &str, name: &str) -> Result<bool, StoreError>;

    /// Stores log usage rows (replacing those of the same tenant and day), in one transaction.
    fn save_log_usage(&self, rows: &[LogUsageRow]) -> Result<(), StoreError>;
    /// Log usage rows from `from_day` (`YYYY-MM-DD`) on, for one tenant or all, by tenant and day.
    fn log_usage(
        &self,
        tenant: Option<&TenantName>,
        from_day: &str,
    ) -> Result<Vec<LogUsageRow>, StoreError>;

    /// Applies fleet row changes in order (the last change of a row wins) and appends audit
    /// events, in one transaction. Keeps at most [`FLEET_EVENTS_KEPT_MAX`] events.
    fn apply_fleet_changes(
        &self,
        changes: &[FleetRowChange],
        events: &[FleetEventRecord],
    ) -> Result<(), StoreError>;
    /// Every row of the fleet state, by kind and id.
    fn fleet_rows(&self) -> Result<Vec<FleetRow>, StoreError>;
    /// Audit events matching the filter, newest first.
    fn fleet_events(&self, filter: &FleetEventFilter) -> Result<Vec<FleetEventRecord>, StoreError>;

    /// Whether any admin token exists, revoked or not (to know whether to bootstrap one).
    fn admin_token_exists(&self) -> Result<bool, StoreError>;

    /// Makes everything written so far durable and releases resources; called at shutdown.
    fn flush(&self) -> Result<(), StoreError>;
}
