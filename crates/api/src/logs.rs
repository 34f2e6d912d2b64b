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
    /// Rejected items, by reason (`document_parsing`, `invalid_document`, `quota`, `forbidden`, ...).
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

/// A log search (`POST /api/v1/logs/search`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSearch {
    /// Tenants to search; globs allowed (`pay*`, `*`). A tenant token may leave it empty
    /// (its own tenant) and never reaches another tenant, whatever it names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// The query, in Lucene / Kibana syntax (`level:ERROR AND http.status:>=500`); empty for
    /// every document.
    #[serde(default)]
    pub query: String,
    /// Start of the time range (inclusive): a date or date math (`now-15m`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// End of the time range (exclusive). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    #[serde(default)]
    pub order: LogOrder,
    /// Hits to return (default 100, at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// Continue after this hit: a previous answer's `next` (or a hit's `cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Aggregations by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aggregations: BTreeMap<String, LogAggregation>,
}

/// The order of hits, by `@timestamp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogOrder {
    /// Newest first.
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// An aggregation of a log search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LogAggregation {
    /// Documents over time. Give `interval` (`30s`, `5m`, `1h`) or `buckets` (a target
    /// count, default 50, the interval then chosen for it).
    DateHistogram {
        /// A fixed interval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval: Option<String>,
        /// A target number of buckets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        buckets: Option<u32>,
    },
    /// The most frequent values of a keyword field.
    Terms {
        /// The field (an alias works).
        field: String,
        /// How many values (default 10, at most 1,000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u32>,
    },
    /// Count, min, max, average and sum of a number or date field.
    Stats {
        /// The field (an alias works).
        field: String,
    },
}

/// What a log search found.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogSearchResult {
    /// Matching documents in the time range.
    pub total: u64,
    /// The hits, in order.
    pub hits: Vec<LogHit>,
    /// The cursor for the next page (`after`), when this page was full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Aggregation results by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aggregations: BTreeMap<String, LogAggregationResult>,
    /// Milliseconds the search took.
    pub took_ms: u64,
}

/// One log.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogHit {
    /// Its tenant.
    pub tenant: String,
    /// Its `_id`.
    #[serde(rename = "_id")]
    pub id: String,
    /// Its `@timestamp` (RFC 3339, milliseconds).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// The stored (normalised) document.
    #[serde(rename = "_source")]
    #[schema(value_type = Object)]
    pub source: serde_json::Value,
    /// Where it sorts: `after` takes it.
    pub cursor: String,
}

/// The result of a [`LogAggregation`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogAggregationResult {
    /// Buckets in time order, empty ones included.
    DateHistogram {
        /// The interval, in milliseconds.
        interval_ms: i64,
        /// The buckets.
        buckets: Vec<TimeBucket>,
    },
    /// Values by decreasing count.
    Terms {
        /// The values.
        buckets: Vec<ValueBucket>,
        /// Documents with other values.
        other_count: u64,
    },
    /// Statistics (`null` when no document has a value).
    Stats {
        /// Values counted.
        count: u64,
        /// Smallest.
        min: Option<f64>,
        /// Largest.
        max: Option<f64>,
        /// Average.
        avg: Option<f64>,
        /// Sum.
        sum: f64,
    },
}

/// One bucket of a date histogram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimeBucket {
    /// Start, RFC 3339.
    pub start: String,
    /// Start, epoch milliseconds.
    pub start_ms: i64,
    /// Documents.
    pub count: u64,
}

/// One bucket of a terms aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ValueBucket {
    /// The value.
    pub key: String,
    /// Documents with it.
    pub count: u64,
}
