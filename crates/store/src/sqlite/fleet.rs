//! The fleet tables of [`super::SqliteStore`]: `fleet_rows` (the state, opaque JSON rows) and
//! `fleet_events` (the audit log).

use caravan_tenancy::TokenId;
use rusqlite::{Connection, params};

use super::{backend, format_time, parse_time};
use crate::{
    FLEET_EVENTS_KEPT_MAX, FleetEventFilter, FleetEventRecord, FleetRow, FleetRowChange, StoreError,
};

/// The migration creating the fleet tables.
pub(super) const MIGRATION: &str = r#"
CREATE TABLE fleet_rows (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    body TEXT NOT NULL CHECK (json_valid(body)),
    PRIMARY KEY (kind, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE fleet_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    by          TEXT,
    kind        TEXT NOT NULL,
    tenant      TEXT,
    service     TEXT,
    instance    TEXT,
    host        TEXT,
    data_center TEXT,
    message     TEXT NOT NULL
) STRICT;
CREATE INDEX fleet_events_by_service ON fleet_events(service, id);
CREATE INDEX fleet_events_by_host ON fleet_events(host, id);
CREATE INDEX fleet_events_by_tenant ON fleet_events(tenant, id);
"#;

/// Applies row changes in order and appends events, in one transaction.
pub(super) fn apply(
    connection: &mut Connection,
    changes: &[FleetRowChange],
    events: &[FleetEventRecord],
) -> Result<(), StoreError> {
    let transaction = connection.transaction().map_err(backend)?;
    {
        let mut put = transaction
            .prepare_cached(
                "INSERT INTO fleet_rows (kind, id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
            )
            .map_err(backend)?;
        let mut delete = transaction
            .prepare_cached("DELETE FROM fleet_rows WHERE kind = ?1 AND id = ?2")
            .map_err(backend)?;
        for change in changes {
            match change {
                FleetRowChange::Put(row) => put
                    .execute(params![row.kind, row.id, row.body_json])
                    .map_err(backend)?,
                FleetRowChange::Delete { kind, id } => {
                    delete.execute(params![kind, id]).map_err(backend)?
                }
            };
        }
        let mut insert = transaction
            .prepare_cached(
                "INSERT INTO fleet_events (at, by, kind, tenant, service, instance, host, data_center, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(backend)?;
        for event in events {
            insert
                .execute(params![
                    format_time(event.at)?,
                    event.by.as_ref().map(TokenId::as_str),
                    event.kind,
                    event.tenant,
                    event.service,
                    event.instance,
                    event.host,
                    event.data_center,
                    event.message,
                ])
                .map_err(backend)?;
        }
    }
    if !events.is_empty() {
        // Bounded log: ids grow by one per event, so this keeps the newest ones.
        transaction
            .execute(
                "DELETE FROM fleet_events WHERE id <= (SELECT MAX(id) FROM fleet_events) - ?1",
                [i64::try_from(FLEET_EVENTS_KEPT_MAX).unwrap_or(i64::MAX)],
            )
            .map_err(backend)?;
    }
    transaction.commit().map_err(backend)
}

/// Every row, by kind and id.
pub(super) fn rows(connection: &Connection) -> Result<Vec<FleetRow>, StoreError> {
    let mut statement = connection
        .prepare("SELECT kind, id, body FROM fleet_rows ORDER BY kind, id")
        .map_err(backend)?;
    let rows = statement
        .query_map([], |row| {
            Ok(FleetRow {
                kind: row.get(0)?,
                id: row.get(1)?,
                body_json: row.get(2)?,
            })
        })
        .map_err(backend)?;
    rows.map(|row| row.map_err(backend)).collect()
}

/// Events matching `filter`, newest first.
pub(super) fn events(
    connection: &Connection,
    filter: &FleetEventFilter,
) -> Result<Vec<FleetEventRecord>, StoreError> {
    let mut statement = connection
        .prepare(
            "SELECT id, at, by, kind, tenant, service, instance, host, data_center, message
             FROM fleet_events
             WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR host = ?2)
               AND (?3 IS NULL OR tenant = ?3)
             ORDER BY id DESC LIMIT ?4",
        )
        .map_err(backend)?;
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(
            params![filter.service, filter.host, filter.tenant, limit],
            |row| {
                Ok((
                    row.get::<_, u64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    FleetEventRecord {
                        id: 0,
                        at: time::OffsetDateTime::UNIX_EPOCH,
                        by: None,
                        kind: row.get(3)?,
                        tenant: row.get(4)?,
                        service: row.get(5)?,
                        instance: row.get(6)?,
                        host: row.get(7)?,
                        data_center: row.get(8)?,
                        message: row.get(9)?,
                    },
                ))
            },
        )
        .map_err(backend)?;
    rows.map(|row| {
        let (id, at, by, record) = row.map_err(backend)?;
        Ok(FleetEventRecord {
            id,
            at: parse_time(&at)?,
            by: by.map(TokenId::from_string),
            ..record
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use crate::{ControlStore, SqliteStore};

    use super::*;

    fn put(kind: &str, id: &str, body: &str) -> FleetRowChange {
        FleetRowChange::Put(FleetRow {
            kind: kind.into(),
            id: id.into(),
            body_json: body.into(),
        })
    }

    fn event(service: Option<&str>, host: Option<&str>, message: &str) -> FleetEventRecord {
        FleetEventRecord {
            id: 0,
            at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            by: Some(TokenId::from_string("tok_a".into())),
            kind: "instance_placed".into(),
            tenant: service.map(|_| "acme".to_owned()),
            service: service.map(str::to_owned),
            instance: None,
            host: host.map(str::to_owned),
            data_center: None,
            message: message.into(),
        }
    }

    #[test]
    fn rows_are_upserted_and_deleted_in_order() {
        let store = SqliteStore::open_in_memory().unwrap();
        store
            .apply_fleet_changes(
                &[
                    put("host", "h1", "{\"a\":1}"),
                    put("host", "h1", "{\"a\":2}"),
                    put("zone", "z", "{}"),
                    FleetRowChange::Delete {
                        kind: "zone".into(),
                        id: "z".into(),
                    },
                ],
                &[],
            )
            .unwrap();
        let rows = store.fleet_rows().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].body_json, "{\"a\":2}");
    }

    #[test]
    fn a_failed_batch_writes_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let result = store.apply_fleet_changes(
            &[put("host", "h1", "{}"), put("host", "h2", "not json")],
            &[event(None, None, "x")],
        );
        assert!(result.is_err());
        assert!(store.fleet_rows().unwrap().is_empty());
        let all = FleetEventFilter {
            service: None,
            host: None,
            tenant: None,
            limit: 10,
        };
        assert!(store.fleet_events(&all).unwrap().is_empty());
    }

    #[test]
    fn events_are_filtered_newest_first() {
        let store = SqliteStore::open_in_memory().unwrap();
        store
            .apply_fleet_changes(
                &[],
                &[
                    event(Some("web"), Some("h1"), "first"),
                    event(Some("api"), Some("h1"), "second"),
                    event(Some("web"), Some("h2"), "third"),
                ],
            )
            .unwrap();
        let filter = |service: Option<&str>, host: Option<&str>, limit| FleetEventFilter {
            service: service.map(str::to_owned),
            host: host.map(str::to_owned),
            tenant: None,
            limit,
        };
        let messages = |filter| {
            store
                .fleet_events(&filter)
                .unwrap()
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
        };
        assert_eq!(messages(filter(Some("web"), None, 10)), ["third", "first"]);
        assert_eq!(messages(filter(None, Some("h1"), 10)), ["second", "first"]);
        assert_eq!(messages(filter(None, None, 1)), ["third"]);
        let first = &store.fleet_events(&filter(None, None, 10)).unwrap()[2];
        assert_eq!(first.by.as_ref().map(TokenId::as_str), Some("tok_a"));
        assert_eq!(first.tenant.as_deref(), Some("acme"));
        assert!(first.id > 0);
    }
}
