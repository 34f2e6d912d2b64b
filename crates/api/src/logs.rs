//! Log usage accounting and maintenance requests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One tenant's log usage on one UTC day: the report that takes a platform from thousands of
/// indexed fields to the ones that matter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayUsage {
    /// The UTC day, `YYYY-MM-DD` (of ingestion).
    pub day: String,
    /// Documents received, accepted or not.
    pub documents_received: u64,
    /// Bytes of documents received (their JSON source lines), accepted or not.
    pub bytes_received: u64,
    /// Documents accepted and stored.
    pub documents_accepted: u64,
    /// Bytes of accepted documents: what the daily quota counts.
    pub bytes_accepted: u64,
    /// Bytes on disk of the tenant's partition for this day (filled in when reported).
    pub bytes_stored: u64,
    /// Accepted documents in which at least one value was coerced to its key's type.
    pub documents_coerced: u64,
    /// Accepted documents with at least one `_ignored` value.
    pub documents_with_ignored: u64,
    /// Values kept aside in `_ignored` records.
    pub ignored_values: u64,
    /// Rejected items, by reason (`document_parsing`, `quota`, `forbidden`, ...).
    pub rejected: BTreeMap<String, u64>,
    /// Keys not in the schema, with how many documents carried them (the most frequent first
    /// when listed; bounded per day, the rest counted in `unknown_keys_other`).
    pub unknown_keys: BTreeMap<String, u64>,
    /// Occurrences of unknown keys past the tracked bound.
    pub unknown_keys_other: u64,
}

/// The body of a purge request: exactly one of `day` or `before`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogPurge {
    /// Drop this UTC day's partition (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// Drop every partition strictly before this UTC day (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

/// What a purge or the retention task dropped.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurgedPartition {
    /// The tenant.
    pub tenant: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Documents it held.
    pub documents: u64,
    /// Bytes it took on disk.
    pub disk_bytes: u64,
}
