//! The embedded SQLite implementation of [`ControlStore`].
//!
//! One connection behind a mutex: control-plane writes are few and small, and serialising them
//! makes every method trivially one transaction. WAL mode lets the file be read by tools while
//! the server runs; `synchronous = FULL` makes every acknowledged change survive power loss.

mod fleet;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use caravan_tenancy::{
    HostName, Scope, Tenant, TenantName, TokenId, TokenInfo, TokenKind, TokenRecord,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use rusqlite_migration::{M, Migrations};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{
    ControlStore, EsObject, Holding, LogUsageRow, SchemaFile, SchemaRecord, SchemaScope,
    SchemaVersionInfo, StoreError, TenantChange,
};

/// Schema migrations, applied in order at open; never edit one that has shipped, add a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    name              TEXT PRIMARY KEY,
    display_name      TEXT NOT NULL,
    retention_days    INTEGER NOT NULL,
    daily_quota_bytes INTEGER,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
) STRICT;
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('admin', 'tenant')),
    tenant      TEXT REFERENCES tenants(name),
    scopes      TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;
CREATE INDEX tokens_by_tenant ON tokens(tenant);
"#,
    r#"
CREATE TABLE schemas (
    scope        TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0),
    root_message TEXT NOT NULL,
    files        TEXT NOT NULL,
    dictionary   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (scope, version)
) STRICT;
"#,
    r#"
CREATE TABLE es_objects (
    kind       TEXT NOT NULL,
    owner      TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, owner, name)
) STRICT;
"#,
    r#"
CREATE TABLE log_usage (
    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    day    TEXT NOT NULL,
    usage  TEXT NOT NULL,
    PRIMARY KEY (tenant, day)
) STRICT;
"#,
    fleet::MIGRATION,
    // Agent tokens: a third kind, bound to a host. SQLite cannot change a CHECK constraint in
    // place, so the table is rebuilt (nothing references it).
    r#"
CREATE TABLE tokens_v2 (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('admin', 'tenant', 'agent')),
    tenant      TEXT REFERENCES tenants(name),
    host        TEXT CHECK ((kind = 'agent') = (host IS NOT NULL)),
    scopes      TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;
INSERT INTO tokens_v2 (id, name, kind, tenant, host, scopes, secret_hash, created_at, revoked_at)
    SELECT id, name, kind, tenant, NULL, scopes, secret_hash, created_at, revoked_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_v2 RENAME TO tokens;
CREATE INDEX tokens_by_tenant ON tokens(tenant);
"#,
];

/// The control-plane store in one SQLite file.
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path).map_err(backend)?;
        Self::init(connection)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut connection: Connection) -> Result<Self, StoreError> {
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(backend)?;
        let migrations = Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect());
        migrations.to_latest(&mut connection).map_err(backend)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (rusqlite rolls
        // back on drop), so a poisoned lock still guards a consistent database.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ControlStore for SqliteStore {
    fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let connection = self.lock();
        let inserted = connection
            .execute(
                "INSERT INTO tenants (name, display_name, retention_days, daily_quota_bytes, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
                params![
                    tenant.name.as_str(),
                    tenant.display_name,
                    tenant.retention_days,
                    tenant.daily_quota_bytes.map(quota_to_sql),
                    format_time(tenant.created_at)?,
                    format_time(tenant.updated_at)?,
                ],
            )
            .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                what: "tenant",
                name: tenant.name.to_string(),
            });
        }
        Ok(())
    }

    fn tenant(&self, name: &TenantName) -> Result<Option<Tenant>, StoreError> {
        select_tenant(&self.lock(), name)
    }

    fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!("{SELECT_TENANT} ORDER BY name"))
            .map_err(backend)?;
        let rows = statement.query_map([], tenant_from_row).map_err(backend)?;
        rows.map(|row| row.map_err(backend)?).collect()
    }

    fn update_tenant(
        &self,
        name: &TenantName,
        change: TenantChange<'_>,
    ) -> Result<Tenant, StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(backend)?;
        let current = select_tenant(&transaction, name)?.ok_or_else(|| tenant_not_found(name))?;
        let next = change(&current)?;
        debug_assert_eq!(next.name, current.name, "a tenant's name never changes");
        transaction
            .execute(
                "UPDATE tenants SET display_name = ?2, retention_days = ?3, daily_quota_bytes = ?4, updated_at = ?5
                 WHERE name = ?1",
                params![
                    name.as_str(),
                    next.display_name,
                    next.retention_days,
                    next.daily_quota_bytes.map(quota_to_sql),
                    format_time(next.updated_at)?,
                ],
            )
            .map_err(backend)?;
        transaction.commit().map_err(backend)?;
        Ok(next)
    }

    fn tenant_holdings(&self, name: &TenantName) -> Result<Vec<Holding>, StoreError> {
        holdings(&self.lock(), name)
    }

    fn delete_tenant(&self, name: &TenantName, force: bool) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(backend)?;
        if select_tenant(&transaction, name)?.is_none() {
            return Err(tenant_not_found(name));
        }
        let holdings = holdings(&transaction, name)?;
        if !holdings.is_empty() && !force {
            return Err(StoreError::InUse {
                what: "tenant",
                name: name.to_string(),
                holdings,
            });
        }
        transaction
            .execute("DELETE FROM tokens WHERE tenant = ?1", [name.as_str()])
            .map_err(backend)?;
        transaction
            .execute("DELETE FROM schemas WHERE scope = ?1", [name.as_str()])
            .map_err(backend)?;
        transaction
            .execute("DELETE FROM es_objects WHERE owner = ?1", [name.as_str()])
            .map_err(backend)?;
        transaction
            .execute("DELETE FROM tenants WHERE name = ?1", [name.as_str()])
            .map_err(backend)?;
        transaction.commit().map_err(backend)
    }

    fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(backend)?;
        let info = &token.info;
        if let Some(tenant) = &info.tenant
            && select_tenant(&transaction, tenant)?.is_none()
        {
            return Err(tenant_not_found(tenant));
        }
        let scopes: Vec<&str> = info.scopes.iter().map(|s| s.as_str()).collect();
        transaction
            .execute(
                "INSERT INTO tokens (id, name, kind, tenant, host, scopes, secret_hash, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)",
                params![
                    info.id.as_str(),
                    info.name,
                    info.kind.as_str(),
                    info.tenant.as_ref().map(TenantName::as_str),
                    info.host.as_ref().map(HostName::as_str),
                    scopes.join(","),
                    token.secret_hash,
                    format_time(info.created_at)?,
                ],
            )
            .map_err(backend)?;
        transaction.commit().map_err(backend)
    }

    fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let connection = self.lock();
        connection
            .query_row(
                &format!("{SELECT_TOKEN} WHERE secret_hash = ?1"),
                [secret_hash],
                token_from_row,
            )
            .optional()
            .map_err(backend)?
            .transpose()
    }

    fn token(&self, id: &TokenId) -> Result<Option<TokenInfo>, StoreError> {
        select_token(&self.lock(), id).map(|token| token.map(|t| t.info))
    }

    fn tokens(&self, tenant: Option<&TenantName>) -> Result<Vec<TokenInfo>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "{SELECT_TOKEN} WHERE ?1 IS NULL OR tenant = ?1 ORDER BY created_at, id"
            ))
            .map_err(backend)?;
        let rows = statement
            .query_map([tenant.map(TenantName::as_str)], token_from_row)
            .map_err(backend)?;
        rows.map(|row| Ok(row.map_err(backend)??.info)).collect()
    }

    fn revoke_token(&self, id: &TokenId, now: OffsetDateTime) -> Result<TokenInfo, StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(backend)?;
        transaction
            .execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id.as_str(), format_time(now)?],
            )
            .map_err(backend)?;
        let token = select_token(&transaction, id)?.ok_or_else(|| StoreError::NotFound {
            what: "token",
            name: id.to_string(),
        })?;
        transaction.commit().map_err(backend)?;
        Ok(token.info)
    }

    fn revoke_host_tokens(
        &self,
        host: &HostName,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(backend)?;
        let ids: Vec<String> = {
            let mut statement = transaction
                .prepare(
                    "UPDATE tokens SET revoked_at = ?2
                     WHERE kind = 'agent' AND host = ?1 AND revoked_at IS NULL RETURNING id",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map(params![host.as_str(), format_time(now)?], |row| row.get(0))
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)?
        };
        let mut revoked = Vec::with_capacity(ids.len());
        for id in ids {
            let id = TokenId::from_string(id);
            let token = select_token(&transaction, &id)?.ok_or_else(|| StoreError::NotFound {
                what: "token",
                name: id.to_string(),
            })?;
            revoked.push(token.info);
        }
        transaction.commit().map_err(backend)?;
        Ok(revoked)
    }

    fn insert_schema(&self, schema: &SchemaRecord) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(backend)?;
        if let SchemaScope::Tenant(tenant) = &schema.scope
            && select_tenant(&transaction, tenant)?.is_none()
        {
            return Err(tenant_not_found(tenant));
        }
        let latest: u64 = transaction
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schemas WHERE scope = ?1",
                [schema.scope.key()],
                |row| row.get(0),
            )
            .map_err(backend)?;
        if schema.version != latest + 1 {
            return Err(StoreError::Conflict(format!(
                "schema version {} was pushed concurrently; retry",
                latest + 1
            )));
        }
        let files = serde_json::to_string(&schema.files).map_err(backend)?;
        transaction
            .execute(
                "INSERT INTO schemas (scope, version, root_message, files, dictionary, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    schema.scope.key(),
                    schema.version,
                    schema.root_message,
                    files,
                    schema.dictionary_json,
                    format_time(schema.created_at)?,
                    schema.created_by.as_str(),
                ],
            )
            .map_err(backend)?;
        transaction.commit().map_err(backend)
    }

    fn schema(
        &self,
        scope: &SchemaScope,
        version: Option<u64>,
    ) -> Result<Option<SchemaRecord>, StoreError> {
        let connection = self.lock();
        let sql = format!(
            "{SELECT_SCHEMA} WHERE scope = ?1 AND (?2 IS NULL OR version = ?2) ORDER BY version DESC LIMIT 1"
        );
        connection
            .query_row(&sql, params![scope.key(), version], schema_from_row)
            .optional()
            .map_err(backend)?
            .transpose()
    }

    fn schema_versions(&self, scope: &SchemaScope) -> Result<Vec<SchemaVersionInfo>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT version, root_message, created_at, created_by FROM schemas
                 WHERE scope = ?1 ORDER BY version",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map([scope.key()], |row| {
                let created_at: String = row.get(2)?;
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    created_at,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (version, root_message, created_at, created_by) = row.map_err(backend)?;
            Ok(SchemaVersionInfo {
                version,
                root_message,
                created_at: parse_time(&created_at)?,
                created_by: TokenId::from_string(created_by),
            })
        })
        .collect()
    }

    fn latest_tenant_schemas(&self) -> Result<Vec<SchemaRecord>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "{SELECT_SCHEMA} AS s WHERE scope != '' AND version = (SELECT MAX(version) FROM schemas WHERE scope = s.scope) ORDER BY scope"
            ))
            .map_err(backend)?;
        let rows = statement.query_map([], schema_from_row).map_err(backend)?;
        rows.map(|row| row.map_err(backend)?).collect()
    }

    fn put_es_object(&self, object: &EsObject) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO es_objects (kind, owner, name, body, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, owner, name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                params![
                    object.kind,
                    object.owner,
                    object.name,
                    object.body_json,
                    format_time(object.updated_at)?,
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn es_objects(
        &self,
        kind: &str,
        owner: &str,
        name: Option<&str>,
    ) -> Result<Vec<EsObject>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT kind, owner, name, body, updated_at FROM es_objects
                 WHERE kind = ?1 AND owner = ?2 AND (?3 IS NULL OR name = ?3) ORDER BY name",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![kind, owner, name], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (kind, owner, name, body_json, updated_at) = row.map_err(backend)?;
            Ok(EsObject {
                kind,
                owner,
                name,
                body_json,
                updated_at: parse_time(&updated_at)?,
            })
        })
        .collect()
    }

    fn delete_es_object(&self, kind: &str, owner: &str, name: &str) -> Result<bool, StoreError> {
        let deleted = self
            .lock()
            .execute(
                "DELETE FROM es_objects WHERE kind = ?1 AND owner = ?2 AND name = ?3",
                params![kind, owner, name],
            )
            .map_err(backend)?;
        Ok(deleted > 0)
    }

    fn save_log_usage(&self, rows: &[LogUsageRow]) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(backend)?;
        for row in rows {
            // A tenant deleted since the counters were taken has nothing left to account for.
            transaction
                .execute(
                    "INSERT INTO log_usage (tenant, day, usage)
                     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM tenants WHERE name = ?1)
                     ON CONFLICT (tenant, day) DO UPDATE SET usage = excluded.usage",
                    params![row.tenant.as_str(), row.day, row.usage_json],
                )
                .map_err(backend)?;
        }
        transaction.commit().map_err(backend)
    }

    fn log_usage(
        &self,
        tenant: Option<&TenantName>,
        from_day: &str,
    ) -> Result<Vec<LogUsageRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT tenant, day, usage FROM log_usage
                 WHERE (?1 IS NULL OR tenant = ?1) AND day >= ?2 ORDER BY tenant, day",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![tenant.map(TenantName::as_str), from_day], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (tenant, day, usage_json) = row.map_err(backend)?;
            Ok(LogUsageRow {
                tenant: TenantName::new(tenant)?,
                day,
                usage_json,
            })
        })
        .collect()
    }

    fn apply_fleet_changes(
        &self,
        changes: &[crate::FleetRowChange],
        events: &[crate::FleetEventRecord],
    ) -> Result<(), StoreError> {
        fleet::apply(&mut self.lock(), changes, events)
    }

    fn fleet_rows(&self) -> Result<Vec<crate::FleetRow>, StoreError> {
        fleet::rows(&self.lock())
    }

    fn fleet_events(
        &self,
        filter: &crate::FleetEventFilter,
    ) -> Result<Vec<crate::FleetEventRecord>, StoreError> {
        fleet::events(&self.lock(), filter)
    }

    fn admin_token_exists(&self) -> Result<bool, StoreError> {
        self.lock()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM tokens WHERE kind = 'admin')",
                [],
                |row| row.get(0),
            )
            .map_err(backend)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.lock()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(backend)
    }
}

const SELECT_TENANT: &str = "SELECT name, display_name, retention_days, daily_quota_bytes, created_at, updated_at FROM tenants";
const SELECT_SCHEMA: &str =
    "SELECT scope, version, root_message, files, dictionary, created_at, created_by FROM schemas";
const SELECT_TOKEN: &str =
    "SELECT id, name, kind, tenant, scopes, secret_hash, created_at, revoked_at, host FROM tokens";

fn select_tenant(connection: &Connection, name: &TenantName) -> Result<Option<Tenant>, StoreError> {
    connection
        .query_row(
            &format!("{SELECT_TENANT} WHERE name = ?1"),
            [name.as_str()],
            tenant_from_row,
        )
        .optional()
        .map_err(backend)?
        .transpose()
}

fn select_token(connection: &Connection, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
    connection
        .query_row(
            &format!("{SELECT_TOKEN} WHERE id = ?1"),
            [id.as_str()],
            token_from_row,
        )
        .optional()
        .map_err(backend)?
        .transpose()
}

fn holdings(connection: &Connection, name: &TenantName) -> Result<Vec<Holding>, StoreError> {
    let active_tokens: u64 = connection
        .query_row(
            "SELECT COUNT(*) FROM tokens WHERE tenant = ?1 AND revoked_at IS NULL",
            [name.as_str()],
            |row| row.get(0),
        )
        .map_err(backend)?;
    let schema_versions: u64 = connection
        .query_row(
            "SELECT COUNT(*) FROM schemas WHERE scope = ?1",
            [name.as_str()],
            |row| row.get(0),
        )
        .map_err(backend)?;
    let all = [
        Holding {
            what: "active tokens",
            count: active_tokens,
        },
        Holding {
            what: "extension schema versions",
            count: schema_versions,
        },
    ];
    Ok(all.into_iter().filter(|h| h.count > 0).collect())
}

/// Reads a tenant row. The outer `Result` is the driver's; the inner one reports stored values
/// this version cannot read.
fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Tenant, StoreError>> {
    let name: String = row.get(0)?;
    let quota: Option<i64> = row.get(3)?;
    let created_at: String = row.get(4)?;
    let updated_at: String = row.get(5)?;
    let display_name = row.get(1)?;
    let retention_days = row.get(2)?;
    Ok((|| {
        Ok(Tenant {
            name: TenantName::new(name)?,
            display_name,
            retention_days,
            daily_quota_bytes: quota.map(quota_from_sql),
            created_at: parse_time(&created_at)?,
            updated_at: parse_time(&updated_at)?,
        })
    })())
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<Result<TokenRecord, StoreError>> {
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let tenant: Option<String> = row.get(3)?;
    let scopes: String = row.get(4)?;
    let secret_hash: String = row.get(5)?;
    let created_at: String = row.get(6)?;
    let revoked_at: Option<String> = row.get(7)?;
    let host: Option<String> = row.get(8)?;
    Ok((|| {
        let kind = match kind.as_str() {
            "admin" => TokenKind::Admin,
            "tenant" => TokenKind::Tenant,
            "agent" => TokenKind::Agent,
            other => return Err(corrupt(format!("unknown token kind {other:?}"))),
        };
        let scopes = scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(Scope::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TokenRecord {
            info: TokenInfo {
                id: TokenId::from_string(id),
                name,
                kind,
                tenant: tenant.map(TenantName::new).transpose()?,
                host: host
                    .map(|host| {
                        HostName::new(&host)
                            .map_err(|error| corrupt(format!("token host: {error}")))
                    })
                    .transpose()?,
                scopes,
                created_at: parse_time(&created_at)?,
                revoked_at: revoked_at.as_deref().map(parse_time).transpose()?,
            },
            secret_hash,
        })
    })())
}

fn schema_from_row(row: &Row<'_>) -> rusqlite::Result<Result<SchemaRecord, StoreError>> {
    let scope: String = row.get(0)?;
    let version: u64 = row.get(1)?;
    let root_message: String = row.get(2)?;
    let files: String = row.get(3)?;
    let dictionary_json: String = row.get(4)?;
    let created_at: String = row.get(5)?;
    let created_by: String = row.get(6)?;
    Ok((|| {
        let scope = if scope.is_empty() {
            SchemaScope::Common
        } else {
            SchemaScope::Tenant(TenantName::new(scope)?)
        };
        let files: Vec<SchemaFile> = serde_json::from_str(&files)
            .map_err(|e| corrupt(format!("bad schema files of version {version}: {e}")))?;
        Ok(SchemaRecord {
            scope,
            version,
            root_message,
            files,
            dictionary_json,
            created_at: parse_time(&created_at)?,
            created_by: TokenId::from_string(created_by),
        })
    })())
}

/// Quotas are `u64` in the domain and `INTEGER` (signed 64-bit) in SQLite; quotas above
/// `i64::MAX` bytes (8 EiB) are stored saturated, which is the same as unlimited in practice.
fn quota_to_sql(quota: u64) -> i64 {
    i64::try_from(quota).unwrap_or(i64::MAX)
}

fn quota_from_sql(quota: i64) -> u64 {
    u64::try_from(quota).unwrap_or(0)
}

fn format_time(at: OffsetDateTime) -> Result<String, StoreError> {
    at.format(&Rfc3339).map_err(|e| corrupt(e.to_string()))
}

fn parse_time(text: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| corrupt(format!("bad timestamp {text:?}: {e}")))
}

fn tenant_not_found(name: &TenantName) -> StoreError {
    StoreError::NotFound {
        what: "tenant",
        name: name.to_string(),
    }
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(error))
}

fn corrupt(message: String) -> StoreError {
    StoreError::Backend(message.into())
}

#[cfg(test)]
mod tests {
    use caravan_tenancy::{TenantCreate, TenantUpdate, TokenCreate, TokenSecret};

    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    fn tenant(name: &str) -> Tenant {
        let request = TenantCreate {
            name: TenantName::new(name).unwrap(),
            display_name: None,
            retention_days: None,
            daily_quota_bytes: Some(5_000),
        };
        Tenant::create(request, now()).unwrap()
    }

    fn token(tenant: Option<&str>, seed: u8) -> TokenRecord {
        let request = TokenCreate {
            name: format!("token {seed}"),
            kind: if tenant.is_some() {
                TokenKind::Tenant
            } else {
                TokenKind::Admin
            },
            tenant: tenant.map(|t| TenantName::new(t).unwrap()),
            host: None,
            scopes: if tenant.is_some() {
                vec![Scope::LogsWrite]
            } else {
                vec![]
            },
        };
        let secret = TokenSecret::from_random_bytes([seed; 24]);
        request
            .into_record(TokenId::from_random_bytes([seed; 8]), &secret, now())
            .unwrap()
    }

    #[test]
    fn tenants_round_trip() {
        let store = SqliteStore::open_in_memory().unwrap();
        let payments = tenant("payments");
        store.create_tenant(&payments).unwrap();
        assert!(matches!(
            store.create_tenant(&payments),
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(
            store.tenant(&payments.name).unwrap(),
            Some(payments.clone())
        );
        assert_eq!(store.tenants().unwrap(), vec![payments]);
    }

    #[test]
    fn invalid_update_writes_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let payments = tenant("payments");
        store.create_tenant(&payments).unwrap();
        let bad = TenantUpdate {
            retention_days: Some(0),
            ..TenantUpdate::default()
        };
        let result = store.update_tenant(&payments.name, &|t| t.updated(bad.clone(), now()));
        assert!(matches!(result, Err(StoreError::Invalid(_))));
        assert_eq!(store.tenant(&payments.name).unwrap(), Some(payments));
    }

    #[test]
    fn delete_refused_while_holding_tokens_unless_forced() {
        let store = SqliteStore::open_in_memory().unwrap();
        let payments = tenant("payments");
        store.create_tenant(&payments).unwrap();
        let record = token(Some("payments"), 1);
        store.insert_token(&record).unwrap();
        let err = store.delete_tenant(&payments.name, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tenant \"payments\" is in use: it owns 1 active tokens; delete those first or force"
        );
        store.delete_tenant(&payments.name, true).unwrap();
        assert_eq!(store.tenant(&payments.name).unwrap(), None);
        assert_eq!(store.token_by_hash(&record.secret_hash).unwrap(), None);
    }

    #[test]
    fn tokens_need_an_existing_tenant_and_revoke_once() {
        let store = SqliteStore::open_in_memory().unwrap();
        assert!(matches!(
            store.insert_token(&token(Some("ghost"), 2)),
            Err(StoreError::NotFound { .. })
        ));
        let admin = token(None, 3);
        store.insert_token(&admin).unwrap();
        assert!(store.admin_token_exists().unwrap());
        let first = store.revoke_token(&admin.info.id, now()).unwrap();
        let later = now() + time::Duration::hours(1);
        let second = store.revoke_token(&admin.info.id, later).unwrap();
        assert_eq!(first.revoked_at, Some(now()));
        assert_eq!(second.revoked_at, Some(now()));
        let found = store.token_by_hash(&admin.secret_hash).unwrap().unwrap();
        assert_eq!(found.info, second);
    }

    #[test]
    fn a_host_s_agent_tokens_are_revoked_together() {
        let store = SqliteStore::open_in_memory().unwrap();
        let agent = |n: u8, host: &str| {
            let request = TokenCreate {
                name: format!("agent {n}"),
                kind: TokenKind::Agent,
                tenant: None,
                host: Some(HostName::new(host).unwrap()),
                scopes: vec![],
            };
            let secret = TokenSecret::from_random_bytes([n; 24]);
            let record = request
                .into_record(TokenId::from_random_bytes([n; 8]), &secret, now())
                .unwrap();
            store.insert_token(&record).unwrap();
            record.info
        };
        let (first, second, other) = (agent(1, "dc1-h1"), agent(2, "dc1-h1"), agent(3, "dc1-h2"));
        let earlier = store.revoke_token(&second.id, now()).unwrap();
        let later = now() + time::Duration::hours(1);
        let host = HostName::new("dc1-h1").unwrap();
        let revoked = store.revoke_host_tokens(&host, later).unwrap();
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert_eq!(
            (&revoked[0].id, revoked[0].revoked_at),
            (&first.id, Some(later))
        );
        assert_eq!(
            store.token(&second.id).unwrap().unwrap(),
            earlier,
            "the first revocation stays"
        );
        assert_eq!(store.token(&other.id).unwrap().unwrap().revoked_at, None);
        assert!(store.revoke_host_tokens(&host, later).unwrap().is_empty());
    }

    #[test]
    fn agent_tokens_carry_their_host() {
        let store = SqliteStore::open_in_memory().unwrap();
        let request = TokenCreate {
            name: "agent of dc1-h1".to_owned(),
            kind: TokenKind::Agent,
            tenant: None,
            host: Some(HostName::new("dc1-h1").unwrap()),
            scopes: vec![],
        };
        let secret = TokenSecret::from_random_bytes([9; 24]);
        let record = request
            .into_record(TokenId::from_random_bytes([9; 8]), &secret, now())
            .unwrap();
        store.insert_token(&record).unwrap();
        let found = store.token_by_hash(&record.secret_hash).unwrap().unwrap();
        assert_eq!(found, record);
        assert_eq!(store.tokens(None).unwrap(), vec![record.info.clone()]);
        assert!(!store.admin_token_exists().unwrap());
        // The table itself refuses an agent token without a host, or a host on another kind.
        let connection = store.lock();
        for (kind, host) in [("agent", None), ("admin", Some("dc1-h1"))] {
            let inserted = connection.execute(
                "INSERT INTO tokens (id, name, kind, tenant, host, scopes, secret_hash, created_at)
                 VALUES ('tok_x', 'x', ?1, NULL, ?2, '', 'hash_x', '2023-11-14T22:13:20Z')",
                params![kind, host],
            );
            assert!(inserted.is_err(), "{kind} {host:?} was accepted");
        }
    }

    #[test]
    fn tokens_written_before_agent_tokens_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caravan.db");
        let before_agents = MIGRATIONS.len() - 1;
        {
            // A database as the previous version left it, with a tenant and two tokens.
            let mut connection = Connection::open(&path).unwrap();
            let old = Migrations::new(
                MIGRATIONS[..before_agents]
                    .iter()
                    .map(|sql| M::up(sql))
                    .collect(),
            );
            old.to_latest(&mut connection).unwrap();
            connection
                .execute_batch(
                    "INSERT INTO tenants VALUES ('payments', 'Payments', 7, NULL,
                        '2023-11-14T22:13:20Z', '2023-11-14T22:13:20Z');
                     INSERT INTO tokens VALUES ('tok_admin', 'ops', 'admin', NULL, '', 'hash_admin',
                        '2023-11-14T22:13:20Z', NULL);
                     INSERT INTO tokens VALUES ('tok_filebeat', 'filebeat', 'tenant', 'payments',
                        'logs:write,logs:read', 'hash_filebeat', '2023-11-14T22:13:20Z',
                        '2023-11-15T00:00:00Z');",
                )
                .unwrap();
            let refused = connection.execute(
                "INSERT INTO tokens VALUES ('tok_g', 'g', 'agent', NULL, '', 'hash_g',
                    '2023-11-14T22:13:20Z', NULL)",
                [],
            );
            assert!(refused.is_err(), "the old table takes agent tokens");
        }
        let store = SqliteStore::open(&path).unwrap();
        let admin = store.token_by_hash("hash_admin").unwrap().unwrap();
        assert_eq!(admin.info.kind, TokenKind::Admin);
        assert_eq!(admin.info.host, None);
        assert!(store.admin_token_exists().unwrap());
        let filebeat = store.token_by_hash("hash_filebeat").unwrap().unwrap();
        assert_eq!(filebeat.info.kind, TokenKind::Tenant);
        assert_eq!(
            filebeat.info.tenant,
            Some(TenantName::new("payments").unwrap())
        );
        assert_eq!(
            filebeat.info.scopes,
            vec![Scope::LogsWrite, Scope::LogsRead]
        );
        assert!(filebeat.info.revoked_at.is_some());
        let payments = TenantName::new("payments").unwrap();
        assert_eq!(store.tokens(Some(&payments)).unwrap(), vec![filebeat.info]);
        // The foreign key to tenants survived the rebuild; agent tokens are now accepted.
        let orphan = store.lock().execute(
            "INSERT INTO tokens (id, name, kind, tenant, host, scopes, secret_hash, created_at)
             VALUES ('tok_o', 'o', 'tenant', 'ghost', NULL, 'logs:read', 'hash_o', '2023-11-14T22:13:20Z')",
            [],
        );
        assert!(orphan.is_err(), "a token of a missing tenant was accepted");
        let mut agent = token(None, 5);
        agent.info.kind = TokenKind::Agent;
        agent.info.host = Some(HostName::new("dc1-h1").unwrap());
        store.insert_token(&agent).unwrap();
        assert_eq!(store.tokens(None).unwrap().len(), 3);
    }

    fn schema(scope: SchemaScope, version: u64) -> SchemaRecord {
        SchemaRecord {
            scope,
            version,
            root_message: "LogSchema".into(),
            files: vec![SchemaFile {
                name: "log_schema.proto".into(),
                content: format!("// v{version}"),
            }],
            dictionary_json: format!("{{\"v\":{version}}}"),
            created_at: now(),
            created_by: TokenId::from_string("tok_a".into()),
        }
    }

    #[test]
    fn schema_versions_follow_each_other_per_scope() {
        let store = SqliteStore::open_in_memory().unwrap();
        let common = SchemaScope::Common;
        assert_eq!(store.schema(&common, None).unwrap(), None);
        store.insert_schema(&schema(common.clone(), 1)).unwrap();
        let err = store.insert_schema(&schema(common.clone(), 1)).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(store.insert_schema(&schema(common.clone(), 3)).is_err());
        store.insert_schema(&schema(common.clone(), 2)).unwrap();
        assert_eq!(store.schema(&common, None).unwrap().unwrap().version, 2);
        assert_eq!(
            store.schema(&common, Some(1)).unwrap().unwrap(),
            schema(common.clone(), 1)
        );
        assert_eq!(store.schema_versions(&common).unwrap().len(), 2);

        let payments = TenantName::new("payments").unwrap();
        let extension = SchemaScope::Tenant(payments.clone());
        assert!(matches!(
            store.insert_schema(&schema(extension.clone(), 1)),
            Err(StoreError::NotFound { .. })
        ));
        store.create_tenant(&tenant("payments")).unwrap();
        store.insert_schema(&schema(extension.clone(), 1)).unwrap();
        store.insert_schema(&schema(extension.clone(), 2)).unwrap();
        let latest = store.latest_tenant_schemas().unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].version, 2);
        assert_eq!(latest[0].scope, extension);

        let err = store.delete_tenant(&payments, false).unwrap_err();
        assert!(
            err.to_string().contains("2 extension schema versions"),
            "{err}"
        );
        store.delete_tenant(&payments, true).unwrap();
        assert!(store.latest_tenant_schemas().unwrap().is_empty());
        assert_eq!(store.schema_versions(&common).unwrap().len(), 2);
    }

    #[test]
    fn es_objects_are_kept_per_owner() {
        let store = SqliteStore::open_in_memory().unwrap();
        let object = |owner: &str, body: &str| EsObject {
            kind: "index_template".into(),
            owner: owner.into(),
            name: "filebeat".into(),
            body_json: body.into(),
            updated_at: now(),
        };
        store.put_es_object(&object("payments", "{}")).unwrap();
        store
            .put_es_object(&object("payments", "{\"a\":1}"))
            .unwrap();
        store.put_es_object(&object("", "{}")).unwrap();
        let mine = store
            .es_objects("index_template", "payments", None)
            .unwrap();
        assert_eq!(mine, vec![object("payments", "{\"a\":1}")]);
        assert!(
            store
                .es_objects("index_template", "search", None)
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .delete_es_object("index_template", "payments", "filebeat")
                .unwrap()
        );
        assert!(
            !store
                .delete_es_object("index_template", "payments", "filebeat")
                .unwrap()
        );
        assert_eq!(
            store
                .es_objects("index_template", "", Some("filebeat"))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caravan.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.create_tenant(&tenant("payments")).unwrap();
            store.flush().unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.tenants().unwrap().len(), 1);
    }
}
