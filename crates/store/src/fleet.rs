//! Rows of the fleet state and its audit log, as the store keeps them.
//!
//! The store knows nothing of the fleet's domain: a row is a kind (`host`, `instance`, ...), an
//! id unique within the kind, and an opaque JSON body. The server maps the fleet's changes to
//! row upserts and deletions, and rebuilds the fleet from every row at start. Keeping the store
//! ignorant of the fleet's types means a new fleet field needs no migration.

use caravan_tenancy::TokenId;
use time::OffsetDateTime;

/// Most audit events kept; older ones are dropped as new ones are written.
pub const FLEET_EVENTS_KEPT_MAX: u64 = 1_000_000;

/// One row of the fleet state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetRow {
    /// What the row holds, such as `host` or `instance`.
    pub kind: String,
    /// Its id, unique within the kind.
    pub id: String,
    /// Its body, a JSON document.
    pub body_json: String,
}

/// One change of the fleet state: a row written (inserted or replaced) or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetRowChange {
    /// Insert the row, or replace the one of the same kind and id.
    Put(FleetRow),
    /// Delete the row of this kind and id (nothing happens if there is none).
    Delete {
        /// The row's kind.
        kind: String,
        /// The row's id.
        id: String,
    },
}

/// One placement decision in the audit log: what, where, why, by which token, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetEventRecord {
    /// Position in the log, assigned by the store (ignored when writing).
    pub id: u64,
    /// When it was decided.
    pub at: OffsetDateTime,
    /// The token whose request led to it; `None` for the server's own decisions (host loss).
    pub by: Option<TokenId>,
    /// What happened, such as `instance_placed`.
    pub kind: String,
    /// The tenant owning the service concerned, if any.
    pub tenant: Option<String>,
    /// The service concerned, if any.
    pub service: Option<String>,
    /// The instance concerned, if any.
    pub instance: Option<String>,
    /// The host concerned, if any.
    pub host: Option<String>,
    /// The data center concerned, if any.
    pub data_center: Option<String>,
    /// A sentence saying what, where and why.
    pub message: String,
}

/// Which audit events to read: every given criterion must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetEventFilter {
    /// Only events about this service.
    pub service: Option<String>,
    /// Only events about this host.
    pub host: Option<String>,
    /// Only events about this tenant's services.
    pub tenant: Option<String>,
    /// At most this many events, newest first.
    pub limit: usize,
}
