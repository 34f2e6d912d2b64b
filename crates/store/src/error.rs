//! The store's error type.

use caravan_tenancy::TenancyError;

use crate::Holding;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{what} {name:?} not found")]
    NotFound { what: &'static str, name: String },
    /// The name is already taken.
    #[error("{what} {name:?} already exists")]
    AlreadyExists { what: &'static str, name: String },
    /// The thing is in use and cannot be deleted.
    #[error("{what} {name:?} is in use: it owns {}; delete those first or force", describe(.holdings))]
    InUse {
        what: &'static str,
        name: String,
        holdings: Vec<Holding>,
    },
    /// A concurrent change got there first; nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// A change computed inside a transaction was invalid; nothing was written.
    #[error(transparent)]
    Invalid(#[from] TenancyError),
    /// The database failed or holds data this version cannot read.
    #[error("store failure: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn describe(holdings: &[Holding]) -> String {
    holdings
        .iter()
        .map(|h| format!("{} {}", h.count, h.what))
        .collect::<Vec<_>>()
        .join(", ")
}
