//! Caravan's fleet domain: inventory, IPAM, templates, services, placement, host loss,
//! draining, checks and capacity.
//!
//! Pure: state and request in, decision out. No I/O, no async, no clock (time comes in as
//! `now_ms`), no randomness; every map is ordered, so the same state and request always give
//! the same decision.
//!
//! A server holds one [`Fleet`], loaded with [`Fleet::restore`] from a [`FleetSnapshot`], and
//! calls one method per request. Every mutating method is all-or-nothing (on error the fleet is
//! unchanged) and returns an [`Outcome`]: the row-level [`Change`]s to persist in one
//! transaction and the [`Event`]s (what, where, why) for the audit log.
//!
//! Module map:
//! - [`name`]: validated names and ids;
//! - [`resources`]: CPU, memory, disk amounts;
//! - [`inventory`]: zones, data centers, hosts, ranges, templates, quotas (the catalog);
//! - [`ipam`]: CIDR ranges, address allocation and leases;
//! - [`template`]: template inheritance and resolution;
//! - [`service`]: services, instances, create/update/delete;
//! - `placement` (private): host choice and refusal explanations;
//! - [`host_loss`]: heartbeats, failures, desired instances per host;
//! - [`drain`]: draining hosts, moves and their state machine;
//! - [`registry`]: the service registry (endpoints and their version);
//! - [`check`]: placement problems and migrations;
//! - [`capacity`]: capacity reports and fit counts;
//! - [`events`]: changes and events;
//! - [`error`]: the error type.

pub mod capacity;
pub mod check;
pub mod drain;
pub mod error;
pub mod events;
mod fleet;
pub mod host_loss;
mod invariants;
pub mod inventory;
pub mod ipam;
pub mod name;
mod placement;
pub mod registry;
pub mod resources;
pub mod service;
pub mod template;

pub use capacity::{DcCapacity, GroupFit, GroupShape, MemberFit, ResourceTotals, ZoneCapacity};
pub use check::{CheckReport, Finding, Migration};
pub use drain::{DrainStatus, DrainStep, Move, MoveOrigin, MoveState};
pub use error::{ErrorClass, FleetError, PlacementFailure};
pub use events::{Change, Event, EventKind, Outcome};
pub use fleet::{DEBUG_INVARIANT_CHECK_INSTANCES_MAX, Fleet, FleetSnapshot, TenantQuota};
pub use host_loss::{
    DesiredAction, DesiredInstance, HEARTBEAT_TIMEOUT_MS_DEFAULT, HostReconciliation,
};
pub use inventory::{DataCenter, Host, HostSpec, HostState, HostUpdate, Zone};
pub use ipam::{AddressRange, Cidr, Lease, RangeUsage};
pub use name::{
    DcName, HostName, InstanceId, MoveId, ServiceName, TemplateName, TenantName, ZoneName,
    validate_name,
};
pub use registry::{
    ENDPOINT_WEIGHT_FULL, Endpoint, HealthReport, RegisteredService, Registry, ServiceEndpoints,
};
pub use resources::{Resource, ResourceOverride, Resources};
pub use service::{Instance, InstanceState, Member, PlacementPolicy, Service, ServiceSpec};
pub use template::{
    EffectiveTemplate, HealthCheck, HealthOverride, Probe, RunOverride, RunSpec, Template,
};

#[cfg(test)]
mod tests;
