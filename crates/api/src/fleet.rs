//! The fleet's requests and answers that are not `caravan-fleet`'s own types.
//!
//! Requests that map one to one onto a fleet operation use the fleet's type as the body
//! (`HostSpec`, `ServiceSpec`, `Template`, `AddressRange`, `Zone`, `DataCenter`, `Resources`);
//! this module holds the partial updates and the views that combine several fleet facts (a host
//! with what is allocated on it, a service with its instances by group). Names are the fleet
//! crate's names, so that one concept has one name in the code, the API and the CLI.

use std::collections::BTreeMap;
use std::net::IpAddr;

use caravan_fleet::{
    AddressRange, Cidr, DcName, EffectiveTemplate, GroupFit, Host, HostName, HostState, Instance,
    InstanceId, PlacementPolicy, RangeUsage, RegisteredService, ResourceOverride, Resources,
    Service, ServiceName, Template, TemplateName, TenantName, ZoneCapacity,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Most events one `GET /fleet/events` answers.
pub const FLEET_EVENTS_LIMIT_MAX: usize = 1_000;
/// Events answered when no limit is given.
pub const FLEET_EVENTS_LIMIT_DEFAULT: usize = 100;

/// A host in a listing: the host and what is allocated on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostSummary {
    /// The host (name, data center, capacity, labels, state, last heartbeat in ms since the
    /// Unix epoch).
    #[schema(value_type = Object)]
    pub host: Host,
    /// Resources allocated to its instances.
    #[schema(value_type = Object)]
    pub allocated: Resources,
    /// Number of instances on it (any state).
    pub instances: usize,
}

/// One host with its instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostView {
    /// The host.
    #[schema(value_type = Object)]
    pub host: Host,
    /// Resources allocated to its instances.
    #[schema(value_type = Object)]
    pub allocated: Resources,
    /// Its instances, by id.
    #[schema(value_type = Vec<Object>)]
    pub instances: Vec<Instance>,
}

/// A change of a host: capacity, labels and state; unset fields stay as they are. Setting the
/// state to `draining` starts a drain; `down` reschedules its instances; `maintenance` needs
/// an empty host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostPatch {
    /// New capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub capacity: Option<Resources>,
    /// New labels (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// New state: `up`, `draining`, `down` or `maintenance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub state: Option<HostState>,
}

/// An address range and how much of it is leased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RangeView {
    /// The range.
    #[schema(value_type = Object)]
    pub range: AddressRange,
    /// Leased and usable addresses.
    #[schema(value_type = Object)]
    pub usage: RangeUsage,
}

/// Who holds an address, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseView {
    /// The address.
    #[schema(value_type = String)]
    pub ip: IpAddr,
    /// The range it comes from.
    #[schema(value_type = String)]
    pub range: Cidr,
    /// The instance holding it.
    #[schema(value_type = u64)]
    pub instance: InstanceId,
    /// The instance's service.
    #[schema(value_type = String)]
    pub service: ServiceName,
    /// The instance's group.
    pub group: u32,
    /// The instance's data center.
    #[schema(value_type = String)]
    pub data_center: DcName,
    /// The instance's host.
    #[schema(value_type = Option<String>)]
    pub host: Option<HostName>,
}

/// A template as stored, and resolved through its `extends` chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateView {
    /// The template as stored (overrides only).
    #[schema(value_type = Object)]
    pub template: Template,
    /// The template with its chain merged in, if it is complete.
    #[schema(value_type = Option<Object>)]
    pub effective: Option<EffectiveTemplate>,
    /// Why it cannot be resolved (a base template may be incomplete), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// A service in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceSummary {
    /// The service.
    #[schema(value_type = String)]
    pub name: ServiceName,
    /// The tenant owning it.
    #[schema(value_type = String)]
    pub tenant: TenantName,
    /// Its templates, one per member of a group.
    #[schema(value_type = Vec<String>)]
    pub templates: Vec<TemplateName>,
    /// Number of instance groups.
    pub groups: u32,
    /// Placement policy.
    #[schema(value_type = String)]
    pub policy: PlacementPolicy,
    /// Resources it asks for in all (what quotas count).
    #[schema(value_type = Object)]
    pub demand: Resources,
    /// Instances (any state).
    pub instances: usize,
    /// Instances reported healthy.
    pub running: usize,
    /// Instances waiting for capacity.
    pub pending: usize,
}

/// A service and its instances, by group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceView {
    /// The service, with its templates resolved into members.
    #[schema(value_type = Object)]
    pub service: Service,
    /// Resources it asks for in all (what quotas count).
    #[schema(value_type = Object)]
    pub demand: Resources,
    /// Its groups, by number.
    pub groups: Vec<GroupView>,
}

/// The instances of one group of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupView {
    /// The group number (1-based).
    pub group: u32,
    /// Its instances by member, then id (a member has two while it moves).
    #[schema(value_type = Vec<Object>)]
    pub instances: Vec<Instance>,
}

/// A change of a service; unset fields stay as they are. `groups` scales (whole groups are
/// added or removed), `resources` resizes (each given field overrides the current override),
/// `templates` replaces members, `policy` applies to new placements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePatch {
    /// New number of instance groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<u32>,
    /// Resource overrides: `cpu_millis`, `memory_bytes`, `disk_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub resources: Option<ResourceOverride>,
    /// New templates, one per member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub templates: Option<Vec<TemplateName>>,
    /// New placement policy: `spread` or `pack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub policy: Option<PlacementPolicy>,
}

/// The body of a migration: where to move instances, if an operator chooses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    /// Move to this host (it must be in the instances' data centers and have room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub to_host: Option<HostName>,
}

/// Capacity per zone and data center, and how many more groups of a shape fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapacityReport {
    /// Per zone, with its data centers.
    #[schema(value_type = Vec<Object>)]
    pub zones: Vec<ZoneCapacity>,
    /// How many more groups of the asked shape fit, when a shape was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub fit: Option<GroupFit>,
}

/// A tenant's quota and what its services ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuotaView {
    /// The tenant.
    #[schema(value_type = String)]
    pub tenant: TenantName,
    /// Its limits; `null`: unlimited.
    #[schema(value_type = Option<Object>)]
    pub limits: Option<Resources>,
    /// What its services ask for.
    #[schema(value_type = Object)]
    pub usage: Resources,
}

/// One placement decision from the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetEvent {
    /// Position in the log (grows with time).
    pub id: u64,
    /// When it was decided.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The token whose request led to it; `null` for the server's own decisions (host loss).
    pub by: Option<String>,
    /// What happened, such as `instance_placed` or `host_state_changed`.
    pub kind: String,
    /// The service concerned, if any.
    pub service: Option<String>,
    /// The instance concerned, if any (`i-42`).
    pub instance: Option<String>,
    /// The host concerned, if any.
    pub host: Option<String>,
    /// The data center concerned, if any.
    pub data_center: Option<String>,
    /// What, where and why.
    pub message: String,
}

/// The service registry as `GET /fleet/registry` answers it: the services the caller may read,
/// with their frontend ports and endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryView {
    /// Changes exactly when the services listed do (16 hexadecimal digits): pass it back as
    /// `version` to wait for the next change.
    pub version: String,
    /// When the fleet last changed, in milliseconds since the Unix epoch: a consumer that sees a
    /// new version can measure how long the change took to reach it.
    pub changed_at_ms: u64,
    /// The services, by name.
    #[schema(value_type = Vec<Object>)]
    pub services: Vec<RegisteredService>,
}
