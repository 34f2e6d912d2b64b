//! Services and their instances: creating, updating (scale, resize, templates) and deleting.
//!
//! A service runs `groups` instance groups; each group has one member per template, member `i`
//! running from template `i` in that template's data center. The templates of a service are in
//! distinct data centers, so the members of a group never share one. Group numbers start at 1;
//! scaling down removes the highest-numbered groups.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{FleetError, PlacementFailure};
use crate::events::{Event, EventKind, Outcome};
use crate::fleet::{Fleet, Txn};
use crate::name::{DcName, HostName, InstanceId, ServiceName, TemplateName, TenantName};
use crate::placement::{HostChoice, HostRequest, Why};
use crate::resources::{Resource, ResourceOverride, Resources};
use crate::template::{self, HealthCheck, RunSpec};

/// Most instance groups per service.
pub const SERVICE_GROUPS_MAX: u32 = 10_000;
/// Most templates (members per group) per service.
pub const SERVICE_TEMPLATES_MAX: usize = 16;

/// How a service's instances are spread over the hosts of a data center.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementPolicy {
    /// Prefer the host with the most free capacity (the default).
    #[default]
    Spread,
    /// Prefer the fullest host that fits (best fit).
    Pack,
}

impl std::fmt::Display for PlacementPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PlacementPolicy::Spread => "spread",
            PlacementPolicy::Pack => "pack",
        })
    }
}

/// A request to create or update a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The service's name.
    pub name: ServiceName,
    /// The tenant owning it (its quota applies).
    pub tenant: TenantName,
    /// One template per member of a group, each in a distinct data center.
    pub templates: Vec<TemplateName>,
    /// Number of instance groups.
    pub groups: u32,
    /// Override of the templates' default resources (default: none).
    #[serde(default)]
    pub resources: ResourceOverride,
    /// Placement policy (default `spread`).
    #[serde(default)]
    pub policy: PlacementPolicy,
}

/// A service as stored: its request plus the templates resolved when it was last updated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The service's name.
    pub name: ServiceName,
    /// The tenant owning it.
    pub tenant: TenantName,
    /// Number of instance groups.
    pub groups: u32,
    /// Requested override of the templates' resources.
    pub resources: ResourceOverride,
    /// Placement policy.
    pub policy: PlacementPolicy,
    /// Resolved members, one per template, in request order.
    pub members: Vec<Member>,
}

/// One member of every group of a service, as resolved from its template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The template it runs from.
    pub template: TemplateName,
    /// Where it runs.
    pub data_center: DcName,
    /// What each instance gets.
    pub resources: Resources,
    /// How the agent runs it.
    pub run: RunSpec,
    /// How the agent checks it.
    pub health: Option<HealthCheck>,
    /// Port the load balancer exposes, if any.
    pub frontend_port: Option<u16>,
}

impl Service {
    /// Resources the whole service asks for (what tenant quotas count).
    pub fn demand(&self) -> Resources {
        self.members
            .iter()
            .fold(Resources::ZERO, |sum, m| sum.saturating_add(&m.resources))
            .saturating_mul(u64::from(self.groups))
    }

    /// The request that would produce this service.
    pub fn spec(&self) -> ServiceSpec {
        ServiceSpec {
            name: self.name.clone(),
            tenant: self.tenant.clone(),
            templates: self.members.iter().map(|m| m.template.clone()).collect(),
            groups: self.groups,
            resources: self.resources,
            policy: self.policy,
        }
    }
}

/// Desired state of an instance. The agent reports health (`placed` -> `running`) and stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InstanceState {
    /// No host could take it; it is placed as soon as capacity appears.
    Pending {
        /// Why it could not be placed.
        reason: String,
    },
    /// Assigned to a host, not yet reported healthy.
    Placed,
    /// Reported healthy by its agent.
    Running,
    /// Its agent must stop it (it was replaced); removed once stopped.
    Stopping,
}

impl InstanceState {
    /// Short name of the state.
    pub fn label(&self) -> &'static str {
        match self {
            InstanceState::Pending { .. } => "pending",
            InstanceState::Placed => "placed",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
        }
    }
}

/// One member of one group of a service, on one host (or pending).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Its id.
    pub id: InstanceId,
    /// Its service.
    pub service: ServiceName,
    /// Its group number (1-based).
    pub group: u32,
    /// Its member index (0-based, the index of its template in the service).
    pub member: u32,
    /// Its template.
    pub template: TemplateName,
    /// Its data center.
    pub data_center: DcName,
    /// Its host, unless pending.
    pub host: Option<HostName>,
    /// What it gets.
    pub resources: Resources,
    /// Its leased address, unless pending.
    pub ip: Option<IpAddr>,
    /// Its desired state.
    pub state: InstanceState,
    /// The port its agent gave it, as reported with its health (`None` until then; rows stored
    /// before the registry have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Its share of traffic during its warm-up, as its agent reported it (1 to
    /// [`crate::ENDPOINT_WEIGHT_FULL`]); `None` is the full weight (no warm-up, or none
    /// reported since it was placed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The address its agent says it is reached at, as reported with its health (the process
    /// driver does not configure leases on interfaces: instances share their host's); `None`
    /// is its lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
}

impl Instance {
    /// `web group 3, member dc2 (template web_dc2)`.
    pub fn describe(&self) -> String {
        format!(
            "{} group {}, member {} (template {})",
            self.service, self.group, self.data_center, self.template
        )
    }
}

/// Where a new instance must go: one (group, member) slot of a service.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub(crate) service: ServiceName,
    pub(crate) group: u32,
    pub(crate) member: u32,
    pub(crate) template: TemplateName,
    pub(crate) data_center: DcName,
    pub(crate) resources: Resources,
    pub(crate) policy: PlacementPolicy,
}

impl Slot {
    pub(crate) fn of_instance(instance: &Instance, policy: PlacementPolicy) -> Slot {
        Slot {
            service: instance.service.clone(),
            group: instance.group,
            member: instance.member,
            template: instance.template.clone(),
            data_center: instance.data_center.clone(),
            resources: instance.resources,
            policy,
        }
    }

    pub(crate) fn request<'a>(&'a self, exclude: Option<&'a HostName>) -> HostRequest<'a> {
        HostRequest {
            data_center: &self.data_center,
            resources: self.resources,
            policy: self.policy,
            service: &self.service,
            exclude,
        }
    }

    pub(crate) fn failure(&self, reason: String) -> PlacementFailure {
        PlacementFailure {
            group: self.group,
            member: self.member,
            data_center: self.data_center.clone(),
            template: self.template.clone(),
            reason,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} group {}, member {} (template {})",
            self.service, self.group, self.data_center, self.template
        )
    }
}

/// Whether [`Fleet::upsert_service`] creates or updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upsert {
    Create,
    Update,
}

/// What reconciliation needs of a service.
struct ServiceShape {
    groups: u32,
    policy: PlacementPolicy,
    members: Vec<MemberShape>,
}

/// What reconciliation needs of a member.
struct MemberShape {
    template: TemplateName,
    data_center: DcName,
    resources: Resources,
}

/// Where [`Fleet::place_slot`] may put the instance.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    /// The best host, except this one (if any).
    AnyExcept(Option<&'a HostName>),
    /// Exactly this host.
    Host(&'a HostName),
}

impl Fleet {
    /// Creates a service and places all its groups, or refuses with one explanation per member
    /// that could not be placed.
    pub fn create_service(&mut self, spec: ServiceSpec) -> Result<Outcome, FleetError> {
        self.upsert_service(spec, Upsert::Create)
    }

    /// Updates a service: scales (adds or removes whole groups), resizes (in place where the
    /// host still fits, elsewhere otherwise), changes templates (replaces those members) or
    /// policy (applies to new placements). All or nothing.
    pub fn update_service(&mut self, spec: ServiceSpec) -> Result<Outcome, FleetError> {
        self.upsert_service(spec, Upsert::Update)
    }

    /// Deletes a service, its instances and their leases.
    pub fn delete_service(&mut self, name: &ServiceName) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            if !fleet.services.contains_key(name) {
                return Err(FleetError::not_found(ServiceName::KIND, name));
            }
            let ids: Vec<InstanceId> = fleet
                .ix
                .services
                .get(name)
                .map(|index| index.instances.iter().rev().copied().collect())
                .unwrap_or_default();
            for id in ids {
                fleet.remove_instance(txn, id, "its service was deleted");
            }
            fleet.put_service(txn, name.clone(), None);
            txn.event(
                Event::new(EventKind::ServiceDeleted, format!("service {name} deleted"))
                    .service(name),
            );
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Places pending instances where capacity allows and retries blocked moves. Every
    /// operation already does this at its end; call it after loading a fleet.
    pub fn place_pending(&mut self) -> Result<Outcome, FleetError> {
        self.transact(|_, _| Ok(())).map(|((), outcome)| outcome)
    }

    fn upsert_service(&mut self, spec: ServiceSpec, upsert: Upsert) -> Result<Outcome, FleetError> {
        let previous = self.services.get(&spec.name);
        match (upsert, previous) {
            (Upsert::Create, Some(_)) => {
                return Err(FleetError::already_exists(ServiceName::KIND, &spec.name));
            }
            (Upsert::Update, None) => {
                return Err(FleetError::not_found(ServiceName::KIND, &spec.name));
            }
            _ => {}
        }
        let service = self.resolve_service(&spec)?;
        if let Some(previous) = previous {
            if previous.tenant != service.tenant {
                return Err(FleetError::InvalidService {
                    service: spec.name.clone(),
                    reason: format!(
                        "it belongs to tenant {}: its tenant cannot change",
                        previous.tenant
                    ),
                });
            }
            let reshaped = previous
                .members
                .iter()
                .map(|m| (&m.template, &m.resources))
                .ne(service.members.iter().map(|m| (&m.template, &m.resources)));
            let moves = self.service_moves(&spec.name);
            if reshaped && !moves.is_empty() {
                return Err(FleetError::ServiceBusy {
                    service: spec.name.clone(),
                    moves,
                    reason: "templates and resources cannot change".to_owned(),
                });
            }
        }
        self.check_quota(&service, previous)?;
        let created = previous.is_none();
        self.transact(|fleet, txn| {
            let name = service.name.clone();
            let summary = summarise(&service);
            fleet.put_service(txn, name.clone(), Some(service));
            let failures = fleet.reconcile_service(txn, &name);
            if !failures.is_empty() {
                return Err(FleetError::Unplaceable {
                    service: name,
                    failures,
                });
            }
            let (kind, verb) = if created {
                (EventKind::ServiceCreated, "created")
            } else {
                (EventKind::ServiceUpdated, "updated")
            };
            txn.event(Event::new(kind, format!("service {name} {verb}: {summary}")).service(&name));
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Validates a request and resolves its templates.
    pub(crate) fn resolve_service(&self, spec: &ServiceSpec) -> Result<Service, FleetError> {
        let invalid = |reason: String| FleetError::InvalidService {
            service: spec.name.clone(),
            reason,
        };
        if spec.groups > SERVICE_GROUPS_MAX {
            return Err(invalid(format!(
                "at most {SERVICE_GROUPS_MAX} groups are allowed (asked for {})",
                spec.groups
            )));
        }
        let members = self.resolve_members(&spec.templates, &spec.resources, invalid)?;
        Ok(Service {
            name: spec.name.clone(),
            tenant: spec.tenant.clone(),
            groups: spec.groups,
            resources: spec.resources,
            policy: spec.policy,
            members,
        })
    }

    /// Resolves templates into members: 1 to [`SERVICE_TEMPLATES_MAX`] templates, complete,
    /// in distinct data centers.
    pub(crate) fn resolve_members(
        &self,
        templates: &[TemplateName],
        resources: &ResourceOverride,
        invalid: impl Fn(String) -> FleetError,
    ) -> Result<Vec<Member>, FleetError> {
        if templates.is_empty() || templates.len() > SERVICE_TEMPLATES_MAX {
            return Err(invalid(format!(
                "it needs 1 to {SERVICE_TEMPLATES_MAX} templates (got {})",
                templates.len()
            )));
        }
        let mut members: Vec<Member> = Vec::with_capacity(templates.len());
        for name in templates {
            let effective = template::resolve(&self.templates, name)?;
            if let Some(other) = members
                .iter()
                .find(|m| m.data_center == effective.data_center)
            {
                let reason = if other.template == *name {
                    format!("template {name} is listed twice")
                } else {
                    format!(
                        "templates {} and {name} are both in {}: the members of a group must \
                         be in distinct data centers",
                        other.template, effective.data_center
                    )
                };
                return Err(invalid(reason));
            }
            if !self.data_centers.contains_key(&effective.data_center) {
                return Err(FleetError::InvalidTemplate {
                    template: name.clone(),
                    reason: format!("data center {} does not exist", effective.data_center),
                });
            }
            let member_resources = resources.apply_to(&effective.resources);
            if member_resources.cpu_millis == 0 || member_resources.memory_bytes == 0 {
                return Err(invalid(
                    "resources.cpu_millis and resources.memory_bytes must be positive".to_owned(),
                ));
            }
            members.push(Member {
                template: name.clone(),
                data_center: effective.data_center,
                resources: member_resources,
                run: effective.run,
                health: effective.health,
                frontend_port: effective.frontend_port,
            });
        }
        Ok(members)
    }

    /// Refuses a request that would raise a tenant's usage above its quota in some resource.
    fn check_quota(&self, service: &Service, previous: Option<&Service>) -> Result<(), FleetError> {
        let Some(limits) = self.quotas.get(&service.tenant) else {
            return Ok(());
        };
        let usage = self.tenant_usage(&service.tenant);
        let before = usage.saturating_sub(&previous.map(Service::demand).unwrap_or_default());
        let after = before.saturating_add(&service.demand());
        for resource in Resource::ALL {
            let grows = after.get(resource) > usage.get(resource);
            if grows && after.get(resource) > limits.get(resource) {
                return Err(FleetError::QuotaExceeded {
                    tenant: service.tenant.clone(),
                    service: service.name.clone(),
                    resource,
                    before: resource.format(before.get(resource)),
                    after: resource.format(after.get(resource)),
                    quota: resource.format(limits.get(resource)),
                });
            }
        }
        Ok(())
    }

    /// Moves in progress that involve the service's instances.
    pub(crate) fn service_moves(&self, service: &ServiceName) -> Vec<crate::name::MoveId> {
        let mut moves: BTreeSet<crate::name::MoveId> = BTreeSet::new();
        if let Some(index) = self.ix.services.get(service) {
            for id in &index.instances {
                if let Some(move_id) = self.ix.move_of.get(id) {
                    moves.insert(*move_id);
                }
            }
        }
        moves.into_iter().collect()
    }

    /// Brings the service's instances in line with its (new) definition. Returns the members
    /// that could not be placed; the caller rolls back if there are any.
    fn reconcile_service(&mut self, txn: &mut Txn, name: &ServiceName) -> Vec<PlacementFailure> {
        // Only the placement shape is copied, not the run specs.
        let Some(service) = self.services.get(name).map(|s| ServiceShape {
            groups: s.groups,
            policy: s.policy,
            members: s
                .members
                .iter()
                .map(|m| MemberShape {
                    template: m.template.clone(),
                    data_center: m.data_center.clone(),
                    resources: m.resources,
                })
                .collect(),
        }) else {
            return Vec::new();
        };
        let mut existing: Vec<Instance> =
            self.service_instances(name).into_iter().cloned().collect();
        // 1. Remove what the service no longer has: groups above the count (highest first) and
        // members whose template changed.
        existing.sort_by_key(|i| (std::cmp::Reverse(i.group), i.member, i.id));
        let mut kept = Vec::new();
        for instance in existing {
            let member = service.members.get(instance.member as usize);
            let fits_definition = instance.group <= service.groups
                && member.is_some_and(|m| {
                    m.template == instance.template && m.data_center == instance.data_center
                });
            if fits_definition {
                kept.push(instance);
            } else {
                let why = if instance.group > service.groups {
                    format!("the service was scaled to {} groups", service.groups)
                } else {
                    "the service's templates changed".to_owned()
                };
                self.remove_instance(txn, instance.id, &why);
            }
        }
        kept.sort_by_key(|i| i.id);
        // 2. Resize in place where the host still fits; shrinking instances first, so that
        // the room they free is there for the growing ones.
        let mut to_move = Vec::new();
        let (shrinking, growing): (Vec<Instance>, Vec<Instance>) = kept
            .iter()
            .filter(|i| i.resources != service.members[i.member as usize].resources)
            .cloned()
            .partition(|i| {
                service.members[i.member as usize]
                    .resources
                    .fits_in(&i.resources)
            });
        for instance in shrinking.into_iter().chain(growing) {
            let new_resources = service.members[instance.member as usize].resources;
            let fits_in_place = match &instance.host {
                None => true,
                Some(host) => {
                    let free = self
                        .ix
                        .host_load
                        .get(host)
                        .map(|load| load.free().saturating_add(&instance.resources))
                        .unwrap_or_default();
                    new_resources.fits_in(&free)
                }
            };
            if fits_in_place {
                let mut resized = instance.clone();
                resized.resources = new_resources;
                let where_ = instance
                    .host
                    .as_ref()
                    .map_or_else(|| "pending".to_owned(), |h| format!("on {h}"));
                let mut event = Event::new(
                    EventKind::InstanceResized,
                    format!(
                        "resized {} ({}) {where_}: {} -> {new_resources}",
                        instance.id,
                        instance.describe(),
                        instance.resources
                    ),
                )
                .service(name)
                .instance(instance.id)
                .data_center(&instance.data_center);
                if let Some(host) = &instance.host {
                    event = event.host(host);
                }
                txn.event(event);
                self.put_instance(txn, instance.id, Some(resized));
            } else {
                to_move.push(instance);
            }
        }
        let mut failures = Vec::new();
        for instance in to_move {
            let mut slot = Slot::of_instance(&instance, service.policy);
            slot.resources = service.members[instance.member as usize].resources;
            let old_host = instance.host.clone();
            let why = format!(
                "{} no longer fits on {} after a resize",
                instance.id,
                old_host.as_ref().map_or("its host", |h| h.as_str())
            );
            match self.place_slot(txn, &slot, Target::AnyExcept(old_host.as_ref())) {
                Ok((new_id, choice)) => {
                    self.remove_instance(txn, instance.id, &format!("replaced by {new_id}"));
                    txn.event(placed_event(
                        EventKind::InstanceRescheduled,
                        &slot,
                        new_id,
                        &choice,
                        self.instances.get(&new_id).and_then(|i| i.ip),
                        &why,
                    ));
                }
                Err(reason) => failures.push(slot.failure(reason)),
            }
        }
        // 3. Place the missing (group, member) slots.
        let present: BTreeSet<(u32, u32)> = self
            .service_instances(name)
            .iter()
            .map(|i| (i.group, i.member))
            .collect();
        for group in 1..=service.groups {
            for (index, member) in service.members.iter().enumerate() {
                // SERVICE_TEMPLATES_MAX keeps the index far below u32::MAX.
                let member_index = index as u32;
                if present.contains(&(group, member_index)) {
                    continue;
                }
                let slot = Slot {
                    service: name.clone(),
                    group,
                    member: member_index,
                    template: member.template.clone(),
                    data_center: member.data_center.clone(),
                    resources: member.resources,
                    policy: service.policy,
                };
                match self.place_slot(txn, &slot, Target::AnyExcept(None)) {
                    Ok((id, choice)) => {
                        let ip = self.instances.get(&id).and_then(|i| i.ip);
                        txn.event(placed_event(
                            EventKind::InstancePlaced,
                            &slot,
                            id,
                            &choice,
                            ip,
                            "",
                        ));
                    }
                    Err(reason) => failures.push(slot.failure(reason)),
                }
            }
        }
        failures
    }

    /// Places a new instance for `slot` and leases its address. On failure, says why.
    pub(crate) fn place_slot(
        &mut self,
        txn: &mut Txn,
        slot: &Slot,
        target: Target<'_>,
    ) -> Result<(InstanceId, HostChoice), String> {
        let choice = self.choose_for(slot, target)?;
        let (ip, _) = self
            .ix
            .ipam
            .peek(&slot.data_center)
            .map_err(|error| error.to_string())?;
        let id = self.allocate_instance_id();
        let instance = Instance {
            id,
            service: slot.service.clone(),
            group: slot.group,
            member: slot.member,
            template: slot.template.clone(),
            data_center: slot.data_center.clone(),
            host: Some(choice.host.clone()),
            resources: slot.resources,
            ip: Some(ip),
            state: InstanceState::Placed,
            port: None,
            weight: None,
            address: None,
        };
        self.put_instance(txn, id, Some(instance));
        Ok((id, choice))
    }

    /// The host for `slot`, or why there is none (hosts first, then addresses).
    pub(crate) fn choose_for(&self, slot: &Slot, target: Target<'_>) -> Result<HostChoice, String> {
        let choice = match target {
            Target::AnyExcept(exclude) => {
                let request = slot.request(exclude);
                self.choose_host(&request)
                    .ok_or_else(|| self.explain_no_host(&request))?
            }
            Target::Host(host) => {
                self.check_target_host(host, &slot.request(None))?;
                HostChoice {
                    host: host.clone(),
                    why: Why::Operator,
                    shares_service: false,
                }
            }
        };
        self.ix
            .ipam
            .peek(&slot.data_center)
            .map_err(|error| error.to_string())?;
        Ok(choice)
    }

    /// Creates a pending instance for `slot`.
    pub(crate) fn create_pending(
        &mut self,
        txn: &mut Txn,
        slot: &Slot,
        reason: String,
    ) -> InstanceId {
        let id = self.allocate_instance_id();
        txn.event(
            Event::new(
                EventKind::InstancePending,
                format!("{id} ({}) is pending: {reason}", slot.describe()),
            )
            .service(&slot.service)
            .instance(id)
            .data_center(&slot.data_center),
        );
        let instance = Instance {
            id,
            service: slot.service.clone(),
            group: slot.group,
            member: slot.member,
            template: slot.template.clone(),
            data_center: slot.data_center.clone(),
            host: None,
            resources: slot.resources,
            ip: None,
            state: InstanceState::Pending { reason },
            port: None,
            weight: None,
            address: None,
        };
        self.put_instance(txn, id, Some(instance));
        id
    }

    /// Removes an instance (releasing its lease) and cancels the move it takes part in.
    pub(crate) fn remove_instance(&mut self, txn: &mut Txn, id: InstanceId, why: &str) {
        if let Some(move_id) = self.ix.move_of.get(&id).copied() {
            txn.event(
                Event::new(
                    EventKind::MoveCancelled,
                    format!("move {move_id} cancelled: {id} was removed ({why})"),
                )
                .instance(id),
            );
            self.put_move(txn, move_id, None);
        }
        let Some(instance) = self.instances.get(&id) else {
            return;
        };
        let where_ = instance
            .host
            .as_ref()
            .map_or_else(|| "pending".to_owned(), |h| format!("from {h}"));
        let mut event = Event::new(
            EventKind::InstanceRemoved,
            format!("removed {id} ({}) {where_}: {why}", instance.describe()),
        )
        .service(&instance.service)
        .instance(id)
        .data_center(&instance.data_center);
        if let Some(host) = &instance.host {
            event = event.host(host);
        }
        txn.event(event);
        self.put_instance(txn, id, None);
    }

    /// Tries to place every pending instance, in id order.
    pub(crate) fn place_pending_in(&mut self, txn: &mut Txn) {
        if self.ix.pending.is_empty() {
            return;
        }
        let pending: Vec<InstanceId> = self.ix.pending.iter().copied().collect();
        for id in pending {
            let Some(instance) = self.instances.get(&id).cloned() else {
                continue;
            };
            let Some(policy) = self.services.get(&instance.service).map(|s| s.policy) else {
                debug_assert!(false, "pending {id} without a service");
                continue;
            };
            let slot = Slot::of_instance(&instance, policy);
            match self.choose_for(&slot, Target::AnyExcept(None)) {
                Ok(choice) => {
                    let (ip, _) = match self.ix.ipam.peek(&slot.data_center) {
                        Ok(found) => found,
                        Err(_) => continue,
                    };
                    let mut placed = instance.clone();
                    placed.host = Some(choice.host.clone());
                    placed.ip = Some(ip);
                    placed.state = InstanceState::Placed;
                    placed.port = None;
                    placed.weight = None;
                    placed.address = None;
                    self.put_instance(txn, id, Some(placed));
                    txn.event(placed_event(
                        EventKind::InstancePlaced,
                        &slot,
                        id,
                        &choice,
                        Some(ip),
                        "it was pending",
                    ));
                }
                Err(reason) => {
                    if instance.state
                        != (InstanceState::Pending {
                            reason: reason.clone(),
                        })
                    {
                        let mut updated = instance;
                        updated.state = InstanceState::Pending { reason };
                        self.put_instance(txn, id, Some(updated));
                    }
                }
            }
        }
    }
}

/// The event of a placement: what (`slot`, `id`), where (`choice.host`, `ip`), why.
pub(crate) fn placed_event(
    kind: EventKind,
    slot: &Slot,
    id: InstanceId,
    choice: &HostChoice,
    ip: Option<IpAddr>,
    cause: &str,
) -> Event {
    // One buffer for the whole sentence: a placement writes one of these per instance.
    let mut message = String::with_capacity(200);
    let _ = write!(
        message,
        "placed {id} ({} group {}, member {} (template {})) on {}",
        slot.service, slot.group, slot.data_center, slot.template, choice.host
    );
    if let Some(ip) = ip {
        let _ = write!(message, " with address {ip}");
    }
    message.push_str(": ");
    if !cause.is_empty() {
        message.push_str(cause);
        message.push_str("; ");
    }
    choice.explain_into(&mut message, &slot.service, &slot.data_center);
    Event::new(kind, message)
        .service(&slot.service)
        .instance(id)
        .host(&choice.host)
        .data_center(&slot.data_center)
}

fn summarise(service: &Service) -> String {
    let mut text = String::with_capacity(100);
    let _ = write!(
        text,
        "tenant {}, {} group(s) of ",
        service.tenant, service.groups
    );
    for (index, member) in service.members.iter().enumerate() {
        if index > 0 {
            text.push_str(" + ");
        }
        let _ = write!(text, "{} ({})", member.template, member.data_center);
    }
    let _ = write!(text, ", {} policy", service.policy);
    text
}
