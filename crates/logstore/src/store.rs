//! `LogStore`: the handle the server holds. Async methods; every disk or tantivy operation runs
//! on the store's two threads or on tokio's blocking pool, never on the async runtime.
//!
//! Threads, each owned by the store and stopped by `shutdown` (or, like a crash, by dropping
//! the last handle: the channels close and the threads end without committing):
//! - `logstore-wal`: the write-ahead log and group commit (`ingest.rs`);
//! - `logstore-indexer`: the tantivy writers (`indexer.rs`).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tantivy::Searcher;
use tokio::sync::oneshot;

use crate::activity::SearchActivity;
use crate::batch::{AppendBatch, PreparedDocument};
use crate::codec;
use crate::config::LogStoreConfig;
use crate::day::Day;
use crate::document::{LogDocument, StoredLog, TimeRange, validate_tenant};
use crate::error::LogStoreError;
use crate::indexer::{
    Counters, DropRequest, Indexer, IndexerMessage, IndexerQueue, PARTITIONS_PER_BATCH_MAX, Shared,
    partitions_of,
};
use crate::ingest::{AppendReceipt, AppendRequest, WalMessage, WalThread, wal_full};
use crate::partition::{DroppedPartition, PartitionInfo, PartitionKey, Partitions};
use crate::pending::PendingIds;
use crate::read;
use crate::retention::{Tombstones, first_day_kept};
use crate::schema::LogSchema;
use crate::search::{self, SearchRequest, SearchResult};
use crate::sink::LogSink;
use crate::wal::{RECORD_BYTES_MAX, Wal};

/// How often `open` retries the root lock while another store holds it.
const ROOT_LOCK_RETRY: Duration = Duration::from_millis(10);

/// The durable, multi-tenant log store. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: LogStoreConfig,
    shared: Arc<Shared>,
    wal: SyncSender<WalMessage>,
    indexer: SyncSender<IndexerMessage>,
    closed: AtomicBool,
    threads: Mutex<Option<Threads>>,
}

struct Threads {
    wal: JoinHandle<Wal>,
    indexer: JoinHandle<File>,
}

/// A snapshot of the store's counters and gauges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Bytes the write-ahead log occupies.
    pub wal_bytes: u64,
    /// Its bound (`wal_bytes_max`).
    pub wal_bytes_max: u64,
    /// fsyncs of records since open: far fewer than `wal_records` under concurrency (group
    /// commit).
    pub wal_fsyncs: u64,
    /// Records (append requests) written since open.
    pub wal_records: u64,
    /// Documents acknowledged since open.
    pub documents_appended: u64,
    /// Documents indexed from the log at open.
    pub documents_replayed: u64,
    /// Documents found in the log at open that their partition had already committed.
    pub documents_skipped_on_replay: u64,
    /// Partition commits since open.
    pub commits: u64,
    /// Writers open now.
    pub writers_open: usize,
    /// Writers opened since open (reopening after an idle close counts again).
    pub writers_opened_total: u64,
    /// Indexing memory the open writers may use together (their shares of
    /// `indexing_memory_budget_bytes`).
    pub indexing_memory_bytes: usize,
    /// Partition readers open now.
    pub readers_open: usize,
    /// Acknowledged ids not yet searchable.
    pub pending_ids: usize,
    /// Batches an additional sink refused.
    pub sink_errors: u64,
}

impl LogStore {
    /// Opens the store at `config.root` (creating it), replays the write-ahead log into the
    /// partitions and commits, so that everything acknowledged before is searchable.
    pub async fn open(config: LogStoreConfig) -> Result<LogStore, LogStoreError> {
        LogStore::open_with_sinks(config, Vec::new()).await
    }

    /// Like [`LogStore::open`], with additional sinks that receive every durable batch after
    /// the tantivy indexer (see [`crate::sink`]).
    pub async fn open_with_sinks(
        config: LogStoreConfig,
        sinks: Vec<Arc<dyn LogSink>>,
    ) -> Result<LogStore, LogStoreError> {
        config.validate()?;
        blocking(move || open_blocking(config, sinks)).await
    }

    /// Appends a batch; returns once it is durable (fsync'd), not once it is searchable.
    ///
    /// Fails without writing anything on an invalid document, on a batch spanning more than
    /// [`crate::PARTITIONS_PER_BATCH_MAX`] tenant-days, with `Backpressure` when the
    /// write-ahead log or the append queue is full. If the returned future is dropped before
    /// it completes, the batch may or may not have been written.
    ///
    /// The documents are prepared on the calling thread; a caller that builds many documents
    /// prepares each as it builds it with [`LogStore::batch`] and [`LogStore::append_batch`].
    pub async fn append(
        &self,
        documents: Vec<LogDocument>,
    ) -> Result<AppendReceipt, LogStoreError> {
        let mut batch = self.batch();
        for document in documents {
            batch.push(document)?;
        }
        self.append_batch(batch).await
    }

    /// An empty batch to fill with [`AppendBatch::push`]: each document is validated, encoded
    /// for the write-ahead log and converted for tantivy as it is pushed, on the caller's
    /// thread (see `batch.rs`).
    pub fn batch(&self) -> AppendBatch {
        AppendBatch::new(self.inner.shared.partitions.schema().clone())
    }

    /// Appends a prepared batch, as [`LogStore::append`] does.
    pub async fn append_batch(&self, batch: AppendBatch) -> Result<AppendReceipt, LogStoreError> {
        self.check_writable()?;
        if batch.is_empty() {
            return Ok(AppendReceipt {
                position: None,
                documents: 0,
            });
        }
        let partitions = partitions_of(batch.documents()).len();
        if partitions > PARTITIONS_PER_BATCH_MAX {
            return Err(LogStoreError::TooManyPartitions {
                partitions,
                max: PARTITIONS_PER_BATCH_MAX,
            });
        }
        let config = &self.inner.config;
        let bytes = batch.record_bytes();
        let record_bytes_max = config.wal_bytes_max.min(RECORD_BYTES_MAX);
        if bytes > record_bytes_max {
            return Err(LogStoreError::BatchTooLarge {
                documents: batch.len(),
                bytes,
                max_bytes: record_bytes_max,
            });
        }
        let used = self.inner.shared.wal_bytes.load(Ordering::Acquire);
        if used + bytes > config.wal_bytes_max {
            return Err(wal_full(used, config.wal_bytes_max));
        }
        let (reply, receipt) = oneshot::channel();
        let request = AppendRequest {
            batch,
            record_bytes: bytes,
            reply,
        };
        match self.inner.wal.try_send(WalMessage::Append(request)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(LogStoreError::Backpressure(format!(
                    "append queue is full: {} requests are waiting for the write-ahead log",
                    config.append_queue_max
                )));
            }
            Err(TrySendError::Disconnected(_)) => return Err(self.stopped()),
        }
        receipt.await.map_err(|_| self.stopped())?
    }

    /// Makes everything acknowledged so far searchable (commit and reader reload): what
    /// `?refresh=true` and `?refresh=wait_for` need.
    pub async fn refresh(&self) -> Result<(), LogStoreError> {
        self.commit(None).await
    }

    /// Commits the partitions of `tenants` (all: `None`) and reloads their readers.
    async fn commit(&self, tenants: Option<Vec<String>>) -> Result<(), LogStoreError> {
        self.check_open()?;
        let (reply, done) = oneshot::channel();
        self.send_to_indexer(IndexerMessage::Refresh(tenants, reply))
            .await?;
        done.await.map_err(|_| self.stopped())?
    }

    /// Notes a read of `tenants`. The partitions of a search-idle tenant commit rarely
    /// (`activity.rs`), so its first read commits them first and sees every acknowledged
    /// document.
    async fn note_read(&self, tenants: &[&str]) -> Result<(), LogStoreError> {
        let now = Instant::now();
        let idle: Vec<String> = tenants
            .iter()
            .filter(|tenant| self.inner.shared.activity.read(tenant, now))
            .map(|tenant| tenant.to_string())
            .collect();
        if idle.is_empty() {
            return Ok(());
        }
        self.commit(Some(idle)).await
    }

    /// Commits everything, stops the threads, truncates the log and releases the root. Later
    /// calls fail with `Closed`. Idempotent.
    pub async fn shutdown(&self) -> Result<(), LogStoreError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let Some(threads) = self
            .inner
            .threads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        else {
            return Ok(());
        };
        // 1. The log thread finishes the queued appends and hands the log back.
        let (reply, stopped) = oneshot::channel();
        let wal_sender = self.inner.wal.clone();
        blocking(move || {
            wal_sender
                .send(WalMessage::Shutdown(reply))
                .map_err(|_| LogStoreError::Closed)
        })
        .await?;
        let _ = stopped.await;
        let (mut wal, indexer_thread) = blocking(move || {
            let wal = threads.wal.join().map_err(|_| {
                LogStoreError::Unavailable("the write-ahead log thread panicked".into())
            })?;
            Ok((wal, threads.indexer))
        })
        .await?;
        // 2. The indexer commits everything and closes its writers.
        let (reply, committed) = oneshot::channel();
        self.send_to_indexer(IndexerMessage::Shutdown(reply))
            .await?;
        let through = committed.await.map_err(|_| self.stopped())??;
        // 3. Truncate what is committed, once the indexer thread (and the root lock) is gone.
        blocking(move || {
            let root_lock = indexer_thread
                .join()
                .map_err(|_| LogStoreError::Unavailable("the indexer thread panicked".into()))?;
            let truncated = wal.truncate_through(through);
            drop(root_lock);
            truncated
        })
        .await
    }

    /// Whether a document of the tenant has this `_id`, committed or only acknowledged.
    pub async fn id_exists(&self, tenant: &str, id: &str) -> Result<bool, LogStoreError> {
        validate_tenant(tenant)?;
        // Pending first, then the indexes: an id leaves the pending set only after its
        // partition's reader was reloaded, so one of the two sees it.
        if self.inner.shared.pending.contains(tenant, id) {
            return Ok(true);
        }
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with_partitions(move |partitions| read::committed_id_exists(partitions, &tenant, &id))
            .await
    }

    /// The tenant's searchable document with this `_id` (newest partition first).
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Option<StoredLog>, LogStoreError> {
        validate_tenant(tenant)?;
        self.note_read(&[tenant]).await?;
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with_partitions(move |partitions| read::get(partitions, &tenant, &id))
            .await
    }

    /// Searchable documents of the tenant with `@timestamp` in `range`.
    pub async fn count(&self, tenant: &str, range: TimeRange) -> Result<u64, LogStoreError> {
        validate_tenant(tenant)?;
        self.note_read(&[tenant]).await?;
        let tenant = tenant.to_string();
        self.with_partitions(move |partitions| read::count(partitions, &tenant, range))
            .await
    }

    /// The tenant's `limit` most recent searchable documents, newest first (at most
    /// [`read::SEARCH_RECENT_LIMIT_MAX`]).
    pub async fn search_recent(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<StoredLog>, LogStoreError> {
        validate_tenant(tenant)?;
        self.note_read(&[tenant]).await?;
        let tenant = tenant.to_string();
        self.with_partitions(move |partitions| read::search_recent(partitions, &tenant, limit))
            .await
    }

    /// Searches the tenants' partitions of the request's days: the hits in `(@timestamp,
    /// _tie)` order after `search_after`, the exact total, and the aggregations. Sees the
    /// last commit, like every read.
    pub async fn search(&self, request: SearchRequest) -> Result<SearchResult, LogStoreError> {
        for (tenant, _) in &request.tenants {
            validate_tenant(tenant)?;
        }
        let tenants: Vec<&str> = request.tenants.iter().map(|(t, _)| t.as_str()).collect();
        self.note_read(&tenants).await?;
        self.with_partitions(move |partitions| search::search(partitions, &request))
            .await
    }

    /// Runs `search` on a blocking thread with the schema and a searcher of each of the
    /// tenant's partitions within `days` (oldest first; only those partitions are opened).
    /// The searchers see the last commit; call [`LogStore::refresh`] first for more.
    pub async fn with_searchers<R, F>(
        &self,
        tenant: &str,
        days: RangeInclusive<Day>,
        search: F,
    ) -> Result<R, LogStoreError>
    where
        F: FnOnce(&LogSchema, &[(Day, Searcher)]) -> Result<R, LogStoreError> + Send + 'static,
        R: Send + 'static,
    {
        validate_tenant(tenant)?;
        self.note_read(&[tenant]).await?;
        let tenant = tenant.to_string();
        self.with_partitions(move |partitions| {
            let searchers = read::searchers(partitions, &tenant, days)?;
            search(partitions.schema(), &searchers)
        })
        .await
    }

    /// The partitions of a tenant (or all), with documents and bytes on disk.
    pub async fn partitions(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<PartitionInfo>, LogStoreError> {
        if let Some(tenant) = tenant {
            validate_tenant(tenant)?;
        }
        let tenant = tenant.map(str::to_string);
        self.with_partitions(move |partitions| {
            partitions
                .keys(tenant.as_deref())?
                .iter()
                .map(|key| partitions.info(key))
                .collect()
        })
        .await
    }

    /// Drops one partition; `None` if it did not exist.
    pub async fn drop_partition(
        &self,
        tenant: &str,
        day: Day,
    ) -> Result<Option<DroppedPartition>, LogStoreError> {
        validate_tenant(tenant)?;
        let key = PartitionKey {
            tenant: tenant.to_string(),
            day,
        };
        let dropped = self.drop(DropRequest::Partition(key)).await?;
        Ok(dropped.into_iter().next())
    }

    /// Drops the tenant's partitions of days before `day`.
    pub async fn drop_partitions_before(
        &self,
        tenant: &str,
        day: Day,
    ) -> Result<Vec<DroppedPartition>, LogStoreError> {
        validate_tenant(tenant)?;
        self.drop(DropRequest::Before(vec![(tenant.to_string(), day)]))
            .await
    }

    /// Drops every partition of the tenant.
    pub async fn drop_tenant(&self, tenant: &str) -> Result<Vec<DroppedPartition>, LogStoreError> {
        validate_tenant(tenant)?;
        self.drop(DropRequest::Tenant(tenant.to_string())).await
    }

    /// Drops, for every tenant whose `retention_days` is `Some(n)`, the partitions older than
    /// the `n` most recent UTC days at `now_ms` (today included). `None` keeps everything.
    pub async fn enforce_retention(
        &self,
        now_ms: i64,
        retention_days: impl Fn(&str) -> Option<u32>,
    ) -> Result<Vec<DroppedPartition>, LogStoreError> {
        let tenants = self.with_partitions(Partitions::tenants).await?;
        let today = Day::from_timestamp_ms(now_ms);
        let cutoffs: Vec<(String, Day)> = tenants
            .into_iter()
            .filter_map(|tenant| {
                let days = retention_days(&tenant)?;
                Some((tenant, first_day_kept(today, days)))
            })
            .collect();
        if cutoffs.is_empty() {
            return Ok(Vec::new());
        }
        self.drop(DropRequest::Before(cutoffs)).await
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        let shared = &self.inner.shared;
        let counters: &Counters = &shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StoreStats {
            wal_bytes: shared.wal_bytes.load(Ordering::Acquire),
            wal_bytes_max: self.inner.config.wal_bytes_max,
            wal_fsyncs: load(&counters.wal_fsyncs),
            wal_records: load(&counters.wal_records),
            documents_appended: load(&counters.documents_appended),
            documents_replayed: load(&counters.documents_replayed),
            documents_skipped_on_replay: load(&counters.documents_skipped_on_replay),
            commits: load(&counters.commits),
            writers_open: counters.writers_open.load(Ordering::Relaxed),
            writers_opened_total: load(&counters.writers_opened_total),
            indexing_memory_bytes: counters.indexing_memory_bytes.load(Ordering::Relaxed),
            readers_open: shared.partitions.readers_open(),
            pending_ids: shared.pending.len(),
            sink_errors: load(&counters.sink_errors),
        }
    }

    /// The schema of every partition (field handles and term builders for queries).
    pub fn schema(&self) -> &LogSchema {
        self.inner.shared.partitions.schema()
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &LogStoreConfig {
        &self.inner.config
    }

    async fn drop(&self, request: DropRequest) -> Result<Vec<DroppedPartition>, LogStoreError> {
        self.check_open()?;
        let (reply, dropped) = oneshot::channel();
        self.send_to_indexer(IndexerMessage::Drop(request, reply))
            .await?;
        dropped.await.map_err(|_| self.stopped())?
    }

    async fn with_partitions<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Partitions) -> Result<R, LogStoreError> + Send + 'static,
    ) -> Result<R, LogStoreError> {
        let shared = Arc::clone(&self.inner.shared);
        blocking(move || read(&shared.partitions)).await
    }

    async fn send_to_indexer(&self, message: IndexerMessage) -> Result<(), LogStoreError> {
        let sender = self.inner.indexer.clone();
        // The queue may be full of batches: wait on a blocking thread, not on the runtime.
        match sender.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(message)) => {
                blocking(move || sender.send(message).map_err(|_| LogStoreError::Closed)).await
            }
            Err(TrySendError::Disconnected(_)) => Err(self.stopped()),
        }
    }

    fn check_open(&self) -> Result<(), LogStoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogStoreError::Closed);
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<(), LogStoreError> {
        self.check_open()?;
        match self.inner.shared.failure() {
            Some(failure) => Err(LogStoreError::Unavailable(failure)),
            None => Ok(()),
        }
    }

    /// The error for a background thread that is gone.
    fn stopped(&self) -> LogStoreError {
        match self.inner.shared.failure() {
            Some(failure) => LogStoreError::Unavailable(failure),
            None => LogStoreError::Closed,
        }
    }
}

/// Runs blocking work on tokio's blocking pool.
async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, LogStoreError> + Send + 'static,
) -> Result<R, LogStoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LogStoreError::Unavailable(format!("blocking task failed: {e}")))?
}

fn open_blocking(
    config: LogStoreConfig,
    sinks: Vec<Arc<dyn LogSink>>,
) -> Result<LogStore, LogStoreError> {
    let root = config.root.clone();
    fs::create_dir_all(&root).map_err(|e| LogStoreError::io("create log store root", &root, e))?;
    let root_lock = lock_root(&root, config.root_lock_wait)?;
    let schema = LogSchema::new();
    let partitions = Partitions::open(&root, schema.clone(), config.readers_open_max)?;
    let shared = Arc::new(Shared {
        partitions,
        pending: PendingIds::default(),
        counters: Counters::default(),
        failure: Mutex::new(None),
        truncate_through: AtomicU64::new(0),
        wal_bytes: AtomicU64::new(0),
        wal_first_position: AtomicU64::new(0),
        activity: SearchActivity::new(config.search_idle_after),
    });
    let tombstones = Tombstones::load(&root)?;
    let mut indexer = Indexer::new(Arc::clone(&shared), &config, tombstones)?;

    // Replay: every record goes through the same path as live batches; partitions skip what
    // their last commit already holds.
    let wal_dir = root.join("wal");
    let started = Instant::now();
    let mut replayed = 0u64;
    let (mut wal, summary) = Wal::open(
        &wal_dir,
        config.wal_segment_bytes(),
        indexer.max_floor_position(),
        |position, payload| {
            let documents =
                codec::decode(payload).map_err(|reason| LogStoreError::CorruptRecord {
                    path: wal_dir.clone(),
                    position,
                    reason,
                })?;
            let documents = documents
                .into_iter()
                .map(|document| PreparedDocument::new(&schema, document))
                .collect();
            replayed += indexer.apply(position, documents)?;
            Ok(())
        },
    )?;
    indexer.commit_all()?;
    wal.truncate_through(indexer.truncation_point())?;
    shared.wal_bytes.store(wal.bytes(), Ordering::Release);
    shared
        .wal_first_position
        .store(wal.first_position(), Ordering::Release);
    shared
        .counters
        .documents_replayed
        .store(replayed, Ordering::Relaxed);
    tracing::info!(
        root = %root.display(),
        records = summary.records,
        documents = replayed,
        skipped = shared.counters.documents_skipped_on_replay.load(Ordering::Relaxed),
        torn_bytes = summary.torn_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "log store opened"
    );

    let (indexer_sender, indexer_messages) = sync_channel(config.index_queue_max);
    let indexer_thread = std::thread::Builder::new()
        .name("logstore-indexer".into())
        .spawn(move || indexer.run(indexer_messages, root_lock))
        .map_err(|e| LogStoreError::io("spawn indexer thread", &root, e))?;
    let (wal_sender, wal_messages) = sync_channel(config.append_queue_max);
    let wal_thread = WalThread {
        truncated_through: 0,
        wal,
        shared: Arc::clone(&shared),
        indexer: IndexerQueue {
            sender: indexer_sender.clone(),
        },
        sinks,
        wal_bytes_max: config.wal_bytes_max,
        buffer: Vec::new(),
    };
    let wal_thread = std::thread::Builder::new()
        .name("logstore-wal".into())
        .spawn(move || wal_thread.run(wal_messages))
        .map_err(|e| LogStoreError::io("spawn write-ahead log thread", &root, e))?;
    Ok(LogStore {
        inner: Arc::new(Inner {
            config,
            shared,
            wal: wal_sender,
            indexer: indexer_sender,
            closed: AtomicBool::new(false),
            threads: Mutex::new(Some(Threads {
                wal: wal_thread,
                indexer: indexer_thread,
            })),
        }),
    })
}

/// Takes the root's lock file, waiting up to `wait` for another store to release it.
fn lock_root(root: &Path, wait: Duration) -> Result<File, LogStoreError> {
    let path = root.join("logstore.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LogStoreError::io("open lock file", &path, e))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(ROOT_LOCK_RETRY);
            }
            Err(TryLockError::WouldBlock) => return Err(LogStoreError::Locked(root.to_path_buf())),
            Err(TryLockError::Error(e)) => return Err(LogStoreError::io("lock", &path, e)),
        }
    }
}
