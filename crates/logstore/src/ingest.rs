//! The write-ahead-log thread: group commit.
//!
//! `LogStore::append` validates a batch and puts it in a bounded queue (`append_queue_max`;
//! full means `Backpressure`, never waiting). This thread takes everything queued (up to
//! [`GROUP_BYTES_MAX`]), writes one record per request, fsyncs once, records the ids as
//! pending, hands each batch to the sinks (the indexer first), and only then acknowledges
//! every request of the group. Under load, one fsync serves hundreds of requests; when idle,
//! a single request waits for one fsync only.
//!
//! The thread also truncates the log when the indexer reports progress (checked on every
//! group and every [`MAINTENANCE_INTERVAL`] when idle).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::batch::AppendBatch;
use crate::error::LogStoreError;
use crate::indexer::{IndexerQueue, Shared};
use crate::sink::{DurableBatch, LogSink};
use crate::wal::{Wal, WalPosition};

/// Bytes of records one group commit writes at most; the rest waits for the next group. Bounds
/// the memory of a group and the latency of its fsync.
pub const GROUP_BYTES_MAX: u64 = 32 << 20;

/// How often an idle log thread looks for records to truncate.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(50);

/// What an acknowledged append got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendReceipt {
    /// The write-ahead-log record holding the batch (`None` for an empty batch).
    pub position: Option<WalPosition>,
    /// Documents written.
    pub documents: usize,
}

/// A request to the log thread.
pub(crate) enum WalMessage {
    Append(AppendRequest),
    /// Finish the queued appends, then stop and hand the log back.
    Shutdown(oneshot::Sender<()>),
}

pub(crate) struct AppendRequest {
    pub batch: AppendBatch,
    /// `AppendBatch::record_bytes`.
    pub record_bytes: u64,
    pub reply: oneshot::Sender<Result<AppendReceipt, LogStoreError>>,
}

/// The log thread's state.
pub(crate) struct WalThread {
    pub wal: Wal,
    pub shared: Arc<Shared>,
    pub indexer: IndexerQueue,
    pub sinks: Vec<Arc<dyn LogSink>>,
    pub wal_bytes_max: u64,
    pub buffer: Vec<u8>,
    pub truncated_through: WalPosition,
}

impl WalThread {
    /// The thread's loop; returns the log when asked to stop or when the store is dropped.
    pub(crate) fn run(mut self, messages: Receiver<WalMessage>) -> Wal {
        loop {
            let first = match messages.recv_timeout(MAINTENANCE_INTERVAL) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    self.truncate();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.truncate();
            let mut group_bytes = message_bytes(&first);
            let mut group = vec![first];
            while group_bytes < GROUP_BYTES_MAX {
                match messages.try_recv() {
                    Ok(message) => {
                        group_bytes += message_bytes(&message);
                        group.push(message);
                    }
                    Err(_) => break,
                }
            }
            if self.commit_group(group) {
                break;
            }
        }
        self.wal
    }

    /// Writes, fsyncs and acknowledges a group; returns whether a shutdown was requested.
    fn commit_group(&mut self, group: Vec<WalMessage>) -> bool {
        let mut encoder = self.wal.encoder(std::mem::take(&mut self.buffer));
        let mut accepted: Vec<(WalPosition, AppendRequest)> = Vec::with_capacity(group.len());
        let mut shutdown_replies = Vec::new();
        let wal_bytes = self.wal.bytes();
        let failure = self.shared.failure();
        for message in group {
            let request = match message {
                WalMessage::Shutdown(reply) => {
                    shutdown_replies.push(reply);
                    continue;
                }
                WalMessage::Append(request) => request,
            };
            if let Some(failure) = &failure {
                let _ = request
                    .reply
                    .send(Err(LogStoreError::Unavailable(failure.clone())));
                continue;
            }
            if !shutdown_replies.is_empty() {
                let _ = request.reply.send(Err(LogStoreError::Closed));
                continue;
            }
            let used = wal_bytes + encoder.len() as u64;
            if used + request.record_bytes > self.wal_bytes_max {
                let _ = request.reply.send(Err(wal_full(used, self.wal_bytes_max)));
                continue;
            }
            let position = encoder.push(|out| request.batch.write_record(out));
            accepted.push((position, request));
        }
        if !accepted.is_empty() {
            let result = self.wal.write_group(&encoder);
            self.buffer = encoder.into_buffer();
            self.publish_wal();
            match result {
                Ok(()) => self.acknowledge(accepted),
                Err(error) => {
                    self.shared.fail("write-ahead log write", &error);
                    for (_, request) in accepted {
                        let _ = request
                            .reply
                            .send(Err(LogStoreError::Unavailable(error.to_string())));
                    }
                }
            }
        } else {
            self.buffer = encoder.into_buffer();
        }
        let stop = !shutdown_replies.is_empty();
        for reply in shutdown_replies {
            let _ = reply.send(());
        }
        stop
    }

    /// The records are durable: record the ids, hand the batches to the sinks, acknowledge.
    fn acknowledge(&mut self, accepted: Vec<(WalPosition, AppendRequest)>) {
        let counters = &self.shared.counters;
        counters
            .wal_fsyncs
            .store(self.wal.fsyncs(), Ordering::Relaxed);
        counters
            .wal_records
            .fetch_add(accepted.len() as u64, Ordering::Relaxed);
        for (position, request) in &accepted {
            self.shared
                .pending
                .insert(*position, request.batch.documents());
        }
        for (position, request) in accepted {
            let AppendRequest { batch, reply, .. } = request;
            let documents = batch.len();
            counters
                .documents_appended
                .fetch_add(documents as u64, Ordering::Relaxed);
            if !self.sinks.is_empty() {
                self.hand_to_sinks(position, &batch);
            }
            // The batch is durable whatever happens next: a failed indexer is replayed at the
            // next open, so the append is acknowledged and the store stops taking writes.
            if let Err(error) = self.indexer.send(position, batch.into_documents()) {
                self.shared.fail("handing a batch to the indexer", &error);
            }
            let _ = reply.send(Ok(AppendReceipt {
                position: Some(position),
                documents,
            }));
        }
    }

    /// Hands a durable batch to the additional sinks, as the documents that were appended.
    fn hand_to_sinks(&self, position: WalPosition, batch: &AppendBatch) {
        let counters = &self.shared.counters;
        let documents = match batch.decode() {
            Ok(documents) => documents,
            Err(reason) => {
                // The encoding was written by this process a moment ago: a bug, not bad input.
                counters.sink_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%reason, position, "a durable batch does not decode; sinks skip it");
                return;
            }
        };
        let batch = Arc::new(DurableBatch {
            position,
            documents,
        });
        for sink in &self.sinks {
            if let Err(error) = sink.accept(&batch) {
                counters.sink_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(sink = sink.name(), %error, position, "sink refused a durable batch");
            }
        }
    }

    fn truncate(&mut self) {
        let through = self.shared.truncate_through.load(Ordering::Acquire);
        if through <= self.truncated_through {
            return;
        }
        match self.wal.truncate_through(through) {
            Ok(()) => self.truncated_through = through,
            // Not fatal: the log keeps the records a little longer; retried next time.
            Err(error) => tracing::warn!(%error, through, "write-ahead log truncation failed"),
        }
        self.publish_wal();
    }

    fn publish_wal(&self) {
        self.shared
            .wal_bytes
            .store(self.wal.bytes(), Ordering::Release);
        self.shared
            .wal_first_position
            .store(self.wal.first_position(), Ordering::Release);
    }
}

fn message_bytes(message: &WalMessage) -> u64 {
    match message {
        WalMessage::Append(request) => request.record_bytes,
        WalMessage::Shutdown(_) => 0,
    }
}

/// The `Backpressure` error of a full log.
pub(crate) fn wal_full(used_bytes: u64, max_bytes: u64) -> LogStoreError {
    LogStoreError::Backpressure(format!(
        "write-ahead log is full ({used_bytes} of {max_bytes} bytes): indexing has not yet committed older records"
    ))
}
