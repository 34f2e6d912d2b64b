//! The crate's one error type.
//!
//! Each variant names the thing that is wrong (tenant, partition, path, bound) so that the
//! server can log it as is and map the variant to one HTTP status: `Backpressure` is the
//! 429 case, `InvalidDocument`/`InvalidTenant`/`BatchTooLarge`/`TooManyPartitions` are the 400
//! cases, `Closed` and
//! `Unavailable` are 503, everything else is an internal error.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the log store.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// The store is saturated: the write-ahead log or the append queue is full. Nothing was
    /// written; the caller should retry later (HTTP 429). The message says which bound was hit.
    #[error("log store is saturated: {0}")]
    Backpressure(String),

    /// A tenant name that is not a DNS label (1 to 63 of `a-z`, `0-9`, `-`, not starting or
    /// ending with `-`). Checked at this boundary because tenant names become directory names.
    #[error("invalid tenant name {tenant:?}: {reason}")]
    InvalidTenant {
        /// The rejected name.
        tenant: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A document that breaks one of the store's rules; nothing of the batch was written.
    #[error("invalid document {id:?} of tenant {tenant:?}: {reason}")]
    InvalidDocument {
        /// The tenant of the document.
        tenant: String,
        /// The document's `_id` (possibly truncated).
        id: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A batch whose write-ahead-log record would exceed what the log can hold at all.
    #[error(
        "batch of {documents} documents needs {bytes} bytes in the write-ahead log, more than the {max_bytes} bytes it may hold"
    )]
    BatchTooLarge {
        /// Documents in the batch.
        documents: usize,
        /// Encoded size of the batch.
        bytes: u64,
        /// The bound that was exceeded.
        max_bytes: u64,
    },

    /// A batch whose documents fall in more partitions (tenant-days) than one batch may span.
    #[error("batch spans {partitions} partitions (tenant and day), more than {max}; split it")]
    TooManyPartitions {
        /// Distinct partitions of the batch.
        partitions: usize,
        /// The bound (`PARTITIONS_PER_BATCH_MAX`).
        max: usize,
    },

    /// The configuration breaks a bound.
    #[error("invalid log store configuration: {0}")]
    InvalidConfig(String),

    /// A file-system operation failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done ("open write-ahead log segment", ...).
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// tantivy failed on a partition.
    #[error("index error on partition {partition}: {source}")]
    Index {
        /// `tenant/YYYY-MM-DD`, or a description of the index operation.
        partition: String,
        /// The underlying error.
        #[source]
        source: tantivy::TantivyError,
    },

    /// The write-ahead log holds a record that cannot be decoded although its checksum is
    /// right: a bug or a format change, never a torn write.
    #[error("corrupt write-ahead log record at position {position} in {path}: {reason}")]
    CorruptRecord {
        /// The segment file.
        path: PathBuf,
        /// The record's position.
        position: u64,
        /// What is wrong.
        reason: String,
    },

    /// Another store (in this process or another) holds the root directory.
    #[error("log store root {0} is locked by another store")]
    Locked(PathBuf),

    /// A background thread failed earlier; the store refuses writes until it is reopened
    /// (reopening replays the write-ahead log, so nothing acknowledged is lost).
    #[error("log store is unavailable: {0}")]
    Unavailable(String),

    /// A search the store cannot run (too many hits asked, an aggregation over its limits).
    #[error("invalid search: {0}")]
    InvalidSearch(String),

    /// The store was shut down.
    #[error("log store is shut down")]
    Closed,
}

impl LogStoreError {
    /// Builds an [`LogStoreError::Io`] from an operation, a path and the error.
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogStoreError::Io {
            operation,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`LogStoreError::Index`] for a partition (or an index operation).
    pub(crate) fn index(partition: impl ToString, source: tantivy::TantivyError) -> Self {
        LogStoreError::Index {
            partition: partition.to_string(),
            source,
        }
    }
}
