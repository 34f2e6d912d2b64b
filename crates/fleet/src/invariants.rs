//! Restoring a fleet from rows, and checking that a fleet is consistent.
//!
//! [`Fleet::verify_invariants`] is what the property tests assert after every operation, and
//! what debug builds assert after every transaction on small fleets.

use std::collections::{BTreeMap, BTreeSet};

use crate::drain::MoveState;
use crate::error::FleetError;
use crate::fleet::{Fleet, FleetSnapshot};
use crate::inventory::HostState;
use crate::ipam::Ipam;
use crate::service::{InstanceState, SERVICE_GROUPS_MAX, Slot, Target};
use crate::template;

/// See [`Fleet::restore`].
pub(crate) fn restore(snapshot: FleetSnapshot) -> Result<Fleet, FleetError> {
    validate_snapshot(&snapshot).map_err(|reason| FleetError::InvalidSnapshot { reason })?;
    let mut fleet = Fleet::new();
    fleet.restore_unchecked_row_insert(snapshot);
    Ok(fleet)
}

fn unique<'a, T: Ord + std::fmt::Display + 'a>(
    kind: &str,
    names: impl Iterator<Item = &'a T>,
) -> Result<BTreeSet<&'a T>, String> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(format!("{kind} {name} appears twice"));
        }
    }
    Ok(seen)
}

fn validate_snapshot(s: &FleetSnapshot) -> Result<(), String> {
    let zones = unique("zone", s.zones.iter().map(|z| &z.name))?;
    unique("data center", s.data_centers.iter().map(|d| &d.name))?;
    let dcs: BTreeMap<_, _> = s.data_centers.iter().map(|d| (&d.name, d)).collect();
    for dc in &s.data_centers {
        if !zones.contains(&dc.zone) {
            return Err(format!(
                "data center {} is in unknown zone {}",
                dc.name, dc.zone
            ));
        }
    }
    unique("host", s.hosts.iter().map(|h| &h.name))?;
    let hosts: BTreeMap<_, _> = s.hosts.iter().map(|h| (&h.name, h)).collect();
    for host in &s.hosts {
        if !dcs.contains_key(&host.data_center) {
            return Err(format!(
                "host {} is in unknown data center {}",
                host.name, host.data_center
            ));
        }
    }
    let mut ipam = Ipam::default();
    for (index, range) in s.ranges.iter().enumerate() {
        if !dcs.contains_key(&range.data_center) {
            return Err(format!(
                "range {} is in unknown data center {}",
                range.cidr, range.data_center
            ));
        }
        range.validate().map_err(|e| e.to_string())?;
        if let Some(other) = s.ranges[..index]
            .iter()
            .find(|o| o.cidr.overlaps(&range.cidr))
        {
            return Err(format!("ranges {} and {} overlap", other.cidr, range.cidr));
        }
        ipam.add_range(range);
    }
    unique("template", s.templates.iter().map(|t| &t.name))?;
    let templates: BTreeMap<_, _> = s
        .templates
        .iter()
        .map(|t| (t.name.clone(), t.clone()))
        .collect();
    for name in templates.keys() {
        template::chain(&templates, name).map_err(|e| e.to_string())?;
    }
    unique("service", s.services.iter().map(|sv| &sv.name))?;
    let services: BTreeMap<_, _> = s.services.iter().map(|sv| (&sv.name, sv)).collect();
    for service in &s.services {
        if service.groups > SERVICE_GROUPS_MAX || service.members.is_empty() {
            return Err(format!("service {} has a bad shape", service.name));
        }
        let dcs_of_members: BTreeSet<_> = service.members.iter().map(|m| &m.data_center).collect();
        if dcs_of_members.len() != service.members.len() {
            return Err(format!(
                "service {} has two members in one data center",
                service.name
            ));
        }
        if let Some(m) = service
            .members
            .iter()
            .find(|m| !dcs.contains_key(&m.data_center))
        {
            return Err(format!(
                "service {} uses unknown data center {}",
                service.name, m.data_center
            ));
        }
    }
    unique("tenant quota", s.quotas.iter().map(|q| &q.tenant))?;
    let mut ids = BTreeSet::new();
    let mut instances: Vec<_> = s.instances.iter().collect();
    instances.sort_by_key(|i| i.ip);
    for instance in instances {
        let id = instance.id;
        if !ids.insert(id) {
            return Err(format!("instance {id} appears twice"));
        }
        if id.0 >= s.next_instance_id {
            return Err(format!("instance {id} is not below the id counter"));
        }
        let Some(service) = services.get(&instance.service) else {
            return Err(format!(
                "instance {id} has unknown service {}",
                instance.service
            ));
        };
        if instance.member as usize >= service.members.len() || instance.group == 0 {
            return Err(format!("instance {id} has a bad group or member"));
        }
        let pending = matches!(instance.state, InstanceState::Pending { .. });
        match (&instance.host, instance.ip, pending) {
            (None, None, true) => {}
            (Some(host), Some(ip), false) => {
                let Some(record) = hosts.get(host) else {
                    return Err(format!("instance {id} is on unknown host {host}"));
                };
                if record.data_center != instance.data_center {
                    return Err(format!(
                        "instance {id} is on {host}, outside its data center"
                    ));
                }
                let in_dc = ipam
                    .range_of(ip)
                    .and_then(|cidr| s.ranges.iter().find(|r| r.cidr == cidr))
                    .is_some_and(|r| r.data_center == instance.data_center);
                if !in_dc || !ipam.is_leasable(ip) {
                    return Err(format!(
                        "instance {id} has address {ip}, not leasable in {}",
                        instance.data_center
                    ));
                }
                ipam.claim(ip, id);
            }
            _ => {
                return Err(format!(
                    "instance {id} must have a host and an address unless pending, and neither \
                     when pending"
                ));
            }
        }
    }
    let mut in_moves = BTreeSet::new();
    for move_ in &s.moves {
        if move_.id.0 >= s.next_move_id {
            return Err(format!("move {} is not below the id counter", move_.id));
        }
        for id in std::iter::once(move_.instance).chain(move_.replacement) {
            if !ids.contains(&id) {
                return Err(format!("move {} refers to unknown instance {id}", move_.id));
            }
            if !in_moves.insert(id) {
                return Err(format!("instance {id} takes part in two moves"));
            }
        }
    }
    Ok(())
}

impl Fleet {
    /// Every broken invariant, as a sentence (empty: the fleet is consistent):
    /// - the derived indexes equal a rebuild from the rows;
    /// - pending instances have no host and no address; others have both, on a host of their
    ///   data center, with an address of a range of that data center; every lease belongs to an
    ///   instance (the lease table is derived from the instances' addresses);
    /// - members of a group are in distinct data centers (their template's);
    /// - no `placed`/`running` instance is on a `down` or `maintenance` host; every instance on
    ///   a `draining` host is moving away; every `stopping` instance is the old one of a move;
    /// - no pending instance could be placed now.
    ///
    /// Over-capacity hosts are not a violation: shrinking a host can cause them ([`Fleet::check`]
    /// reports them); placement never does.
    pub fn verify_invariants(&self) -> Vec<String> {
        let mut violations = Vec::new();
        let mut rebuilt = Fleet::new();
        rebuilt.restore_unchecked_row_insert(self.snapshot());
        let (a, b) = (&self.ix, &rebuilt.ix);
        for (name, same) in [
            (
                "placement",
                // Data centers without up hosts may or may not have an (empty) entry.
                a.placement
                    .iter()
                    .filter(|(_, p)| !p.is_empty())
                    .eq(b.placement.iter().filter(|(_, p)| !p.is_empty())),
            ),
            ("host loads", a.host_load == b.host_load),
            ("service index", a.services == b.services),
            ("pending set", a.pending == b.pending),
            ("address allocator", a.ipam == b.ipam),
            ("tenant usage", a.tenant_usage == b.tenant_usage),
            ("move index", a.move_of == b.move_of),
            ("draining hosts", a.draining == b.draining),
        ] {
            if !same {
                violations.push(format!("the {name} differs from a rebuild"));
            }
        }
        for instance in self.instances.values() {
            let id = instance.id;
            let Some(service) = self.services.get(&instance.service) else {
                violations.push(format!(
                    "{id} belongs to unknown service {}",
                    instance.service
                ));
                continue;
            };
            match service.members.get(instance.member as usize) {
                Some(member) if member.data_center == instance.data_center => {}
                _ => violations.push(format!(
                    "{id} ({}) is not in its member's data center",
                    instance.describe()
                )),
            }
            if instance.group == 0 || instance.group > service.groups {
                violations.push(format!(
                    "{id} is in group {} of {}",
                    instance.group, service.groups
                ));
            }
            let pending = matches!(instance.state, InstanceState::Pending { .. });
            if pending != instance.host.is_none() || pending != instance.ip.is_none() {
                violations.push(format!(
                    "{id} is {} with host {:?} and address {:?}",
                    instance.state.label(),
                    instance.host,
                    instance.ip
                ));
            }
            if let Some(host) = &instance.host {
                match self.hosts.get(host) {
                    None => violations.push(format!("{id} is on unknown host {host}")),
                    Some(record) => {
                        if record.data_center != instance.data_center {
                            violations.push(format!(
                                "{id} is on {host}, outside {}",
                                instance.data_center
                            ));
                        }
                        let live = matches!(
                            instance.state,
                            InstanceState::Placed | InstanceState::Running
                        );
                        if live && matches!(record.state, HostState::Down | HostState::Maintenance)
                        {
                            violations
                                .push(format!("{id} runs on {host}, which is {}", record.state));
                        }
                        // Moving away, or the healthy replacement of a move finishing
                        // elsewhere (it gets its own move when that one is done).
                        let moving = self
                            .ix
                            .move_of
                            .get(&id)
                            .and_then(|m| self.moves.get(m))
                            .is_some_and(|m| m.instance == id || m.state == MoveState::StoppingOld);
                        if record.state == HostState::Draining && !moving {
                            violations
                                .push(format!("{id} is on draining host {host} without a move"));
                        }
                    }
                }
            }
            if let Some(ip) = instance.ip {
                let range = self
                    .ix
                    .ipam
                    .range_of(ip)
                    .and_then(|cidr| self.ranges.get(&cidr));
                if range.is_none_or(|r| r.data_center != instance.data_center) {
                    violations.push(format!(
                        "{id} has address {ip} outside the ranges of {}",
                        instance.data_center
                    ));
                }
            }
            if instance.state == InstanceState::Stopping {
                let stopping_old = self
                    .ix
                    .move_of
                    .get(&id)
                    .and_then(|m| self.moves.get(m))
                    .is_some_and(|m| m.instance == id && m.state == MoveState::StoppingOld);
                if !stopping_old {
                    violations.push(format!("{id} is stopping outside a move"));
                }
            }
        }
        for move_ in self.moves.values() {
            let replaced = matches!(
                move_.state,
                MoveState::AwaitingHealthy | MoveState::StoppingOld
            );
            if replaced != move_.replacement.is_some() {
                violations.push(format!(
                    "move {} is {:?} with replacement {:?}",
                    move_.id, move_.state, move_.replacement
                ));
            }
            match self.instances.get(&move_.instance) {
                Some(old) if old.host.as_ref() == Some(&move_.from_host) => {}
                _ => violations.push(format!(
                    "move {}: {} is not on {}",
                    move_.id, move_.instance, move_.from_host
                )),
            }
        }
        // Members of one group in distinct data centers.
        let mut seen: BTreeMap<(&crate::name::ServiceName, u32, &crate::name::DcName), u32> =
            BTreeMap::new();
        for instance in self.instances.values() {
            let key = (&instance.service, instance.group, &instance.data_center);
            match seen.get(&key) {
                Some(member) if *member != instance.member => violations.push(format!(
                    "{} group {} has members {member} and {} in {}",
                    instance.service, instance.group, instance.member, instance.data_center
                )),
                _ => {
                    seen.insert(key, instance.member);
                }
            }
        }
        for id in &self.ix.pending {
            let Some(instance) = self.instances.get(id) else {
                continue;
            };
            let policy = self
                .services
                .get(&instance.service)
                .map(|s| s.policy)
                .unwrap_or_default();
            let slot = Slot::of_instance(instance, policy);
            if self.choose_for(&slot, Target::AnyExcept(None)).is_ok() {
                violations.push(format!("{id} is pending although it fits now"));
            }
        }
        violations
    }
}
