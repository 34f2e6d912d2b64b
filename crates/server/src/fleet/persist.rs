//! From fleet changes to store rows and back.
//!
//! Each row of the fleet state is stored as `(kind, id, JSON body)`: one row per zone, data
//! center, host, range, template, service, quota, instance and move, plus the id counters.
//! Leases are not rows: an instance's address is its lease, so `LeaseGranted`/`LeaseReleased`
//! need no write of their own. Heartbeat times are not written either (see the module
//! documentation of `fleet`). Loading reads every row back into a [`FleetSnapshot`], which
//! [`Fleet::restore`] checks for consistency.

use std::collections::BTreeMap;

use caravan_fleet::{
    Change, Event, EventKind, Fleet, FleetSnapshot, HostState, Outcome, TenantQuota,
};
use caravan_store::{ControlStore, FleetEventRecord, FleetRow, FleetRowChange, StoreError};
use caravan_tenancy::TokenId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::OwnerHints;

const ZONE: &str = "zone";
const DATA_CENTER: &str = "data_center";
const HOST: &str = "host";
const RANGE: &str = "range";
const TEMPLATE: &str = "template";
const SERVICE: &str = "service";
const QUOTA: &str = "quota";
const INSTANCE: &str = "instance";
const MOVE: &str = "move";
const COUNTERS: &str = "counters";
/// The id of the one counters row.
const COUNTERS_ID: &str = "fleet";

/// The id counters, as stored.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Counters {
    next_instance_id: u64,
    next_move_id: u64,
}

/// Whether loading places pending instances (and persists that) or leaves the state as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Settle {
    /// At start: place what can be placed now.
    PlacePending,
    /// After a failed write: keep memory equal to the store.
    Skip,
}

/// The store writes of an outcome: one put or delete per row it touched (the last change of a
/// row wins), and one record per event.
pub(super) fn records(
    fleet: &Fleet,
    outcome: &Outcome,
    by: Option<&TokenId>,
    hints: &OwnerHints,
    at: OffsetDateTime,
) -> Result<(Vec<FleetRowChange>, Vec<FleetEventRecord>), serde_json::Error> {
    let mut rows: BTreeMap<(&'static str, String), Option<String>> = BTreeMap::new();
    for change in &outcome.changes {
        let (kind, id, body) = match change {
            Change::ZoneCreated { zone } => (ZONE, zone.name.to_string(), Some(json(zone)?)),
            Change::ZoneDeleted { zone } => (ZONE, zone.to_string(), None),
            Change::DataCenterCreated { data_center } => (
                DATA_CENTER,
                data_center.name.to_string(),
                Some(json(data_center)?),
            ),
            Change::DataCenterDeleted { data_center } => {
                (DATA_CENTER, data_center.to_string(), None)
            }
            Change::HostUpserted { host } => (HOST, host.name.to_string(), Some(json(host)?)),
            Change::HostDeleted { host } => (HOST, host.to_string(), None),
            Change::RangeAdded { range } => (RANGE, range.cidr.to_string(), Some(json(range)?)),
            Change::RangeRemoved { range } => (RANGE, range.to_string(), None),
            Change::TemplateUpserted { template } => {
                (TEMPLATE, template.name.to_string(), Some(json(template)?))
            }
            Change::TemplateDeleted { template } => (TEMPLATE, template.to_string(), None),
            Change::ServiceUpserted { service } => {
                (SERVICE, service.name.to_string(), Some(json(service)?))
            }
            Change::ServiceDeleted { service } => (SERVICE, service.to_string(), None),
            Change::QuotaSet { tenant, limits } => {
                let body = match limits {
                    Some(limits) => Some(json(&TenantQuota {
                        tenant: tenant.clone(),
                        limits: *limits,
                    })?),
                    None => None,
                };
                (QUOTA, tenant.to_string(), body)
            }
            Change::InstanceCreated { instance } | Change::InstanceUpdated { instance } => {
                (INSTANCE, instance.id.0.to_string(), Some(json(instance)?))
            }
            Change::InstanceRemoved { instance } => (INSTANCE, instance.0.to_string(), None),
            Change::MoveUpserted { move_ } => (MOVE, move_.id.0.to_string(), Some(json(move_)?)),
            Change::MoveRemoved { id } => (MOVE, id.0.to_string(), None),
            Change::CountersAdvanced {
                next_instance_id,
                next_move_id,
            } => (
                COUNTERS,
                COUNTERS_ID.to_owned(),
                Some(json(&Counters {
                    next_instance_id: *next_instance_id,
                    next_move_id: *next_move_id,
                })?),
            ),
            // Derived from instance rows, or deliberately kept in memory only.
            Change::LeaseGranted { .. }
            | Change::LeaseReleased { .. }
            | Change::HostHeartbeat { .. } => continue,
        };
        rows.insert((kind, id), body);
    }
    let rows = rows
        .into_iter()
        .map(|((kind, id), body)| match body {
            Some(body_json) => FleetRowChange::Put(FleetRow {
                kind: kind.to_owned(),
                id,
                body_json,
            }),
            None => FleetRowChange::Delete {
                kind: kind.to_owned(),
                id,
            },
        })
        .collect();
    let events = outcome
        .events
        .iter()
        .map(|event| event_record(fleet, event, by, hints, at))
        .collect();
    Ok((rows, events))
}

fn event_record(
    fleet: &Fleet,
    event: &Event,
    by: Option<&TokenId>,
    hints: &OwnerHints,
    at: OffsetDateTime,
) -> FleetEventRecord {
    let tenant = event.service.as_ref().and_then(|service| {
        fleet
            .service(service)
            .map(|s| s.tenant.clone())
            .or_else(|| hints.get(service).cloned())
    });
    FleetEventRecord {
        id: 0,
        at,
        by: by.cloned(),
        kind: kind_name(event.kind),
        tenant: tenant.map(|t| t.to_string()),
        service: event.service.as_ref().map(ToString::to_string),
        instance: event.instance.map(|i| i.to_string()),
        host: event.host.as_ref().map(ToString::to_string),
        data_center: event.data_center.as_ref().map(ToString::to_string),
        message: event.message.clone(),
    }
}

/// The snake_case name of an event kind, as the API shows it.
fn kind_name(kind: EventKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{kind:?}"),
    }
}

fn json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(value)
}

/// Loads the fleet from the store (on a blocking thread). Every `up` or `draining` host counts
/// as having just sent a heartbeat (heartbeat times are not stored); with
/// [`Settle::PlacePending`], pending instances are placed where possible and that is persisted.
pub(super) fn load(
    store: &dyn ControlStore,
    now_ms: u64,
    settle: Settle,
) -> Result<Fleet, StoreError> {
    let snapshot = snapshot(store.fleet_rows()?).map_err(corrupt)?;
    let mut fleet = Fleet::restore(snapshot).map_err(|e| corrupt(e.to_string()))?;
    let alive: Vec<_> = fleet
        .hosts()
        .filter(|host| matches!(host.state, HostState::Up | HostState::Draining))
        .map(|host| host.name.clone())
        .collect();
    for host in alive {
        // Only moves a heartbeat time forward: nothing to persist.
        fleet
            .heartbeat(&host, now_ms)
            .map_err(|e| corrupt(e.to_string()))?;
    }
    if settle == Settle::PlacePending {
        let outcome = fleet.place_pending().map_err(|e| corrupt(e.to_string()))?;
        let (rows, events) = records(
            &fleet,
            &outcome,
            None,
            &OwnerHints::new(),
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| corrupt(e.to_string()))?;
        if !rows.is_empty() || !events.is_empty() {
            store.apply_fleet_changes(&rows, &events)?;
        }
    }
    Ok(fleet)
}

/// Rebuilds a snapshot from every row.
fn snapshot(rows: Vec<FleetRow>) -> Result<FleetSnapshot, String> {
    let mut snapshot = FleetSnapshot::default();
    for row in rows {
        let FleetRow {
            kind,
            id,
            body_json,
        } = row;
        let body = body_json.as_str();
        let read = |what: &str| format!("fleet row {kind}/{id} is not a valid {what}");
        match kind.as_str() {
            ZONE => snapshot.zones.push(parse(body).map_err(|e| read(&e))?),
            DATA_CENTER => snapshot
                .data_centers
                .push(parse(body).map_err(|e| read(&e))?),
            HOST => snapshot.hosts.push(parse(body).map_err(|e| read(&e))?),
            RANGE => snapshot.ranges.push(parse(body).map_err(|e| read(&e))?),
            TEMPLATE => snapshot.templates.push(parse(body).map_err(|e| read(&e))?),
            SERVICE => snapshot.services.push(parse(body).map_err(|e| read(&e))?),
            QUOTA => snapshot.quotas.push(parse(body).map_err(|e| read(&e))?),
            INSTANCE => snapshot.instances.push(parse(body).map_err(|e| read(&e))?),
            MOVE => snapshot.moves.push(parse(body).map_err(|e| read(&e))?),
            COUNTERS => {
                let counters: Counters = parse(body).map_err(|e| read(&e))?;
                snapshot.next_instance_id = counters.next_instance_id;
                snapshot.next_move_id = counters.next_move_id;
            }
            other => return Err(format!("unknown fleet row kind {other:?} (id {id})")),
        }
    }
    Ok(snapshot)
}

fn parse<T: DeserializeOwned>(body: &str) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| format!("row: {e}"))
}

fn corrupt(message: String) -> StoreError {
    StoreError::Backend(message.into())
}

#[cfg(test)]
mod tests {
    use caravan_fleet::{
        AddressRange, HostName, HostSpec, PlacementPolicy, ResourceOverride, Resources,
        ServiceSpec, Template, TemplateName,
    };
    use caravan_store::SqliteStore;

    use super::*;

    const GIB: u64 = 1 << 30;

    /// Applies each outcome to the fleet and the store, as the server does.
    fn apply(store: &SqliteStore, fleet: &Fleet, outcome: Outcome) {
        let (rows, events) = records(
            fleet,
            &outcome,
            None,
            &OwnerHints::new(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        store.apply_fleet_changes(&rows, &events).unwrap();
    }

    #[test]
    fn the_store_reloads_what_the_fleet_decided() {
        let store = SqliteStore::open_in_memory().unwrap();
        let mut fleet = Fleet::new();
        let production = "production".parse().unwrap();
        let o = fleet.create_zone("production".parse().unwrap()).unwrap();
        apply(&store, &fleet, o);
        for d in 1..=2 {
            let dc = format!("dc{d}");
            let o = fleet
                .create_data_center(dc.parse().unwrap(), &production)
                .unwrap();
            apply(&store, &fleet, o);
            let range = AddressRange {
                cidr: format!("10.{d}.0.0/24").parse().unwrap(),
                data_center: dc.parse().unwrap(),
                gateway: None,
                reserved: Default::default(),
            };
            let o = fleet.add_range(range).unwrap();
            apply(&store, &fleet, o);
            let mut template = Template::named(format!("web_{dc}").parse().unwrap());
            template.data_center = Some(dc.parse().unwrap());
            template.resources = ResourceOverride {
                cpu_millis: Some(500),
                memory_bytes: Some(GIB),
                disk_bytes: Some(GIB),
            };
            template.run.command = Some("/usr/bin/web".to_owned());
            let o = fleet.upsert_template(template).unwrap();
            apply(&store, &fleet, o);
            for h in 1..=2 {
                let spec = HostSpec {
                    name: format!("{dc}-h{h}").parse().unwrap(),
                    data_center: dc.parse().unwrap(),
                    capacity: Resources {
                        cpu_millis: 4000,
                        memory_bytes: 8 * GIB,
                        disk_bytes: 100 * GIB,
                    },
                    labels: Default::default(),
                    state: HostState::Up,
                };
                let o = fleet.register_host(spec, 1).unwrap();
                apply(&store, &fleet, o);
            }
        }
        let spec = ServiceSpec {
            name: "web".parse().unwrap(),
            tenant: "acme".parse().unwrap(),
            templates: vec![
                "web_dc1".parse::<TemplateName>().unwrap(),
                "web_dc2".parse().unwrap(),
            ],
            groups: 2,
            resources: ResourceOverride::default(),
            policy: PlacementPolicy::Spread,
        };
        let o = fleet.create_service(spec).unwrap();
        apply(&store, &fleet, o);
        let h1: HostName = "dc1-h1".parse().unwrap();
        let o = fleet.set_host_state(&h1, HostState::Down).unwrap();
        apply(&store, &fleet, o);
        let o = fleet.heartbeat(&"dc2-h1".parse().unwrap(), 50).unwrap();
        apply(&store, &fleet, o);

        let loaded = load(&store, 1, Settle::Skip).unwrap();
        let mut expected = fleet.snapshot();
        let mut actual = loaded.snapshot();
        // Heartbeat times are not persisted.
        for host in expected.hosts.iter_mut().chain(actual.hosts.iter_mut()) {
            host.last_heartbeat_ms = 0;
        }
        expected.instances.sort_by_key(|i| i.id);
        actual.instances.sort_by_key(|i| i.id);
        assert_eq!(actual, expected);
        assert!(
            store
                .fleet_rows()
                .unwrap()
                .iter()
                .any(|r| r.kind == COUNTERS)
        );
    }

    #[test]
    fn the_last_change_of_a_row_wins() {
        let mut fleet = Fleet::new();
        let mut outcome = fleet.create_zone("z".parse().unwrap()).unwrap();
        let deleted = fleet.delete_zone(&"z".parse().unwrap()).unwrap();
        outcome.changes.extend(deleted.changes);
        let (rows, events) = records(
            &fleet,
            &outcome,
            None,
            &OwnerHints::new(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![FleetRowChange::Delete {
                kind: "zone".into(),
                id: "z".into()
            }]
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "inventory_changed");
    }

    #[test]
    fn unknown_rows_are_refused() {
        let rows = vec![FleetRow {
            kind: "spaceship".into(),
            id: "x".into(),
            body_json: "{}".into(),
        }];
        assert!(
            snapshot(rows)
                .unwrap_err()
                .contains("unknown fleet row kind")
        );
    }
}
