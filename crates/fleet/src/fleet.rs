//! The fleet state, its derived indexes, and the transaction machinery every operation uses.
//!
//! Operations run inside [`Fleet::transact`]: they read the current state, decide, and mutate it
//! only through the `put_*` primitives below. Each primitive records the previous value of the
//! row it touches (the undo journal) and the row-level [`Change`]. If the operation fails, the
//! journal is replayed backwards and the state is exactly what it was; if it succeeds, the
//! changes and events are returned. No operation clones the state.
//!
//! Primary state is the rows (zones, hosts, instances, ...); everything in [`Indexes`] is a
//! function of them, maintained by the `raw_put_*` functions, and rebuilt by
//! [`Fleet::restore`].

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::drain::Move;
use crate::error::FleetError;
use crate::events::{Change, Event, Outcome};
use crate::inventory::{DataCenter, Host, HostState, Zone};
use crate::ipam::{AddressRange, Cidr, Ipam, Lease, RangeUsage};
use crate::name::{
    DcName, HostName, InstanceId, MoveId, ServiceName, TemplateName, TenantName, ZoneName,
};
use crate::placement::{DcPlacement, HostLoad};
use crate::resources::Resources;
use crate::service::{Instance, InstanceState, Service};
use crate::template::Template;

/// Fleets up to this many instances check every invariant after every operation in debug
/// builds; bigger ones skip it (it is O(fleet size)).
pub const DEBUG_INVARIANT_CHECK_INSTANCES_MAX: usize = 2_000;

/// The whole fleet: inventory, address ranges, templates, services, instances, moves.
///
/// Serialises as a [`FleetSnapshot`]; deserialising validates it and rebuilds the indexes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(into = "FleetSnapshot", try_from = "FleetSnapshot")]
pub struct Fleet {
    pub(crate) zones: BTreeMap<ZoneName, Zone>,
    pub(crate) data_centers: BTreeMap<DcName, DataCenter>,
    pub(crate) hosts: BTreeMap<HostName, Host>,
    pub(crate) ranges: BTreeMap<Cidr, AddressRange>,
    pub(crate) templates: BTreeMap<TemplateName, Template>,
    pub(crate) services: BTreeMap<ServiceName, Service>,
    pub(crate) quotas: BTreeMap<TenantName, Resources>,
    pub(crate) instances: BTreeMap<InstanceId, Instance>,
    pub(crate) moves: BTreeMap<MoveId, Move>,
    pub(crate) next_instance_id: u64,
    pub(crate) next_move_id: u64,
    pub(crate) ix: Indexes,
}

/// Everything derived from the rows, for fast placement and look-ups.
///
/// `host_load` and `services` are hash maps: they are only looked up, never iterated, so their
/// order cannot leak into a decision, and they are the hottest look-ups of a placement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Indexes {
    /// Per data center, its `up` hosts ordered by free capacity.
    pub(crate) placement: BTreeMap<DcName, DcPlacement>,
    /// Per host (every state), what it carries.
    pub(crate) host_load: HashMap<HostName, HostLoad>,
    /// Per service, its instances and the hosts they are on.
    pub(crate) services: HashMap<ServiceName, ServiceIndex>,
    /// Instances waiting for capacity.
    pub(crate) pending: BTreeSet<InstanceId>,
    /// Address allocator and lease table.
    pub(crate) ipam: Ipam,
    /// Per tenant, the resources its services ask for.
    pub(crate) tenant_usage: BTreeMap<TenantName, Resources>,
    /// Per instance taking part in a move (as the old one or the replacement), the move.
    pub(crate) move_of: BTreeMap<InstanceId, MoveId>,
    /// Hosts in the `draining` state.
    pub(crate) draining: BTreeSet<HostName>,
}

/// Instances of one service and the hosts they use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServiceIndex {
    pub(crate) instances: BTreeSet<InstanceId>,
    pub(crate) hosts: BTreeMap<HostName, u32>,
}

/// A whole fleet as plain rows: what a server stores and loads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSnapshot {
    /// Zones.
    pub zones: Vec<Zone>,
    /// Data centers.
    pub data_centers: Vec<DataCenter>,
    /// Hosts.
    pub hosts: Vec<Host>,
    /// Address ranges.
    pub ranges: Vec<AddressRange>,
    /// Templates.
    pub templates: Vec<Template>,
    /// Services.
    pub services: Vec<Service>,
    /// Tenant quotas.
    pub quotas: Vec<TenantQuota>,
    /// Instances (leases are their `ip` fields).
    pub instances: Vec<Instance>,
    /// Moves in progress.
    pub moves: Vec<Move>,
    /// Next instance id to hand out.
    pub next_instance_id: u64,
    /// Next move id to hand out.
    pub next_move_id: u64,
}

/// A tenant's resource limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantQuota {
    /// The tenant.
    pub tenant: TenantName,
    /// Most resources its services may ask for, in all.
    pub limits: Resources,
}

/// Work in progress of one operation: what changed, what was decided, how to undo it.
pub(crate) struct Txn {
    pub(crate) changes: Vec<Change>,
    pub(crate) events: Vec<Event>,
    undo: Vec<Undo>,
    counters_before: (u64, u64),
}

/// Whether a transaction settles (places pending instances, retries moves) at its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settle {
    After,
    Skip,
}

enum Undo {
    Zone(ZoneName, Option<Zone>),
    DataCenter(DcName, Option<DataCenter>),
    Host(HostName, Option<Host>),
    Range(Cidr, Option<AddressRange>),
    Template(TemplateName, Option<Box<Template>>),
    Service(ServiceName, Option<Service>),
    Quota(TenantName, Option<Resources>),
    Instance(InstanceId, Option<Instance>),
    Move(MoveId, Option<Move>),
}

impl Txn {
    pub(crate) fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

impl Fleet {
    /// An empty fleet.
    pub fn new() -> Fleet {
        Fleet::default()
    }

    /// Runs `operation` all-or-nothing: on error every change it made is undone.
    ///
    /// After the operation, pending instances and blocked moves get another chance
    /// ([`Fleet::settle`]), since most operations can free capacity.
    pub(crate) fn transact<T>(
        &mut self,
        operation: impl FnOnce(&mut Fleet, &mut Txn) -> Result<T, FleetError>,
    ) -> Result<(T, Outcome), FleetError> {
        self.transact_with(Settle::After, operation)
    }

    /// [`Fleet::transact`], choosing whether to settle afterwards. Only operations that cannot
    /// add capacity (a heartbeat of a host that stays up) skip it, since settling rescans
    /// pending instances.
    pub(crate) fn transact_with<T>(
        &mut self,
        settle: Settle,
        operation: impl FnOnce(&mut Fleet, &mut Txn) -> Result<T, FleetError>,
    ) -> Result<(T, Outcome), FleetError> {
        // Most operations make a handful of changes: reserve for them up front.
        let mut txn = Txn {
            changes: Vec::with_capacity(8),
            events: Vec::with_capacity(4),
            undo: Vec::with_capacity(8),
            counters_before: (self.next_instance_id, self.next_move_id),
        };
        let result = operation(self, &mut txn);
        if result.is_ok() && settle == Settle::After {
            self.settle(&mut txn);
        }
        match result {
            Ok(value) => {
                if (self.next_instance_id, self.next_move_id) != txn.counters_before {
                    txn.changes.push(Change::CountersAdvanced {
                        next_instance_id: self.next_instance_id,
                        next_move_id: self.next_move_id,
                    });
                }
                if cfg!(debug_assertions)
                    && self.instances.len() <= DEBUG_INVARIANT_CHECK_INSTANCES_MAX
                {
                    let violations = self.verify_invariants();
                    debug_assert!(violations.is_empty(), "invariants broken: {violations:#?}");
                }
                Ok((
                    value,
                    Outcome {
                        changes: txn.changes,
                        events: txn.events,
                    },
                ))
            }
            Err(error) => {
                self.rollback(txn);
                Err(error)
            }
        }
    }

    fn rollback(&mut self, txn: Txn) {
        for undo in txn.undo.into_iter().rev() {
            match undo {
                Undo::Zone(key, before) => {
                    self.raw_put_zone(key, before);
                }
                Undo::DataCenter(key, before) => {
                    self.raw_put_data_center(key, before);
                }
                Undo::Host(key, before) => {
                    self.raw_put_host(key, before);
                }
                Undo::Range(key, before) => {
                    self.raw_put_range(key, before);
                }
                Undo::Template(key, before) => {
                    self.raw_put_template(key, before.map(|t| *t));
                }
                Undo::Service(key, before) => {
                    self.raw_put_service(key, before);
                }
                Undo::Quota(key, before) => {
                    self.raw_put_quota(key, before);
                }
                Undo::Instance(key, before) => {
                    self.raw_put_instance(key, before);
                }
                Undo::Move(key, before) => {
                    self.raw_put_move(key, before);
                }
            }
        }
        (self.next_instance_id, self.next_move_id) = txn.counters_before;
    }

    // ---- Journaled primitives -------------------------------------------------------------

    pub(crate) fn put_zone(&mut self, txn: &mut Txn, name: ZoneName, zone: Option<Zone>) {
        txn.changes.push(match &zone {
            Some(zone) => Change::ZoneCreated { zone: zone.clone() },
            None => Change::ZoneDeleted { zone: name.clone() },
        });
        let before = self.raw_put_zone(name.clone(), zone);
        txn.undo.push(Undo::Zone(name, before));
    }

    pub(crate) fn put_data_center(
        &mut self,
        txn: &mut Txn,
        name: DcName,
        data_center: Option<DataCenter>,
    ) {
        txn.changes.push(match &data_center {
            Some(dc) => Change::DataCenterCreated {
                data_center: dc.clone(),
            },
            None => Change::DataCenterDeleted {
                data_center: name.clone(),
            },
        });
        let before = self.raw_put_data_center(name.clone(), data_center);
        txn.undo.push(Undo::DataCenter(name, before));
    }

    pub(crate) fn put_host(&mut self, txn: &mut Txn, name: HostName, host: Option<Host>) {
        txn.changes.push(match &host {
            Some(host) => Change::HostUpserted { host: host.clone() },
            None => Change::HostDeleted { host: name.clone() },
        });
        let before = self.raw_put_host(name.clone(), host);
        txn.undo.push(Undo::Host(name, before));
    }

    /// Records a heartbeat time only (no index depends on it).
    pub(crate) fn put_heartbeat(&mut self, txn: &mut Txn, name: &HostName, now_ms: u64) {
        if let Some(host) = self.hosts.get_mut(name) {
            txn.undo.push(Undo::Host(name.clone(), Some(host.clone())));
            host.last_heartbeat_ms = now_ms;
            txn.changes.push(Change::HostHeartbeat {
                host: name.clone(),
                last_heartbeat_ms: now_ms,
            });
        }
    }

    pub(crate) fn put_range(&mut self, txn: &mut Txn, cidr: Cidr, range: Option<AddressRange>) {
        txn.changes.push(match &range {
            Some(range) => Change::RangeAdded {
                range: range.clone(),
            },
            None => Change::RangeRemoved { range: cidr },
        });
        let before = self.raw_put_range(cidr, range);
        txn.undo.push(Undo::Range(cidr, before));
    }

    pub(crate) fn put_template(
        &mut self,
        txn: &mut Txn,
        name: TemplateName,
        template: Option<Template>,
    ) {
        txn.changes.push(match &template {
            Some(template) => Change::TemplateUpserted {
                template: Box::new(template.clone()),
            },
            None => Change::TemplateDeleted {
                template: name.clone(),
            },
        });
        let before = self.raw_put_template(name.clone(), template);
        txn.undo.push(Undo::Template(name, before.map(Box::new)));
    }

    pub(crate) fn put_service(
        &mut self,
        txn: &mut Txn,
        name: ServiceName,
        service: Option<Service>,
    ) {
        txn.changes.push(match &service {
            Some(service) => Change::ServiceUpserted {
                service: service.clone(),
            },
            None => Change::ServiceDeleted {
                service: name.clone(),
            },
        });
        let before = self.raw_put_service(name.clone(), service);
        txn.undo.push(Undo::Service(name, before));
    }

    pub(crate) fn put_quota(
        &mut self,
        txn: &mut Txn,
        tenant: TenantName,
        limits: Option<Resources>,
    ) {
        txn.changes.push(Change::QuotaSet {
            tenant: tenant.clone(),
            limits,
        });
        let before = self.raw_put_quota(tenant.clone(), limits);
        txn.undo.push(Undo::Quota(tenant, before));
    }

    pub(crate) fn put_instance(
        &mut self,
        txn: &mut Txn,
        id: InstanceId,
        instance: Option<Instance>,
    ) {
        let old_ip = self.instances.get(&id).and_then(|i| i.ip);
        let new_ip = instance.as_ref().and_then(|i| i.ip);
        let existed = self.instances.contains_key(&id);
        if old_ip != new_ip
            && let Some(ip) = old_ip
        {
            txn.changes.push(Change::LeaseReleased {
                lease: self.lease_of(ip, id),
            });
        }
        let before = self.raw_put_instance(id, instance);
        match self.instances.get(&id) {
            Some(now) if existed => txn.changes.push(Change::InstanceUpdated {
                instance: now.clone(),
            }),
            Some(now) => txn.changes.push(Change::InstanceCreated {
                instance: now.clone(),
            }),
            None => txn.changes.push(Change::InstanceRemoved { instance: id }),
        }
        if old_ip != new_ip
            && let Some(ip) = new_ip
        {
            txn.changes.push(Change::LeaseGranted {
                lease: self.lease_of(ip, id),
            });
        }
        txn.undo.push(Undo::Instance(id, before));
    }

    pub(crate) fn put_move(&mut self, txn: &mut Txn, id: MoveId, move_: Option<Move>) {
        txn.changes.push(match &move_ {
            Some(move_) => Change::MoveUpserted {
                move_: move_.clone(),
            },
            None => Change::MoveRemoved { id },
        });
        let before = self.raw_put_move(id, move_);
        txn.undo.push(Undo::Move(id, before));
    }

    /// Hands out the next instance id (restored on rollback).
    pub(crate) fn allocate_instance_id(&mut self) -> InstanceId {
        let id = InstanceId(self.next_instance_id);
        self.next_instance_id += 1;
        id
    }

    /// Hands out the next move id (restored on rollback).
    pub(crate) fn allocate_move_id(&mut self) -> MoveId {
        let id = MoveId(self.next_move_id);
        self.next_move_id += 1;
        id
    }

    fn lease_of(&self, ip: IpAddr, instance: InstanceId) -> Lease {
        let range = self.ix.ipam.range_of(ip);
        debug_assert!(range.is_some(), "lease {ip} outside every range");
        Lease {
            ip,
            // The fallback only shows in a lease record if the state is already corrupt.
            range: range.unwrap_or_else(|| {
                Cidr::new(ip, if ip.is_ipv6() { 128 } else { 32 })
                    .unwrap_or_else(|_| unreachable!("a full-length prefix is always valid"))
            }),
            instance,
        }
    }

    // ---- Index maintenance -----------------------------------------------------------------

    fn raw_put_zone(&mut self, name: ZoneName, zone: Option<Zone>) -> Option<Zone> {
        match zone {
            Some(zone) => self.zones.insert(name, zone),
            None => self.zones.remove(&name),
        }
    }

    fn raw_put_data_center(
        &mut self,
        name: DcName,
        data_center: Option<DataCenter>,
    ) -> Option<DataCenter> {
        match data_center {
            Some(dc) => self.data_centers.insert(name, dc),
            None => self.data_centers.remove(&name),
        }
    }

    fn raw_put_host(&mut self, name: HostName, host: Option<Host>) -> Option<Host> {
        let before = self.hosts.remove(&name);
        if let Some(old) = &before {
            self.ix.unindex_host(old);
        }
        if let Some(new) = host {
            self.ix.index_host(&new);
            self.hosts.insert(name, new);
        }
        before
    }

    fn raw_put_range(&mut self, cidr: Cidr, range: Option<AddressRange>) -> Option<AddressRange> {
        let before = self.ranges.remove(&cidr);
        if let Some(old) = &before {
            self.ix.ipam.remove_range(old);
        }
        if let Some(new) = range {
            self.ix.ipam.add_range(&new);
            self.ranges.insert(cidr, new);
        }
        before
    }

    fn raw_put_template(
        &mut self,
        name: TemplateName,
        template: Option<Template>,
    ) -> Option<Template> {
        match template {
            Some(t) => self.templates.insert(name, t),
            None => self.templates.remove(&name),
        }
    }

    fn raw_put_service(&mut self, name: ServiceName, service: Option<Service>) -> Option<Service> {
        // Tenants without demand have no entry.
        if let Some(new) = &service
            && new.demand() != Resources::ZERO
        {
            let usage = self.ix.tenant_usage.entry(new.tenant.clone()).or_default();
            *usage = usage.saturating_add(&new.demand());
        }
        // One look-up in the (big) service map, whether it inserts, replaces or removes.
        let before = match (self.services.entry(name), service) {
            (Entry::Occupied(mut entry), Some(new)) => Some(entry.insert(new)),
            (Entry::Occupied(entry), None) => Some(entry.remove()),
            (Entry::Vacant(entry), Some(new)) => {
                entry.insert(new);
                None
            }
            (Entry::Vacant(_), None) => None,
        };
        if let Some(old) = &before
            && let Some(usage) = self.ix.tenant_usage.get_mut(&old.tenant)
        {
            *usage = usage.saturating_sub(&old.demand());
            if *usage == Resources::ZERO {
                self.ix.tenant_usage.remove(&old.tenant);
            }
        }
        before
    }

    fn raw_put_quota(
        &mut self,
        tenant: TenantName,
        limits: Option<Resources>,
    ) -> Option<Resources> {
        match limits {
            Some(limits) => self.quotas.insert(tenant, limits),
            None => self.quotas.remove(&tenant),
        }
    }

    fn raw_put_instance(&mut self, id: InstanceId, instance: Option<Instance>) -> Option<Instance> {
        let before = self.instances.remove(&id);
        if let Some(old) = &before {
            self.ix.unindex_instance(old);
        }
        if let Some(new) = instance {
            debug_assert_eq!(new.id, id);
            self.ix.index_instance(&new);
            self.instances.insert(id, new);
        }
        before
    }

    fn raw_put_move(&mut self, id: MoveId, move_: Option<Move>) -> Option<Move> {
        let before = self.moves.remove(&id);
        if let Some(old) = &before {
            self.ix.move_of.remove(&old.instance);
            if let Some(replacement) = old.replacement {
                self.ix.move_of.remove(&replacement);
            }
        }
        if let Some(new) = move_ {
            self.ix.move_of.insert(new.instance, id);
            if let Some(replacement) = new.replacement {
                self.ix.move_of.insert(replacement, id);
            }
            self.moves.insert(id, new);
        }
        before
    }

    // ---- Snapshots -------------------------------------------------------------------------

    /// The fleet as plain rows.
    pub fn snapshot(&self) -> FleetSnapshot {
        FleetSnapshot {
            zones: self.zones.values().cloned().collect(),
            data_centers: self.data_centers.values().cloned().collect(),
            hosts: self.hosts.values().cloned().collect(),
            ranges: self.ranges.values().cloned().collect(),
            templates: self.templates.values().cloned().collect(),
            services: self.services.values().cloned().collect(),
            quotas: self
                .quotas
                .iter()
                .map(|(tenant, limits)| TenantQuota {
                    tenant: tenant.clone(),
                    limits: *limits,
                })
                .collect(),
            instances: self.instances.values().cloned().collect(),
            moves: self.moves.values().cloned().collect(),
            next_instance_id: self.next_instance_id,
            next_move_id: self.next_move_id,
        }
    }

    /// Rebuilds a fleet from rows, checking that they are consistent, and rebuilds the indexes.
    ///
    /// It does not place pending instances: call an operation (e.g. [`Fleet::place_pending`])
    /// for that.
    pub fn restore(snapshot: FleetSnapshot) -> Result<Fleet, FleetError> {
        crate::invariants::restore(snapshot)
    }

    pub(crate) fn restore_unchecked_row_insert(&mut self, snapshot: FleetSnapshot) {
        for zone in snapshot.zones {
            self.raw_put_zone(zone.name.clone(), Some(zone));
        }
        for dc in snapshot.data_centers {
            self.raw_put_data_center(dc.name.clone(), Some(dc));
        }
        for host in snapshot.hosts {
            self.raw_put_host(host.name.clone(), Some(host));
        }
        for range in snapshot.ranges {
            self.raw_put_range(range.cidr, Some(range));
        }
        for template in snapshot.templates {
            self.raw_put_template(template.name.clone(), Some(template));
        }
        for service in snapshot.services {
            self.raw_put_service(service.name.clone(), Some(service));
        }
        for quota in snapshot.quotas {
            self.raw_put_quota(quota.tenant, Some(quota.limits));
        }
        // Ascending addresses, so that the allocator walks each gap once.
        let mut instances = snapshot.instances;
        instances.sort_by_key(|i| i.ip);
        for instance in instances {
            self.raw_put_instance(instance.id, Some(instance));
        }
        for move_ in snapshot.moves {
            self.raw_put_move(move_.id, Some(move_));
        }
        self.next_instance_id = snapshot.next_instance_id;
        self.next_move_id = snapshot.next_move_id;
    }

    // ---- Queries ---------------------------------------------------------------------------

    /// Zones, by name.
    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.zones.values()
    }

    /// Data centers, by name.
    pub fn data_centers(&self) -> impl Iterator<Item = &DataCenter> {
        self.data_centers.values()
    }

    /// Hosts, by name.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// One host.
    pub fn host(&self, name: &HostName) -> Option<&Host> {
        self.hosts.get(name)
    }

    /// Resources allocated on a host (placed, running and stopping instances).
    pub fn host_allocated(&self, name: &HostName) -> Option<Resources> {
        self.ix.host_load.get(name).map(|load| load.allocated)
    }

    /// Address ranges, by network.
    pub fn ranges(&self) -> impl Iterator<Item = &AddressRange> {
        self.ranges.values()
    }

    /// Leased and usable addresses of a range.
    pub fn range_usage(&self, cidr: &Cidr) -> Option<RangeUsage> {
        self.ix.ipam.usage(cidr)
    }

    /// Templates, by name.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    /// One template, as stored.
    pub fn template(&self, name: &TemplateName) -> Option<&Template> {
        self.templates.get(name)
    }

    /// Services, by name.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// One service.
    pub fn service(&self, name: &ServiceName) -> Option<&Service> {
        self.services.get(name)
    }

    /// Tenant quotas.
    pub fn quotas(&self) -> impl Iterator<Item = (&TenantName, &Resources)> {
        self.quotas.iter()
    }

    /// Resources a tenant's services ask for.
    pub fn tenant_usage(&self, tenant: &TenantName) -> Resources {
        self.ix
            .tenant_usage
            .get(tenant)
            .copied()
            .unwrap_or_default()
    }

    /// Every instance, by id.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    /// One instance.
    pub fn instance(&self, id: InstanceId) -> Option<&Instance> {
        self.instances.get(&id)
    }

    /// Instances of a service, by id.
    pub fn service_instances(&self, service: &ServiceName) -> Vec<&Instance> {
        self.ix
            .services
            .get(service)
            .into_iter()
            .flat_map(|index| &index.instances)
            .filter_map(|id| self.instances.get(id))
            .collect()
    }

    /// Instances on a host (any state), by id.
    pub fn host_instances(&self, host: &HostName) -> Vec<&Instance> {
        self.ix
            .host_load
            .get(host)
            .into_iter()
            .flat_map(|load| &load.instances)
            .filter_map(|id| self.instances.get(id))
            .collect()
    }

    /// Instances waiting for capacity, by id.
    pub fn pending_instances(&self) -> Vec<&Instance> {
        self.ix
            .pending
            .iter()
            .filter_map(|id| self.instances.get(id))
            .collect()
    }

    /// Moves in progress, by id.
    pub fn moves(&self) -> impl Iterator<Item = &Move> {
        self.moves.values()
    }

    /// Who holds an address ("who has 10.1.2.3?").
    pub fn lease_holder(&self, ip: IpAddr) -> Option<Lease> {
        self.ix
            .ipam
            .holder(ip)
            .map(|instance| self.lease_of(ip, instance))
    }

    /// The lease of an instance ("which address has i-42?").
    pub fn instance_lease(&self, id: InstanceId) -> Option<Lease> {
        let ip = self.instances.get(&id)?.ip?;
        Some(self.lease_of(ip, id))
    }

    /// Every lease, by address.
    pub fn leases(&self) -> Vec<Lease> {
        self.ix
            .ipam
            .leases()
            .iter()
            .map(|(ip, id)| self.lease_of(*ip, *id))
            .collect()
    }
}

impl From<Fleet> for FleetSnapshot {
    fn from(fleet: Fleet) -> FleetSnapshot {
        fleet.snapshot()
    }
}

impl TryFrom<FleetSnapshot> for Fleet {
    type Error = FleetError;
    fn try_from(snapshot: FleetSnapshot) -> Result<Fleet, FleetError> {
        Fleet::restore(snapshot)
    }
}

impl Indexes {
    fn index_host(&mut self, host: &Host) {
        let load = self
            .host_load
            .entry(host.name.clone())
            .or_insert_with(|| HostLoad::new(host.data_center.clone()));
        load.data_center = host.data_center.clone();
        load.capacity = host.capacity;
        load.up = host.state == HostState::Up;
        load.refresh_score();
        let (up, score) = (load.up, load.score);
        if host.state == HostState::Draining {
            self.draining.insert(host.name.clone());
        }
        let placement = self.placement.entry(host.data_center.clone()).or_default();
        placement.note_capacity(&host.capacity);
        if up {
            placement.insert(score, &host.name);
        }
    }

    fn unindex_host(&mut self, host: &Host) {
        self.draining.remove(&host.name);
        let Some(load) = self.host_load.get(&host.name) else {
            debug_assert!(false, "host {} was not indexed", host.name);
            return;
        };
        if load.up
            && let Some(placement) = self.placement.get_mut(&load.data_center)
        {
            placement.remove(load.score, &host.name);
        }
        // The load (allocated resources, instances) stays: only the host row is being replaced
        // or, for a deletion, it is empty (deletion is refused while instances remain).
        if load.instances.is_empty() {
            self.host_load.remove(&host.name);
        } else if let Some(load) = self.host_load.get_mut(&host.name) {
            load.up = false;
        }
    }

    fn index_instance(&mut self, instance: &Instance) {
        let service = self.services.entry(instance.service.clone()).or_default();
        service.instances.insert(instance.id);
        if let Some(host) = &instance.host {
            *service.hosts.entry(host.clone()).or_default() += 1;
            self.add_load(host, instance.id, &instance.resources);
        }
        if matches!(instance.state, InstanceState::Pending { .. }) {
            self.pending.insert(instance.id);
        }
        if let Some(ip) = instance.ip {
            self.ipam.claim(ip, instance.id);
        }
    }

    fn unindex_instance(&mut self, instance: &Instance) {
        if let Some(service) = self.services.get_mut(&instance.service) {
            service.instances.remove(&instance.id);
            if let Some(host) = &instance.host
                && let Some(count) = service.hosts.get_mut(host)
            {
                *count -= 1;
                if *count == 0 {
                    service.hosts.remove(host);
                }
            }
            if service.instances.is_empty() {
                self.services.remove(&instance.service);
            }
        }
        if let Some(host) = &instance.host {
            self.remove_load(host, instance.id, &instance.resources);
        }
        self.pending.remove(&instance.id);
        if let Some(ip) = instance.ip {
            self.ipam.release(ip);
        }
    }

    fn add_load(&mut self, host: &HostName, id: InstanceId, resources: &Resources) {
        let Some(load) = self.host_load.get_mut(host) else {
            debug_assert!(false, "instance {id} on unknown host {host}");
            return;
        };
        load.instances.insert(id);
        let old_score = load.score;
        load.allocated = load.allocated.saturating_add(resources);
        load.refresh_score();
        if load.up
            && load.score != old_score
            && let Some(placement) = self.placement.get_mut(&load.data_center)
        {
            placement.remove(old_score, host);
            placement.insert(load.score, host);
        }
    }

    fn remove_load(&mut self, host: &HostName, id: InstanceId, resources: &Resources) {
        let Some(load) = self.host_load.get_mut(host) else {
            debug_assert!(false, "instance {id} on unknown host {host}");
            return;
        };
        load.instances.remove(&id);
        let old_score = load.score;
        load.allocated = load.allocated.saturating_sub(resources);
        load.refresh_score();
        if load.up
            && load.score != old_score
            && let Some(placement) = self.placement.get_mut(&load.data_center)
        {
            placement.remove(old_score, host);
            placement.insert(load.score, host);
        }
    }
}
