//! `caravan-logstore`: the durable, multi-tenant log store.
//!
//! The server normalises each document against the schema dictionary, pushes it to an
//! [`AppendBatch`] and hands the batch to [`LogStore::append_batch`]. This crate owns what happens next: durability (a write-ahead log with
//! group commit), partitioning (one tantivy index per tenant per UTC day), indexing,
//! retention and statistics. It knows tantivy and files; it knows nothing of HTTP.
//!
//! # Public API
//!
//! ```text
//! LogStore::open(LogStoreConfig) -> Result<LogStore>                       replays the log
//! LogStore::open_with_sinks(LogStoreConfig, Vec<Arc<dyn LogSink>>) -> Result<LogStore>
//! LogStore::append(Vec<LogDocument>) -> Result<AppendReceipt>               once fsync'd
//! LogStore::batch() -> AppendBatch; AppendBatch::push(LogDocument) -> Result<()>
//! LogStore::append_batch(AppendBatch) -> Result<AppendReceipt>               same, prepared
//! LogStore::refresh() -> Result<()>                                         commit + reload
//! LogStore::shutdown() -> Result<()>
//! LogStore::id_exists(tenant, id) -> Result<bool>                           incl. pending
//! LogStore::get(tenant, id) -> Result<Option<StoredLog>>
//! LogStore::count(tenant, TimeRange) -> Result<u64>
//! LogStore::search_recent(tenant, limit) -> Result<Vec<StoredLog>>          newest first
//! LogStore::search(SearchRequest) -> Result<SearchResult>                  filters, sort, aggs
//! LogStore::with_searchers(tenant, days, FnOnce(&LogSchema, &[(Day, Searcher)]) -> Result<R>)
//! LogStore::partitions(Option<tenant>) -> Result<Vec<PartitionInfo>>
//! LogStore::drop_partition(tenant, day) / drop_partitions_before(tenant, day) / drop_tenant
//! LogStore::enforce_retention(now_ms, Fn(&str) -> Option<u32>) -> Result<Vec<DroppedPartition>>
//! LogStore::stats() -> StoreStats
//! ```
//!
//! # On disk
//!
//! ```text
//! <root>/logstore.lock                   one store per root (flock)
//! <root>/wal/wal-<first position>.log    write-ahead log segments (wal.rs)
//! <root>/indexes/<tenant>/<YYYY-MM-DD>/  one tantivy index per tenant-day (schema.rs)
//! <root>/tombstones                      dropped partitions the log may still mention
//! <root>/trash/                          partitions being deleted (emptied at open)
//! ```
//!
//! Dropping a day or a tenant is deleting a directory.
//!
//! # Guarantees
//!
//! - `append` returns once its batch is fsync'd in the write-ahead log; concurrent appends
//!   share one fsync (group commit, `ingest.rs`).
//! - After a crash, `open` replays the log: every acknowledged document becomes searchable,
//!   exactly once (each partition's commit records the first log record it lacks, `indexer.rs`;
//!   writers are opened so that tantivy keeps every committed delete, `writers.rs`).
//! - Bounded: the log (`wal_bytes_max`), the append queue (`append_queue_max`), the indexer
//!   queue, open writers and their memory, open readers. A full log or queue answers
//!   [`LogStoreError::Backpressure`] at once.
//! - tantivy work runs on the store's indexer thread or on blocking threads, never on the
//!   async runtime.
//!
//! # Not guaranteed
//!
//! - `id_exists` followed by `append` is not atomic: two concurrent `create`s of the same new
//!   `_id` can both pass the check. Callers that need Elasticsearch's `create` exactly must
//!   serialise creates of a tenant (they are rare: generated ids need no check).
//! - Reads (`get`, `count`, `search_recent`, `search`, `with_searchers`) see committed data:
//!   up to `commit_interval` behind for a tenant read within `search_idle_after`; the first
//!   read of another tenant commits its partitions first (`activity.rs`). `refresh` commits
//!   everything.
//! - Durability against power loss relies on the disk honouring `fdatasync`; the crash test
//!   kills the process (SIGKILL), which proves replay, not the hardware.
//!
//! # Modules
//!
//! `config` (bounds), `activity` (search-idle tenants), `document` (input types, validation),
//! `day` (UTC days), `batch` (appends prepared on the caller's thread), `codec` (batch
//! encoding), `wal` (segments, replay, truncation), `ingest` (group commit thread), `sink`
//! (the seam for a second destination), `indexer` (writers, commits, exactly-once replay),
//! `writers` (LRU pool), `partition` (directories, index and reader cache), `pending` (ids not
//! yet searchable), `retention` (cutoffs, tombstones), `read` (get, count, recent), `schema`
//! (tantivy schema and query terms), `store` (the handle).

#![warn(missing_docs)]

mod activity;
mod batch;
mod codec;
mod config;
mod day;
mod document;
mod error;
mod filter;
mod indexer;
mod ingest;
mod partition;
mod pending;
mod read;
mod retention;
mod schema;
mod search;
pub mod sink;
mod store;
mod wal;
mod writers;

pub use batch::AppendBatch;
pub use config::{
    INDEXING_THREADS_PER_WRITER_MAX, LogStoreConfig, THREAD_MEMORY_BYTES_MAX,
    THREAD_MEMORY_BYTES_MIN,
};
pub use day::{DAY_MS, Day, TIMESTAMP_MS_END, TIMESTAMP_MS_MIN};
pub use document::{
    FIELD_KEY_BYTES_MAX, FieldValue, ID_BYTES_MAX, LogDocument, StoredLog, TENANT_BYTES_MAX,
    TimeRange, WriteMode, validate_tenant,
};
pub use error::LogStoreError;
pub use indexer::PARTITIONS_PER_BATCH_MAX;
pub use ingest::{AppendReceipt, GROUP_BYTES_MAX, MAINTENANCE_INTERVAL};
pub use partition::{DroppedPartition, PartitionInfo, PartitionKey};
pub use read::SEARCH_RECENT_LIMIT_MAX;
pub use retention::first_day_kept;
pub use schema::{
    DOCSTORE_BLOCK_BYTES, DOCSTORE_ZSTD_LEVEL, FIELD_ID, FIELD_KEYS, FIELD_NUMBERS, FIELD_SOURCE,
    FIELD_TEXT, FIELD_TIEBREAK, FIELD_TIMESTAMP, KEYWORD_INDEXED_BYTES_MAX, LogSchema,
};
pub use search::{
    AGGREGATION_BUCKETS_MAX, Aggregation, AggregationResult, HistogramBucket, Hit, SEARCH_HITS_MAX,
    SearchRequest, SearchResult, SortKey, SortOrder, TermsBucket,
};
pub use sink::{DurableBatch, LogSink};
pub use store::{LogStore, StoreStats};
pub use wal::{RECORD_BYTES_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, WalPosition};
pub use writers::WRITER_MERGE_THREADS;

/// tantivy, re-exported so that callers of [`LogStore::with_searchers`] build queries with the
/// same version.
pub use tantivy;
