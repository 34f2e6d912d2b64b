//! What a request changed (for persistence) and what was decided (for the audit log).
//!
//! Every mutating operation returns an [`Outcome`]. `changes` is an ordered log of row-level
//! upserts and deletions: applying them in order to a copy of the state before the request
//! yields the state after it, so a server can persist them in one transaction. `events` are the
//! decisions, each saying what happened, where and why; the caller adds who asked and when.

use serde::{Deserialize, Serialize};

use crate::drain::Move;
use crate::inventory::{DataCenter, Host, Zone};
use crate::ipam::{AddressRange, Cidr, Lease};
use crate::name::{
    DcName, HostName, InstanceId, MoveId, ServiceName, TemplateName, TenantName, ZoneName,
};
use crate::resources::Resources;
use crate::service::{Instance, Service};
use crate::template::Template;

/// Result of a successful mutating operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Row-level changes, in the order they were made.
    pub changes: Vec<Change>,
    /// Decisions, for the audit log.
    pub events: Vec<Event>,
}

impl Outcome {
    /// Whether the operation changed nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.events.is_empty()
    }
}

/// One row-level change of the fleet state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A zone was created.
    ZoneCreated {
        /// The new zone.
        zone: Zone,
    },
    /// A zone was deleted.
    ZoneDeleted {
        /// Its name.
        zone: ZoneName,
    },
    /// A data center was created.
    DataCenterCreated {
        /// The new data center.
        data_center: DataCenter,
    },
    /// A data center was deleted.
    DataCenterDeleted {
        /// Its name.
        data_center: DcName,
    },
    /// A host was registered or changed (state, capacity, labels).
    HostUpserted {
        /// The host as it is now.
        host: Host,
    },
    /// Only a host's last heartbeat changed (a server may batch these).
    HostHeartbeat {
        /// The host.
        host: HostName,
        /// Its new last heartbeat time.
        last_heartbeat_ms: u64,
    },
    /// A host was deleted.
    HostDeleted {
        /// Its name.
        host: HostName,
    },
    /// An address range was added.
    RangeAdded {
        /// The new range.
        range: AddressRange,
    },
    /// An address range was removed.
    RangeRemoved {
        /// Its network.
        range: Cidr,
    },
    /// A template was created or replaced.
    TemplateUpserted {
        /// The template as stored (boxed: templates are big and rare).
        template: Box<Template>,
    },
    /// A template was deleted.
    TemplateDeleted {
        /// Its name.
        template: TemplateName,
    },
    /// A service was created or changed.
    ServiceUpserted {
        /// The service as it is now.
        service: Service,
    },
    /// A service was deleted.
    ServiceDeleted {
        /// Its name.
        service: ServiceName,
    },
    /// A tenant quota was set (`None`: removed, the tenant is unlimited).
    QuotaSet {
        /// The tenant.
        tenant: TenantName,
        /// The limits.
        limits: Option<Resources>,
    },
    /// An instance was created (placed, or pending).
    InstanceCreated {
        /// The new instance.
        instance: Instance,
    },
    /// An instance changed (state, resources, host of a pending instance).
    InstanceUpdated {
        /// The instance as it is now.
        instance: Instance,
    },
    /// An instance was removed.
    InstanceRemoved {
        /// Its id.
        instance: InstanceId,
    },
    /// An address was leased to an instance.
    LeaseGranted {
        /// The lease.
        lease: Lease,
    },
    /// An address was released.
    LeaseReleased {
        /// The lease that ended.
        lease: Lease,
    },
    /// A move was created or advanced.
    MoveUpserted {
        /// The move as it is now.
        #[serde(rename = "move")]
        move_: Move,
    },
    /// A move ended (completed or cancelled).
    MoveRemoved {
        /// Its id.
        id: MoveId,
    },
    /// The id counters advanced (persist them so ids are never reused).
    CountersAdvanced {
        /// Next instance id to hand out.
        next_instance_id: u64,
        /// Next move id to hand out.
        next_move_id: u64,
    },
}

/// One decision, for the audit log: what happened ([`EventKind`]), where (`host`,
/// `data_center`), to what (`service`, `instance`) and why (`message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The service concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceName>,
    /// The instance concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceId>,
    /// The host concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostName>,
    /// The data center concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_center: Option<DcName>,
    /// A sentence saying what, where and why.
    pub message: String,
}

/// Kinds of decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Inventory changed (zone, data center, range, template, quota).
    InventoryChanged,
    /// A host was registered.
    HostRegistered,
    /// A host changed state (up, draining, down, maintenance).
    HostStateChanged,
    /// A host changed capacity or labels.
    HostUpdated,
    /// A host was deleted.
    HostDeleted,
    /// A draining host has nothing left on it.
    HostDrained,
    /// A service was created.
    ServiceCreated,
    /// A service was changed.
    ServiceUpdated,
    /// A service was deleted.
    ServiceDeleted,
    /// An instance was placed on a host.
    InstancePlaced,
    /// An instance could not be placed and waits for capacity.
    InstancePending,
    /// An instance was replaced on another host after its host failed or no longer fit it.
    InstanceRescheduled,
    /// An instance's resources changed in place.
    InstanceResized,
    /// An instance became healthy.
    InstanceHealthy,
    /// A running instance failed its health checks.
    InstanceUnhealthy,
    /// An instance was told to stop (its replacement is healthy).
    InstanceStopping,
    /// An instance was removed.
    InstanceRemoved,
    /// A move started (its replacement was placed).
    MoveStarted,
    /// A move cannot start for lack of room.
    MoveBlocked,
    /// A move finished.
    MoveCompleted,
    /// A move was cancelled.
    MoveCancelled,
}

impl Event {
    pub(crate) fn new(kind: EventKind, message: String) -> Event {
        Event {
            kind,
            service: None,
            instance: None,
            host: None,
            data_center: None,
            message,
        }
    }

    pub(crate) fn service(mut self, service: &ServiceName) -> Event {
        self.service = Some(service.clone());
        self
    }

    pub(crate) fn instance(mut self, instance: InstanceId) -> Event {
        self.instance = Some(instance);
        self
    }

    pub(crate) fn host(mut self, host: &HostName) -> Event {
        self.host = Some(host.clone());
        self
    }

    pub(crate) fn data_center(mut self, data_center: &DcName) -> Event {
        self.data_center = Some(data_center.clone());
        self
    }
}
