//! The indexer: one thread that owns every tantivy writer and applies durable batches to the
//! partitions, in log order.
//!
//! Life of a document: the caller prepared it (`batch.rs`: its tantivy document is built); the
//! write-ahead-log thread makes its batch durable, then hands the documents to
//! [`IndexerQueue`] (a bounded channel); this thread routes each document to its partition's
//! writer (opened lazily, least recently used closed), commits every `commit_interval` and on
//! `refresh`, closes idle writers, and tells the log how far it may be truncated.
//!
//! Exactly-once replay: commits happen only between records. A partition's commit records the
//! first record it does not hold (its *floor* at the next open, raised by a drop's tombstone);
//! replay applies to a partition only the documents of records at or above its floor. The log
//! is truncated only below the oldest record with uncommitted documents in any writer.
//!
//! That is exact only if a partition's commits keep every operation of the records below its
//! floor for good, the deletes of upserts included: a document that a committed delete brings
//! back is never deleted again (its records are below the floor, and soon out of the log).
//! tantivy 0.27 can do that to a delete that is the first operation of a newly opened writer,
//! in a merge of committed segments (the duplicate that `tests/crash.rs` found); writers are
//! therefore opened by `writers::open_writer`, which explains the defect and avoids it.
//!
//! Writers: before a record, the least recently used writers that the record does not need are
//! closed to make room; the record's own partitions (at most [`PARTITIONS_PER_BATCH_MAX`], checked
//! at append) are then opened even past `writers_open_max`, and the pool is brought back under
//! it after the record. So a record never forces a commit in its middle, and a batch that mixes
//! partitions does not thrash writers document by document.
//!
//! Failures are fail-stop: a tantivy or I/O error stops the thread, writes are refused with
//! `Unavailable`, and a reopen replays the log (nothing acknowledged is lost).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tantivy::collector::Count;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tokio::sync::oneshot;

use crate::activity::SearchActivity;
use crate::batch::PreparedDocument;
use crate::config::LogStoreConfig;
use crate::day::Day;
use crate::document::WriteMode;
use crate::error::LogStoreError;
use crate::partition::{DroppedPartition, PartitionKey, Partitions, commit_payload};
use crate::pending::PendingIds;
use crate::retention::Tombstones;
use crate::schema::LogSchema;
use crate::wal::WalPosition;
use crate::writers::{OpenWriter, WriterPool};

/// Partitions one batch may span (distinct tenant-days); a larger batch is refused at append.
/// Bounds the writers a single record may hold open beyond `writers_open_max`.
pub const PARTITIONS_PER_BATCH_MAX: usize = 64;

/// State shared by the store's handle, the write-ahead-log thread and the indexer thread.
pub(crate) struct Shared {
    pub partitions: Partitions,
    pub pending: PendingIds,
    pub counters: Counters,
    /// Why the store stopped accepting writes, once a background thread failed.
    pub failure: Mutex<Option<String>>,
    /// Indexer -> log: every record up to here is committed in every partition.
    pub truncate_through: AtomicU64,
    /// Log -> everyone: bytes on disk.
    pub wal_bytes: AtomicU64,
    /// Log -> indexer: the first position still in the log.
    pub wal_first_position: AtomicU64,
    /// Readers -> indexer: which tenants are search-active.
    pub activity: SearchActivity,
}

impl Shared {
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn fail(&self, what: &str, error: &LogStoreError) {
        tracing::error!(%error, "{what} failed; the log store refuses writes until reopened");
        let mut failure = self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failure.get_or_insert_with(|| format!("{what} failed: {error}"));
    }
}

/// Counters behind [`crate::StoreStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub wal_fsyncs: AtomicU64,
    pub wal_records: AtomicU64,
    pub documents_appended: AtomicU64,
    pub documents_replayed: AtomicU64,
    pub documents_skipped_on_replay: AtomicU64,
    pub commits: AtomicU64,
    pub writers_open: AtomicUsize,
    pub indexing_memory_bytes: AtomicUsize,
    pub writers_opened_total: AtomicU64,
    pub sink_errors: AtomicU64,
}

/// What the indexer thread is asked to do.
pub(crate) enum IndexerMessage {
    /// A durable record's documents.
    Batch(WalPosition, Vec<PreparedDocument>),
    /// Commit the partitions of these tenants (all: `None`).
    Refresh(
        Option<Vec<String>>,
        oneshot::Sender<Result<(), LogStoreError>>,
    ),
    Drop(
        DropRequest,
        oneshot::Sender<Result<Vec<DroppedPartition>, LogStoreError>>,
    ),
    Shutdown(oneshot::Sender<Result<WalPosition, LogStoreError>>),
}

/// Which partitions to drop.
pub(crate) enum DropRequest {
    Partition(PartitionKey),
    /// For each tenant, the partitions before the day.
    Before(Vec<(String, Day)>),
    Tenant(String),
}

/// The way to the indexer thread: it enqueues durable batches (waiting when the queue is full,
/// which is the backpressure path).
pub(crate) struct IndexerQueue {
    pub sender: SyncSender<IndexerMessage>,
}

impl IndexerQueue {
    /// Enqueues the documents of the durable record at `position`.
    pub(crate) fn send(
        &self,
        position: WalPosition,
        documents: Vec<PreparedDocument>,
    ) -> Result<(), LogStoreError> {
        self.sender
            .send(IndexerMessage::Batch(position, documents))
            .map_err(|_| LogStoreError::Unavailable("the indexer thread has stopped".to_string()))
    }
}

/// The indexer's state. Built at open (replay runs on it), then moved into its thread.
pub(crate) struct Indexer {
    shared: Arc<Shared>,
    schema: LogSchema,
    writers: WriterPool,
    /// Per partition, the first record whose documents are not in its last commit (records
    /// below were committed, or dropped with the partition).
    floors: HashMap<PartitionKey, WalPosition>,
    /// The partitions that exist, per tenant (the indexer alone creates and drops them).
    known: BTreeMap<String, BTreeSet<Day>>,
    tombstones: Tombstones,
    /// The last record applied (0: none since open). The indexer is always between records
    /// when it commits, so a commit holds every record up to here.
    completed: WalPosition,
    commit_interval: Duration,
    idle_commit_interval: Duration,
    wal_commit_bytes: u64,
    writer_idle_close: Duration,
}

impl Indexer {
    /// Reads every partition's committed next record and the tombstones.
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: &LogStoreConfig,
        tombstones: Tombstones,
    ) -> Result<Indexer, LogStoreError> {
        let mut floors = HashMap::new();
        let mut known: BTreeMap<String, BTreeSet<Day>> = BTreeMap::new();
        for key in shared.partitions.keys(None)? {
            if let Some(next_record) = shared.partitions.committed_next_record(&key)? {
                floors.insert(key.clone(), next_record);
            }
            known.entry(key.tenant.clone()).or_default().insert(key.day);
        }
        for (key, next_record) in tombstones.entries() {
            let floor = floors.entry(key.clone()).or_default();
            *floor = (*floor).max(*next_record);
        }
        Ok(Indexer {
            schema: shared.partitions.schema().clone(),
            shared,
            writers: WriterPool::new(config),
            floors,
            known,
            tombstones,
            completed: 0,
            commit_interval: config.commit_interval,
            idle_commit_interval: config.idle_commit_interval.max(config.commit_interval),
            wal_commit_bytes: config.wal_commit_bytes(),
            writer_idle_close: config.writer_idle_close,
        })
    }

    /// The highest position any partition or tombstone refers to: the log must not reuse
    /// positions below it.
    pub(crate) fn max_floor_position(&self) -> WalPosition {
        self.floors.values().copied().max().unwrap_or(0)
    }

    /// The record through which the log may be truncated.
    pub(crate) fn truncation_point(&self) -> WalPosition {
        match self.writers.oldest_uncommitted() {
            Some(position) => position.saturating_sub(1),
            None => self.completed,
        }
    }

    fn floor(&self, key: &PartitionKey) -> WalPosition {
        self.floors.get(key).copied().unwrap_or_default()
    }

    /// Applies one durable record (live, or replayed at open); returns the documents added
    /// (the others were below their partition's floor).
    pub(crate) fn apply(
        &mut self,
        position: WalPosition,
        documents: Vec<PreparedDocument>,
    ) -> Result<u64, LogStoreError> {
        debug_assert!(position > self.completed);
        let needed = partitions_of(&documents);
        self.make_room(&needed)?;
        let now = Instant::now();
        let (mut applied, mut skipped) = (0u64, 0u64);
        for document in documents {
            let PreparedDocument {
                key,
                id,
                mode,
                tantivy,
            } = document;
            if mode == WriteMode::Upsert {
                self.delete_everywhere(&key.tenant, &id, position)?;
            }
            if position < self.floor(&key) {
                skipped += 1;
                continue;
            }
            let writer = self.writer(&key)?;
            writer
                .writer
                .add_document(tantivy)
                .map_err(|e| LogStoreError::index(&key, e))?;
            writer.written(position, now);
            applied += 1;
        }
        self.completed = position;
        // Between records again: closing (and so committing) writers is safe now.
        while self.writers.is_over_limit() {
            let Some(victim) = self.writers.least_recently_used(&[]) else {
                break;
            };
            self.close(&victim, true)?;
        }
        if skipped > 0 {
            self.shared
                .counters
                .documents_skipped_on_replay
                .fetch_add(skipped, Ordering::Relaxed);
        }
        Ok(applied)
    }

    /// Before a record: closes least recently used writers the record does not need, so that
    /// opening the ones it needs stays within `writers_open_max` when possible.
    fn make_room(&mut self, needed: &[PartitionKey]) -> Result<(), LogStoreError> {
        let missing = needed
            .iter()
            .filter(|key| !self.writers.contains(key))
            .count();
        while missing > 0 && self.writers.len() + missing > self.writers.open_max() {
            let Some(victim) = self.writers.least_recently_used(needed) else {
                break;
            };
            self.close(&victim, true)?;
        }
        // Memory shares: writers opened with more than this many writers allow give it back.
        for oversized in self.writers.plan(self.writers.len() + missing) {
            self.close(&oversized, true)?;
        }
        Ok(())
    }

    /// The open writer of a partition, opening it (and creating the partition) if needed. Never
    /// closes another writer: the caller may be in the middle of a record.
    fn writer(&mut self, key: &PartitionKey) -> Result<&mut OpenWriter, LogStoreError> {
        if !self.writers.contains(key) {
            let index = self.shared.partitions.index(key, true)?.ok_or_else(|| {
                LogStoreError::Unavailable(format!("partition {key} cannot be created"))
            })?;
            self.writers.open(key, &index)?;
            self.known
                .entry(key.tenant.clone())
                .or_default()
                .insert(key.day);
            self.publish_writer_counts();
        }
        self.writers.get_mut(key).ok_or_else(|| {
            LogStoreError::Unavailable(format!("writer of partition {key} vanished"))
        })
    }

    /// Upsert: deletes the tenant's documents with this `_id`, wherever they are.
    fn delete_everywhere(
        &mut self,
        tenant: &str,
        id: &str,
        position: WalPosition,
    ) -> Result<(), LogStoreError> {
        let days: Vec<Day> = self
            .known
            .get(tenant)
            .map(|days| days.iter().copied().collect())
            .unwrap_or_default();
        let term = self.schema.id_term(id);
        for day in days {
            let key = PartitionKey {
                tenant: tenant.to_string(),
                day,
            };
            if position < self.floor(&key) {
                continue;
            }
            // An open writer may hold the id uncommitted: delete blindly there. Elsewhere
            // everything is committed, and the reader (reloaded after each commit) knows.
            let present = self.writers.contains(&key)
                || match self.shared.partitions.searcher(&key)? {
                    Some(searcher) => {
                        let query = TermQuery::new(term.clone(), IndexRecordOption::Basic);
                        searcher
                            .search(&query, &Count)
                            .map_err(|e| LogStoreError::index(&key, e))?
                            > 0
                    }
                    None => false,
                };
            if present {
                let writer = self.writer(&key)?;
                writer.writer.delete_term(term.clone());
                writer.written(position, Instant::now());
            }
        }
        Ok(())
    }

    /// Commits a partition's writer (between records), recording the next record, and reloads
    /// its reader.
    fn commit(&mut self, key: &PartitionKey) -> Result<(), LogStoreError> {
        let next_record = self.completed + 1;
        let Some(writer) = self.writers.get_mut(key) else {
            return Ok(());
        };
        if writer.first_uncommitted.is_none() {
            return Ok(());
        }
        let mut prepared = writer
            .writer
            .prepare_commit()
            .map_err(|e| LogStoreError::index(key, e))?;
        prepared.set_payload(&commit_payload(next_record));
        prepared
            .commit()
            .map_err(|e| LogStoreError::index(key, e))?;
        writer.committed();
        let floor = self.floors.entry(key.clone()).or_default();
        *floor = (*floor).max(next_record);
        self.shared.counters.commits.fetch_add(1, Ordering::Relaxed);
        self.shared.partitions.reload(key)
    }

    /// Commits every writer with uncommitted operations; then forgets the pending ids the
    /// commits cover and lets the log truncate.
    pub(crate) fn commit_all(&mut self) -> Result<(), LogStoreError> {
        self.commit_where(|_, _| true)
    }

    /// Commits the writers with uncommitted operations for which `due(partition, uncommitted
    /// since)` holds; then forgets the pending ids the commits cover and lets the log truncate.
    fn commit_where(
        &mut self,
        due: impl Fn(&PartitionKey, Instant) -> bool,
    ) -> Result<(), LogStoreError> {
        for (key, since) in self.writers.uncommitted() {
            if due(&key, since) {
                self.commit(&key)?;
            }
        }
        let floors = &self.floors;
        self.shared
            .pending
            .forget_committed(|key| floors.get(key).copied());
        self.publish_truncation();
        self.tombstones
            .prune(self.shared.wal_first_position.load(Ordering::Acquire))
    }

    fn close(&mut self, key: &PartitionKey, commit: bool) -> Result<(), LogStoreError> {
        if commit {
            self.commit(key)?;
        }
        // Dropping the writer discards what it did not commit and joins its threads.
        drop(self.writers.remove(key));
        self.publish_writer_counts();
        Ok(())
    }

    fn publish_truncation(&self) {
        self.shared
            .truncate_through
            .fetch_max(self.truncation_point(), Ordering::AcqRel);
    }

    fn publish_writer_counts(&self) {
        let counters = &self.shared.counters;
        counters
            .writers_open
            .store(self.writers.len(), Ordering::Relaxed);
        counters
            .indexing_memory_bytes
            .store(self.writers.memory_bytes(), Ordering::Relaxed);
        counters
            .writers_opened_total
            .store(self.writers.opened_total(), Ordering::Relaxed);
    }

    /// Periodic work: commit what is due (`activity.rs`), close idle writers.
    fn tick(&mut self) -> Result<(), LogStoreError> {
        let now = Instant::now();
        let log_filling = self.shared.wal_bytes.load(Ordering::Acquire) >= self.wal_commit_bytes;
        let (shared, idle_commit_interval) = (Arc::clone(&self.shared), self.idle_commit_interval);
        self.commit_where(|key, since| {
            log_filling
                || now.saturating_duration_since(since) >= idle_commit_interval
                || shared.activity.is_active(&key.tenant, now)
        })?;
        self.shared.activity.forget_idle(now);
        // An idle writer may hold a search-idle tenant's uncommitted documents: commit them.
        for key in self.writers.idle(now, self.writer_idle_close) {
            self.close(&key, true)?;
        }
        // Fewer writers open: the committed ones reopen with a larger share when next used.
        for key in self.writers.undersized() {
            self.close(&key, false)?;
        }
        Ok(())
    }

    fn drop_partitions(
        &mut self,
        request: DropRequest,
    ) -> Result<Vec<DroppedPartition>, LogStoreError> {
        let keys: Vec<PartitionKey> = match request {
            DropRequest::Partition(key) => self
                .known
                .get(&key.tenant)
                .filter(|days| days.contains(&key.day))
                .map(|_| vec![key])
                .unwrap_or_default(),
            DropRequest::Before(cutoffs) => cutoffs
                .into_iter()
                .flat_map(|(tenant, first_kept)| {
                    let days: Vec<Day> = self
                        .known
                        .get(&tenant)
                        .map(|days| days.range(..first_kept).copied().collect())
                        .unwrap_or_default();
                    days.into_iter().map(move |day| PartitionKey {
                        tenant: tenant.clone(),
                        day,
                    })
                })
                .collect(),
            DropRequest::Tenant(tenant) => self
                .known
                .get(&tenant)
                .map(|days| {
                    days.iter()
                        .map(|day| PartitionKey {
                            tenant: tenant.clone(),
                            day: *day,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut dropped = Vec::with_capacity(keys.len());
        for key in &keys {
            dropped.push(self.shared.partitions.info(key)?);
            self.close(key, false)?;
        }
        // The tombstones are durable before any directory goes: a crash in between replays
        // nothing into the dropped partitions.
        let next_record = self.completed + 1;
        self.tombstones.add(&keys, next_record)?;
        for key in &keys {
            let floor = self.floors.entry(key.clone()).or_default();
            *floor = (*floor).max(next_record);
            if let Some(days) = self.known.get_mut(&key.tenant) {
                days.remove(&key.day);
                if days.is_empty() {
                    self.known.remove(&key.tenant);
                }
            }
        }
        self.shared.partitions.remove(&keys)?;
        self.shared.pending.forget_partitions(&keys);
        self.publish_truncation();
        for partition in &dropped {
            tracing::info!(tenant = %partition.tenant, day = %partition.day, documents = partition.documents, disk_bytes = partition.disk_bytes, "dropped partition");
        }
        Ok(dropped)
    }

    /// Commits everything, closes every writer, and returns the truncation point.
    fn shutdown(&mut self) -> Result<WalPosition, LogStoreError> {
        self.commit_all()?;
        for key in self.writers.keys() {
            self.close(&key, false)?;
        }
        Ok(self.truncation_point())
    }

    /// The thread's loop. Ends on `Shutdown`, on a failure, or when every sender is gone
    /// (the store was dropped without `shutdown`: nothing more is committed, like a crash).
    /// `root_lock` is held until the writers are closed, so that a new store on the same root
    /// waits for them; it is returned so that `shutdown` can truncate the log before releasing
    /// it (when the store was dropped, it is released as the thread ends).
    pub(crate) fn run(mut self, messages: Receiver<IndexerMessage>, root_lock: File) -> File {
        let mut next_tick = Instant::now() + self.commit_interval;
        loop {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            let result = match messages.recv_timeout(timeout) {
                Ok(IndexerMessage::Batch(position, documents)) => {
                    self.apply(position, documents).map(|_| ())
                }
                Ok(IndexerMessage::Refresh(tenants, reply)) => match self.commit_where(|key, _| {
                    tenants
                        .as_ref()
                        .is_none_or(|tenants| tenants.contains(&key.tenant))
                }) {
                    Ok(()) => {
                        let _ = reply.send(Ok(()));
                        Ok(())
                    }
                    Err(error) => {
                        let _ = reply.send(Err(LogStoreError::Unavailable(error.to_string())));
                        Err(error)
                    }
                },
                Ok(IndexerMessage::Drop(request, reply)) => match self.drop_partitions(request) {
                    Ok(dropped) => {
                        let _ = reply.send(Ok(dropped));
                        Ok(())
                    }
                    Err(error) => {
                        let _ = reply.send(Err(LogStoreError::Unavailable(error.to_string())));
                        Err(error)
                    }
                },
                Ok(IndexerMessage::Shutdown(reply)) => {
                    let _ = reply.send(self.shutdown());
                    break;
                }
                Err(RecvTimeoutError::Timeout) => Ok(()),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Err(error) = result {
                self.shared.fail("indexing", &error);
                break;
            }
            if Instant::now() >= next_tick {
                if let Err(error) = self.tick() {
                    self.shared.fail("periodic commit", &error);
                    break;
                }
                next_tick = Instant::now() + self.commit_interval;
            }
        }
        // Writers not committed by now are discarded: their operations are in the log.
        drop(self);
        root_lock
    }
}

/// The distinct partitions of a batch, in order of first appearance.
pub(crate) fn partitions_of(documents: &[PreparedDocument]) -> Vec<PartitionKey> {
    let mut keys: Vec<&PartitionKey> = Vec::new();
    for PreparedDocument { key, .. } in documents {
        // Batches are usually of one partition: compare with the last one before searching.
        if keys.last().is_some_and(|last| *last == key) {
            continue;
        }
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter().cloned().collect()
}
