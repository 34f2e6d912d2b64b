//! The crate's one error type. Every message names the thing that is wrong.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::inventory::HostState;
use crate::ipam::Cidr;
use crate::name::{DcName, InstanceId, MoveId, ServiceName, TemplateName, TenantName};
use crate::resources::Resource;

/// Everything that can refuse a fleet request. A refused request leaves the fleet unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// A name breaks the naming rule (see [`crate::validate_name`]).
    #[error("invalid {kind} name {name:?}: {rule}")]
    InvalidName {
        /// What the name was for (`host`, `service`, ...).
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// The broken rule.
        rule: String,
    },
    /// Creating something whose name is taken.
    #[error("{kind} {name} already exists")]
    AlreadyExists {
        /// What kind of thing.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// Referring to something that does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound {
        /// What kind of thing.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// Deleting something that is still in use.
    #[error("cannot delete {kind} {name}: it is used by {used_by}")]
    InUse {
        /// What kind of thing.
        kind: &'static str,
        /// Its name.
        name: String,
        /// What uses it, e.g. `data centers dc1, dc2`.
        used_by: String,
    },
    /// A malformed or unusable address range.
    #[error("invalid address range {range}: {reason}")]
    InvalidRange {
        /// The range as given.
        range: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Address ranges must not overlap anywhere in the fleet.
    #[error("address range {range} overlaps {other} (in data center {other_data_center})")]
    RangeOverlap {
        /// The new range.
        range: Cidr,
        /// The existing range it overlaps.
        other: Cidr,
        /// Where the existing range is.
        other_data_center: DcName,
    },
    /// A data center without any address range cannot host instances.
    #[error("{data_center}: no address range (add one before placing instances there)")]
    NoAddressRange {
        /// The data center.
        data_center: DcName,
    },
    /// Every address of every range of a data center is leased or reserved.
    #[error(
        "{data_center}: address ranges {} exhausted ({leased} of {usable} leased)",
        join(ranges, ", ")
    )]
    RangesExhausted {
        /// The data center.
        data_center: DcName,
        /// Its ranges.
        ranges: Vec<Cidr>,
        /// Addresses leased in them.
        leased: u128,
        /// Addresses that can be leased in them (size minus reserved).
        usable: u128,
    },
    /// A template that is malformed, or incomplete where it is used.
    #[error("template {template}: {reason}")]
    InvalidTemplate {
        /// The template.
        template: TemplateName,
        /// What is wrong with it.
        reason: String,
    },
    /// `extends` links that loop.
    #[error("template cycle: {}", join(chain, " -> "))]
    TemplateCycle {
        /// The loop, first template repeated at the end.
        chain: Vec<TemplateName>,
    },
    /// A malformed host description.
    #[error("host {host}: {reason}")]
    InvalidHost {
        /// The host.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// A host state change that is not allowed.
    #[error("host {host} is {state}: {reason}")]
    HostState {
        /// The host.
        host: String,
        /// Its current state.
        state: HostState,
        /// Why the request is refused.
        reason: String,
    },
    /// A malformed service request.
    #[error("service {service}: {reason}")]
    InvalidService {
        /// The service.
        service: ServiceName,
        /// What is wrong.
        reason: String,
    },
    /// A malformed group shape (capacity question).
    #[error("invalid group shape: {reason}")]
    InvalidShape {
        /// What is wrong.
        reason: String,
    },
    /// A tenant quota would be exceeded.
    #[error(
        "tenant {tenant}: {resource} quota exceeded by service {service}: \
         usage would be {after} (quota {quota}, {before} used without this request)"
    )]
    QuotaExceeded {
        /// The tenant.
        tenant: TenantName,
        /// The service being created or changed.
        service: ServiceName,
        /// The exceeded dimension.
        resource: Resource,
        /// Usage without the request, formatted.
        before: String,
        /// Usage with the request, formatted.
        after: String,
        /// The quota, formatted.
        quota: String,
    },
    /// Some members could not be placed: the whole request is refused.
    #[error("service {service} cannot be placed: {}", join(failures, "; "))]
    Unplaceable {
        /// The service.
        service: ServiceName,
        /// One explanation per member that could not be placed.
        failures: Vec<PlacementFailure>,
    },
    /// A request about an instance that does not fit its state.
    #[error("instance {instance}: {reason}")]
    InstanceState {
        /// The instance.
        instance: InstanceId,
        /// Why the request is refused.
        reason: String,
    },
    /// A reported weight outside 1 to [`crate::ENDPOINT_WEIGHT_FULL`].
    #[error(
        "instance {instance}: weight {weight} is not between 1 and {}",
        crate::ENDPOINT_WEIGHT_FULL
    )]
    InvalidWeight {
        /// The instance.
        instance: InstanceId,
        /// The weight reported.
        weight: u32,
    },
    /// A service change that must wait for moves in progress.
    #[error(
        "service {service}: {reason} while moves {} are in progress",
        join(moves, ", ")
    )]
    ServiceBusy {
        /// The service.
        service: ServiceName,
        /// The moves in progress.
        moves: Vec<MoveId>,
        /// What cannot be done.
        reason: String,
    },
    /// A snapshot that does not describe a consistent fleet.
    #[error("invalid fleet snapshot: {reason}")]
    InvalidSnapshot {
        /// What is inconsistent.
        reason: String,
    },
}

/// Why one member of one group could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementFailure {
    /// Group number (1-based).
    pub group: u32,
    /// Member index (0-based, the index of its template in the service).
    pub member: u32,
    /// The member's data center.
    pub data_center: DcName,
    /// The member's template.
    pub template: TemplateName,
    /// The explanation, e.g. `no host with 4.0 GiB free memory in dc2; the best, dc2-h3, has
    /// 3.1 GiB free`.
    pub reason: String,
}

impl fmt::Display for PlacementFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {}, member {} (template {}): {}",
            self.group, self.data_center, self.template, self.reason
        )
    }
}

/// Coarse classes of errors, so a server can map each to one status code in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is malformed (HTTP 400/422).
    Invalid,
    /// It refers to something missing (HTTP 404).
    NotFound,
    /// It conflicts with the current state (HTTP 409).
    Conflict,
    /// The fleet lacks capacity, addresses or quota for it (HTTP 409 or 507).
    Insufficient,
    /// Loaded state is corrupt (HTTP 500).
    Internal,
}

impl FleetError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            FleetError::InvalidName { .. }
            | FleetError::InvalidRange { .. }
            | FleetError::InvalidTemplate { .. }
            | FleetError::TemplateCycle { .. }
            | FleetError::InvalidHost { .. }
            | FleetError::InvalidService { .. }
            | FleetError::InvalidShape { .. }
            | FleetError::InvalidWeight { .. } => ErrorClass::Invalid,
            FleetError::NotFound { .. } => ErrorClass::NotFound,
            FleetError::AlreadyExists { .. }
            | FleetError::InUse { .. }
            | FleetError::RangeOverlap { .. }
            | FleetError::HostState { .. }
            | FleetError::InstanceState { .. }
            | FleetError::ServiceBusy { .. } => ErrorClass::Conflict,
            FleetError::NoAddressRange { .. }
            | FleetError::RangesExhausted { .. }
            | FleetError::QuotaExceeded { .. }
            | FleetError::Unplaceable { .. } => ErrorClass::Insufficient,
            FleetError::InvalidSnapshot { .. } => ErrorClass::Internal,
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl fmt::Display) -> FleetError {
        FleetError::NotFound {
            kind,
            name: name.to_string(),
        }
    }

    pub(crate) fn already_exists(kind: &'static str, name: impl fmt::Display) -> FleetError {
        FleetError::AlreadyExists {
            kind,
            name: name.to_string(),
        }
    }
}

/// Joins displayable items with a separator.
pub(crate) fn join<T: fmt::Display>(items: &[T], separator: &str) -> String {
    let mut out = String::new();
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push_str(separator);
        }
        out.push_str(&item.to_string());
    }
    out
}

/// Lists at most [`LISTED_ITEMS_MAX`] items, then says how many more there are.
pub(crate) fn list_some<T: fmt::Display>(items: &[T]) -> String {
    if items.len() <= LISTED_ITEMS_MAX {
        return join(items, ", ");
    }
    format!(
        "{} and {} more",
        join(&items[..LISTED_ITEMS_MAX], ", "),
        items.len() - LISTED_ITEMS_MAX
    )
}

/// Most items an error message lists before summarising the rest as "and N more".
pub const LISTED_ITEMS_MAX: usize = 10;
