//! The seam for more destinations: a `LogSink` receives every durable batch, in log order.
//!
//! The local tantivy indexes take the prepared documents directly (`batch.rs`, `indexer.rs`).
//! An additional destination, such as forwarding to an Elasticsearch or OpenSearch cluster for
//! teams that outgrow one machine, implements this trait and is passed to
//! [`crate::LogStore::open_with_sinks`]; it receives each batch as the documents appended,
//! decoded from the write-ahead-log record (only when such a sink exists).
//!
//! Contract:
//! - `accept` runs on the write-ahead-log thread right after the group's fsync and before the
//!   appends are acknowledged: it must only enqueue (a bounded queue of its own), never do
//!   network or disk I/O inline, or it slows every tenant's ingestion.
//! - An error from an additional sink is logged and counted (`StoreStats::sink_errors`); it does
//!   not fail the append, whose documents are durable and indexed locally.
//! - Additional sinks do not see the batches replayed at open, and the log is truncated once the
//!   local indexes have committed, whatever the additional sinks did. A sink that needs
//!   at-least-once delivery will need its own committed position to hold truncation back
//!   (not implemented: no such sink exists yet).

use std::sync::Arc;

use crate::document::LogDocument;
use crate::error::LogStoreError;
use crate::wal::WalPosition;

/// A batch of documents that is durable in the write-ahead log (one append request).
#[derive(Debug)]
pub struct DurableBatch {
    /// The record's position in the write-ahead log.
    pub position: WalPosition,
    /// The documents, in the order they were appended.
    pub documents: Vec<LogDocument>,
}

/// A destination for durable batches. See the module documentation for the contract.
pub trait LogSink: Send + Sync + 'static {
    /// A short name for logs and errors.
    fn name(&self) -> &str;

    /// Takes a durable batch (by reference count: keep it as long as needed).
    fn accept(&self, batch: &Arc<DurableBatch>) -> Result<(), LogStoreError>;
}
