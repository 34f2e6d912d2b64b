//! Inventory: zones, data centers, hosts, address ranges, templates and tenant quotas.
//!
//! Nothing in use can be deleted; the refusal lists what uses it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{FleetError, list_some};
use crate::events::{Event, EventKind, Outcome};
use crate::fleet::Fleet;
use crate::ipam::{AddressRange, Cidr};
use crate::name::{DcName, HostName, TemplateName, TenantName, ZoneName};
use crate::resources::Resources;
use crate::template::{self, Template};

/// Most labels per host.
pub const HOST_LABELS_MAX: usize = 64;
/// Longest label key or value, in bytes.
pub const HOST_LABEL_LEN_MAX: usize = 253;

/// An environment (e.g. `production`, `staging`) grouping data centers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The zone's name.
    pub name: ZoneName,
}

/// A data center, in one zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCenter {
    /// The data center's name.
    pub name: DcName,
    /// Its zone.
    pub zone: ZoneName,
}

/// Whether a host takes, keeps or has lost instances.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Receives new instances.
    #[default]
    Up,
    /// Keeps its instances while they are moved away; receives none.
    Draining,
    /// Stopped sending heartbeats; its instances were rescheduled elsewhere.
    Down,
    /// Out of service on purpose; must be empty.
    Maintenance,
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostState::Up => "up",
            HostState::Draining => "draining",
            HostState::Down => "down",
            HostState::Maintenance => "maintenance",
        })
    }
}

/// A machine that runs instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// The host's name.
    pub name: HostName,
    /// Its data center.
    pub data_center: DcName,
    /// What it can give to instances.
    pub capacity: Resources,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: HostState,
    /// When its agent last sent a heartbeat (or when it was registered).
    pub last_heartbeat_ms: u64,
}

/// A request to register a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// The host's name.
    pub name: HostName,
    /// Its data center.
    pub data_center: DcName,
    /// What it can give to instances.
    pub capacity: Resources,
    /// Free-form labels (default: none).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Initial state (default `up`; `draining` is refused).
    #[serde(default)]
    pub state: HostState,
}

/// A change of a host's capacity or labels; unset fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostUpdate {
    /// New capacity. Shrinking below what is allocated is accepted (the hardware is what it
    /// is); `check` then reports the host as over capacity and `migrate` fixes it.
    #[serde(default)]
    pub capacity: Option<Resources>,
    /// New labels (replace the old ones).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl Fleet {
    /// Creates a zone.
    pub fn create_zone(&mut self, name: ZoneName) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            if fleet.zones.contains_key(&name) {
                return Err(FleetError::already_exists(ZoneName::KIND, &name));
            }
            txn.event(Event::new(
                EventKind::InventoryChanged,
                format!("zone {name} created"),
            ));
            fleet.put_zone(txn, name.clone(), Some(Zone { name }));
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Deletes a zone that has no data centers.
    pub fn delete_zone(&mut self, name: &ZoneName) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            if !fleet.zones.contains_key(name) {
                return Err(FleetError::not_found(ZoneName::KIND, name));
            }
            let users: Vec<&DcName> = fleet
                .data_centers
                .values()
                .filter(|dc| &dc.zone == name)
                .map(|dc| &dc.name)
                .collect();
            if !users.is_empty() {
                return Err(in_use(
                    ZoneName::KIND,
                    name,
                    vec![plural("data center", &users)],
                ));
            }
            txn.event(Event::new(
                EventKind::InventoryChanged,
                format!("zone {name} deleted"),
            ));
            fleet.put_zone(txn, name.clone(), None);
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Creates a data center in a zone.
    pub fn create_data_center(
        &mut self,
        name: DcName,
        zone: &ZoneName,
    ) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            if fleet.data_centers.contains_key(&name) {
                return Err(FleetError::already_exists(DcName::KIND, &name));
            }
            if !fleet.zones.contains_key(zone) {
                return Err(FleetError::not_found(ZoneName::KIND, zone));
            }
            txn.event(
                Event::new(
                    EventKind::InventoryChanged,
                    format!("data center {name} created in zone {zone}"),
                )
                .data_center(&name),
            );
            let dc = DataCenter {
                name: name.clone(),
                zone: zone.clone(),
            };
            fleet.put_data_center(txn, name, Some(dc));
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Deletes a data center that has no hosts, templates, address ranges or services.
    pub fn delete_data_center(&mut self, name: &DcName) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            if !fleet.data_centers.contains_key(name) {
                return Err(FleetError::not_found(DcName::KIND, name));
            }
            let hosts: Vec<&HostName> = fleet
                .hosts
                .values()
                .filter(|h| &h.data_center == name)
                .map(|h| &h.name)
                .collect();
            let templates: Vec<&TemplateName> = fleet
                .templates
                .values()
                .filter(|t| t.data_center.as_ref() == Some(name))
                .map(|t| &t.name)
                .collect();
            let ranges: Vec<&Cidr> = fleet
                .ranges
                .values()
                .filter(|r| &r.data_center == name)
                .map(|r| &r.cidr)
                .collect();
            let services: Vec<_> = fleet
                .services
                .values()
                .filter(|s| s.members.iter().any(|m| &m.data_center == name))
                .map(|s| &s.name)
                .collect();
            let mut users = Vec::new();
            if !hosts.is_empty() {
                users.push(plural("host", &hosts));
            }
            if !templates.is_empty() {
                users.push(plural("template", &templates));
            }
            if !ranges.is_empty() {
                users.push(plural("address range", &ranges));
            }
            if !services.is_empty() {
                users.push(plural("service", &services));
            }
            if !users.is_empty() {
                return Err(in_use(DcName::KIND, name, users));
            }
            txn.event(
                Event::new(
                    EventKind::InventoryChanged,
                    format!("data center {name} deleted"),
                )
                .data_center(name),
            );
            fleet.put_data_center(txn, name.clone(), None);
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Registers a host; `now_ms` counts as its first heartbeat. Pending instances may then be
    /// placed on it.
    pub fn register_host(&mut self, spec: HostSpec, now_ms: u64) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            if fleet.hosts.contains_key(&spec.name) {
                return Err(FleetError::already_exists(HostName::KIND, &spec.name));
            }
            if !fleet.data_centers.contains_key(&spec.data_center) {
                return Err(FleetError::not_found(DcName::KIND, &spec.data_center));
            }
            validate_host(&spec.name, &spec.capacity, &spec.labels)?;
            if spec.state == HostState::Draining {
                return Err(FleetError::InvalidHost {
                    host: spec.name.to_string(),
                    reason: "a new host cannot start draining (it runs nothing)".to_owned(),
                });
            }
            txn.event(
                Event::new(
                    EventKind::HostRegistered,
                    format!(
                        "host {} registered in {} with {} ({})",
                        spec.name, spec.data_center, spec.capacity, spec.state
                    ),
                )
                .host(&spec.name)
                .data_center(&spec.data_center),
            );
            let host = Host {
                name: spec.name.clone(),
                data_center: spec.data_center,
                capacity: spec.capacity,
                labels: spec.labels,
                state: spec.state,
                last_heartbeat_ms: now_ms,
            };
            fleet.put_host(txn, spec.name, Some(host));
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Changes a host's capacity or labels.
    pub fn update_host(
        &mut self,
        name: &HostName,
        update: HostUpdate,
    ) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            let Some(host) = fleet.hosts.get(name) else {
                return Err(FleetError::not_found(HostName::KIND, name));
            };
            let mut host = host.clone();
            if let Some(capacity) = update.capacity {
                host.capacity = capacity;
            }
            if let Some(labels) = update.labels {
                host.labels = labels;
            }
            validate_host(name, &host.capacity, &host.labels)?;
            let allocated = fleet.host_allocated(name).unwrap_or_default();
            let over = allocated.exceeding(&host.capacity);
            let note = if over.is_empty() {
                String::new()
            } else {
                format!("; it is now over capacity ({} allocated)", allocated)
            };
            txn.event(
                Event::new(
                    EventKind::HostUpdated,
                    format!("host {name} updated: capacity {}{note}", host.capacity),
                )
                .host(name)
                .data_center(&host.data_center),
            );
            fleet.put_host(txn, name.clone(), Some(host));
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Deletes a host that runs nothing.
    pub fn delete_host(&mut self, name: &HostName) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            let Some(host) = fleet.hosts.get(name) else {
                return Err(FleetError::not_found(HostName::KIND, name));
            };
            let instances: Vec<String> = fleet
                .host_instances(name)
                .iter()
                .map(|i| format!("{} ({} group {})", i.id, i.service, i.group))
                .collect();
            if !instances.is_empty() {
                let mut users = vec![plural("instance", &instances)];
                users.push("drain it first".to_owned());
                return Err(FleetError::InUse {
                    kind: HostName::KIND,
                    name: name.to_string(),
                    used_by: users.join("; "),
                });
            }
            txn.event(
                Event::new(EventKind::HostDeleted, format!("host {name} deleted"))
                    .host(name)
                    .data_center(&host.data_center),
            );
            fleet.put_host(txn, name.clone(), None);
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Adds an address range to a data center. Ranges must not overlap anywhere in the fleet.
    pub fn add_range(&mut self, range: AddressRange) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            if !fleet.data_centers.contains_key(&range.data_center) {
                return Err(FleetError::not_found(DcName::KIND, &range.data_center));
            }
            range.validate()?;
            if let Some(other) = fleet.ranges.values().find(|r| r.cidr.overlaps(&range.cidr)) {
                return Err(FleetError::RangeOverlap {
                    range: range.cidr,
                    other: other.cidr,
                    other_data_center: other.data_center.clone(),
                });
            }
            txn.event(
                Event::new(
                    EventKind::InventoryChanged,
                    format!(
                        "address range {} added to {}",
                        range.cidr, range.data_center
                    ),
                )
                .data_center(&range.data_center),
            );
            fleet.put_range(txn, range.cidr, Some(range));
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Removes an address range without leases.
    pub fn remove_range(&mut self, cidr: &Cidr) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            let Some(range) = fleet.ranges.get(cidr) else {
                return Err(FleetError::not_found("address range", cidr));
            };
            let leases: Vec<String> = fleet
                .ix
                .ipam
                .leases_in(cidr)
                .iter()
                .map(|(ip, id)| format!("{ip} ({id})"))
                .collect();
            if !leases.is_empty() {
                return Err(in_use(
                    "address range",
                    cidr,
                    vec![plural("lease", &leases)],
                ));
            }
            txn.event(
                Event::new(
                    EventKind::InventoryChanged,
                    format!("address range {cidr} removed from {}", range.data_center),
                )
                .data_center(&range.data_center),
            );
            fleet.put_range(txn, *cidr, None);
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Creates or replaces a template. Its `extends` chain must resolve (no cycle, no missing
    /// link); it may stay incomplete (a base template). Services keep what they resolved until
    /// they are next updated.
    pub fn upsert_template(&mut self, template: Template) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            if let Some(dc) = &template.data_center
                && !fleet.data_centers.contains_key(dc)
            {
                return Err(FleetError::InvalidTemplate {
                    template: template.name.clone(),
                    reason: format!("data center {dc} does not exist"),
                });
            }
            let name = template.name.clone();
            let existed = fleet.templates.contains_key(&name);
            fleet.put_template(txn, name.clone(), Some(template));
            // Checked after the insertion so that a cycle through this template is seen.
            template::chain(&fleet.templates, &name)?;
            let verb = if existed { "updated" } else { "created" };
            txn.event(Event::new(
                EventKind::InventoryChanged,
                format!("template {name} {verb}"),
            ));
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// A template with its `extends` chain merged in; fails if it is incomplete.
    pub fn effective_template(
        &self,
        name: &TemplateName,
    ) -> Result<template::EffectiveTemplate, FleetError> {
        template::resolve(&self.templates, name)
    }

    /// Deletes a template no service uses and no template extends.
    pub fn delete_template(&mut self, name: &TemplateName) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            if !fleet.templates.contains_key(name) {
                return Err(FleetError::not_found(TemplateName::KIND, name));
            }
            let services: Vec<_> = fleet
                .services
                .values()
                .filter(|s| s.members.iter().any(|m| &m.template == name))
                .map(|s| &s.name)
                .collect();
            let children: Vec<&TemplateName> = fleet
                .templates
                .values()
                .filter(|t| t.extends.as_ref() == Some(name))
                .map(|t| &t.name)
                .collect();
            let mut users = Vec::new();
            if !services.is_empty() {
                users.push(plural("service", &services));
            }
            if !children.is_empty() {
                users.push(format!("{} (extending it)", plural("template", &children)));
            }
            if !users.is_empty() {
                return Err(in_use(TemplateName::KIND, name, users));
            }
            txn.event(Event::new(
                EventKind::InventoryChanged,
                format!("template {name} deleted"),
            ));
            fleet.put_template(txn, name.clone(), None);
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Sets (or, with `None`, removes) a tenant's quota. A tenant without a quota is unlimited.
    /// Lowering a quota below current usage is accepted: only new requests are refused.
    pub fn set_tenant_quota(
        &mut self,
        tenant: TenantName,
        limits: Option<Resources>,
    ) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            let message = match &limits {
                Some(limits) => format!("quota of tenant {tenant} set to {limits}"),
                None => format!("quota of tenant {tenant} removed"),
            };
            txn.event(Event::new(EventKind::InventoryChanged, message));
            fleet.put_quota(txn, tenant, limits);
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }
}

fn validate_host(
    name: &HostName,
    capacity: &Resources,
    labels: &BTreeMap<String, String>,
) -> Result<(), FleetError> {
    let invalid = |reason: String| FleetError::InvalidHost {
        host: name.to_string(),
        reason,
    };
    if capacity.cpu_millis == 0 || capacity.memory_bytes == 0 {
        return Err(invalid(
            "capacity.cpu_millis and capacity.memory_bytes must be positive".to_owned(),
        ));
    }
    if labels.len() > HOST_LABELS_MAX {
        return Err(invalid(format!(
            "at most {HOST_LABELS_MAX} labels are allowed (got {})",
            labels.len()
        )));
    }
    for (key, value) in labels {
        if key.is_empty() || key.len() > HOST_LABEL_LEN_MAX || value.len() > HOST_LABEL_LEN_MAX {
            return Err(invalid(format!(
                "label {key:?}: keys must be 1 to {HOST_LABEL_LEN_MAX} bytes long and values \
                 at most {HOST_LABEL_LEN_MAX}"
            )));
        }
    }
    Ok(())
}

fn in_use(kind: &'static str, name: impl fmt::Display, users: Vec<String>) -> FleetError {
    FleetError::InUse {
        kind,
        name: name.to_string(),
        used_by: users.join(" and "),
    }
}

/// `host h1` or `hosts h1, h2`.
fn plural<T: fmt::Display>(noun: &str, items: &[T]) -> String {
    let s = if items.len() == 1 { "" } else { "s" };
    format!("{noun}{s} {}", list_some(items))
}
