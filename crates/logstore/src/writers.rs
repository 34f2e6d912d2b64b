//! The open tantivy writers: at most `writers_open_max`, each with `budget / writers_open_max`
//! bytes of indexing memory split between its `indexing_threads_per_writer` threads, least
//! recently used (and preferably already committed) closed first.
//!
//! Owned by the indexer thread alone (no lock). The pool decides *which* writer to close; the
//! indexer closes it, because closing means committing with the indexer's log position.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tantivy::indexer::IndexWriterOptions;
use tantivy::{Index, IndexWriter};

use crate::error::LogStoreError;
use crate::partition::PartitionKey;
use crate::wal::WalPosition;

/// Merge threads per writer: merges are background work, and with many writers on a small
/// machine one thread each is plenty.
pub const WRITER_MERGE_THREADS: usize = 1;

/// An open writer of one partition.
pub(crate) struct OpenWriter {
    pub writer: IndexWriter,
    pub last_used: Instant,
    /// The first record with documents written and not yet committed (`None`: nothing to
    /// commit).
    pub first_uncommitted: Option<WalPosition>,
}

/// The open writers.
pub(crate) struct WriterPool {
    writers: HashMap<PartitionKey, OpenWriter>,
    open_max: usize,
    threads: usize,
    thread_memory_bytes: usize,
    opened_total: u64,
}

impl WriterPool {
    pub(crate) fn new(open_max: usize, threads: usize, thread_memory_bytes: usize) -> WriterPool {
        WriterPool {
            writers: HashMap::new(),
            open_max,
            threads,
            thread_memory_bytes,
            opened_total: 0,
        }
    }

    pub(crate) fn get_mut(&mut self, key: &PartitionKey) -> Option<&mut OpenWriter> {
        self.writers.get_mut(key)
    }

    pub(crate) fn contains(&self, key: &PartitionKey) -> bool {
        self.writers.contains_key(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.writers.len()
    }

    pub(crate) fn opened_total(&self) -> u64 {
        self.opened_total
    }

    pub(crate) fn open_max(&self) -> usize {
        self.open_max
    }

    /// More writers are open than `open_max` (possible while one record needs them all).
    pub(crate) fn is_over_limit(&self) -> bool {
        self.writers.len() > self.open_max
    }

    /// Opens a writer on `index`.
    pub(crate) fn open(
        &mut self,
        key: &PartitionKey,
        index: &Index,
    ) -> Result<&mut OpenWriter, LogStoreError> {
        let options = IndexWriterOptions::builder()
            .memory_budget_per_thread(self.thread_memory_bytes)
            .num_worker_threads(self.threads)
            .num_merge_threads(WRITER_MERGE_THREADS)
            .build();
        let writer = index
            .writer_with_options(options)
            .map_err(|e| LogStoreError::index(key, e))?;
        self.opened_total += 1;
        Ok(self.writers.entry(key.clone()).or_insert(OpenWriter {
            writer,
            last_used: Instant::now(),
            first_uncommitted: None,
        }))
    }

    pub(crate) fn remove(&mut self, key: &PartitionKey) -> Option<OpenWriter> {
        self.writers.remove(key)
    }

    /// The writer to close to make room, among those not in `keep`: the least recently used
    /// of those with nothing to commit (closing them is cheap), else the least recently used.
    pub(crate) fn least_recently_used(&self, keep: &[PartitionKey]) -> Option<PartitionKey> {
        least_recently_used(
            self.writers
                .iter()
                .filter(|(key, _)| !keep.contains(key))
                .map(|(key, writer)| (key, (writer.first_uncommitted.is_some(), writer.last_used))),
        )
        .cloned()
    }

    /// Writers unused for `idle_close` at `now`.
    pub(crate) fn idle(&self, now: Instant, idle_close: Duration) -> Vec<PartitionKey> {
        self.writers
            .iter()
            .filter(|(_, writer)| now.saturating_duration_since(writer.last_used) >= idle_close)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Keys of writers with uncommitted operations.
    pub(crate) fn uncommitted(&self) -> Vec<PartitionKey> {
        self.writers
            .iter()
            .filter(|(_, writer)| writer.first_uncommitted.is_some())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The oldest record with uncommitted documents in any writer.
    pub(crate) fn oldest_uncommitted(&self) -> Option<WalPosition> {
        self.writers
            .values()
            .filter_map(|writer| writer.first_uncommitted)
            .min()
    }

    pub(crate) fn keys(&self) -> Vec<PartitionKey> {
        self.writers.keys().cloned().collect()
    }
}

/// The key with the smallest `(has uncommitted documents, last used)` (ties: any).
fn least_recently_used<'a, K: 'a>(
    entries: impl Iterator<Item = (&'a K, (bool, Instant))>,
) -> Option<&'a K> {
    entries.min_by_key(|(_, order)| *order).map(|(key, _)| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_writers_close_first_then_the_least_recently_used() {
        let start = Instant::now();
        let later = |ms| start + Duration::from_millis(ms);
        let entries = [
            ("b", (false, later(5))),
            ("a", (true, start)),
            ("c", (false, later(9))),
        ];
        let pick = |entries: &[(&'static str, (bool, Instant))]| {
            least_recently_used(entries.iter().map(|(key, order)| (key, *order))).copied()
        };
        assert_eq!(pick(&entries), Some("b"), "clean before dirty");
        assert_eq!(
            pick(&[("a", (true, start)), ("d", (true, later(1)))]),
            Some("a")
        );
        assert_eq!(pick(&[]), None);
    }
}
