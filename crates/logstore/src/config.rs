//! `LogStoreConfig`: every bound of the store, with its default and why.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::LogStoreError;

/// Most indexing threads a writer may have.
pub const INDEXING_THREADS_PER_WRITER_MAX: usize = 8;

/// tantivy's smallest indexing memory budget per indexing thread.
pub const THREAD_MEMORY_BYTES_MIN: usize = 15_000_000;

/// tantivy's largest indexing memory budget per indexing thread (just under 4 GiB).
pub const THREAD_MEMORY_BYTES_MAX: usize = 4_000_000_000;

/// The store's configuration. Build it with `LogStoreConfig::new(root)` and override fields.
#[derive(Clone, Debug)]
pub struct LogStoreConfig {
    /// Root directory: `wal/`, `indexes/<tenant>/<YYYY-MM-DD>/`, `trash/`, `tombstones`,
    /// `logstore.lock`.
    pub root: PathBuf,
    /// Bytes the write-ahead log may occupy. Records stay in the log until every partition
    /// has committed them, so this bounds how far indexing may lag behind acknowledgements;
    /// when it is reached, `append` fails fast with `Backpressure` (HTTP 429).
    /// Default: 512 MiB (about 1.2 million 420-byte documents, 10+ s of full-speed ingest).
    pub wal_bytes_max: u64,
    /// Append requests waiting for the write-ahead log thread. One group commit takes all of
    /// them; when the queue is full, `append` fails fast with `Backpressure`.
    /// Default: 1,024.
    pub append_queue_max: usize,
    /// Durable batches waiting for the indexer thread. When full, the write-ahead log thread
    /// waits, the append queue fills, and appends get `Backpressure`.
    /// Default: 64.
    pub index_queue_max: usize,
    /// Memory for all open tantivy writers together. Each writer gets
    /// `indexing_memory_budget_bytes / writers_open_max`, split between its indexing threads
    /// (at least 15 MB per thread, tantivy's minimum, which caps the number of writers when the
    /// budget is small). Default: 1 GiB, i.e. 32 MiB per thread: a thread flushes a segment
    /// when its budget is full, and 16 MiB threads cost a quarter of the throughput in the
    /// ingest bench. Memory is only used by writers that are open (idle ones close).
    pub indexing_memory_budget_bytes: usize,
    /// Writers (one per tenant-day being written) open at once. Opening one more closes the
    /// least recently used (after committing it). Default: 16.
    pub writers_open_max: usize,
    /// Indexing threads of each writer. Two let a single busy tenant use both cores of a small
    /// machine (+20% docs/s with one tenant on 2 cores, +15% with four, in the ingest bench);
    /// each thread builds its own segments. Default: 2.
    pub indexing_threads_per_writer: usize,
    /// Partition readers kept open for searches; the least recently used is closed past this.
    /// Default: 256.
    pub readers_open_max: usize,
    /// How often written documents are committed and become searchable without an explicit
    /// `refresh`. Default: 1 s (Elasticsearch's refresh interval).
    pub commit_interval: Duration,
    /// A writer that received nothing for this long is committed and closed. Default: 60 s.
    pub writer_idle_close: Duration,
    /// How long `open` waits for another store on the same root to release it (a restart in
    /// the same process). Default: 5 s.
    pub root_lock_wait: Duration,
}

impl LogStoreConfig {
    /// The default configuration for a store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> LogStoreConfig {
        LogStoreConfig {
            root: root.into(),
            wal_bytes_max: 512 << 20,
            append_queue_max: 1_024,
            index_queue_max: 64,
            indexing_memory_budget_bytes: 1 << 30,
            writers_open_max: 16,
            indexing_threads_per_writer: 2,
            readers_open_max: 256,
            commit_interval: Duration::from_secs(1),
            writer_idle_close: Duration::from_secs(60),
            root_lock_wait: Duration::from_secs(5),
        }
    }

    /// Checks every bound.
    pub fn validate(&self) -> Result<(), LogStoreError> {
        let invalid = |message: String| Err(LogStoreError::InvalidConfig(message));
        if self.root.as_os_str().is_empty() {
            return invalid("root is empty".to_string());
        }
        if self.wal_bytes_max < 64 << 10 {
            return invalid(format!(
                "wal_bytes_max is {} bytes, less than 64 KiB",
                self.wal_bytes_max
            ));
        }
        if self.append_queue_max == 0 || self.index_queue_max == 0 {
            return invalid("append_queue_max and index_queue_max must be at least 1".into());
        }
        if self.writers_open_max == 0 || self.readers_open_max == 0 {
            return invalid("writers_open_max and readers_open_max must be at least 1".into());
        }
        if !(1..=INDEXING_THREADS_PER_WRITER_MAX).contains(&self.indexing_threads_per_writer) {
            return invalid(format!(
                "indexing_threads_per_writer is {}, not within 1..={INDEXING_THREADS_PER_WRITER_MAX}",
                self.indexing_threads_per_writer
            ));
        }
        let writer_minimum = THREAD_MEMORY_BYTES_MIN * self.indexing_threads_per_writer;
        if self.indexing_memory_budget_bytes < writer_minimum {
            return invalid(format!(
                "indexing_memory_budget_bytes is {} bytes, less than tantivy's minimum of {writer_minimum} for one writer of {} threads",
                self.indexing_memory_budget_bytes, self.indexing_threads_per_writer
            ));
        }
        if self.commit_interval.is_zero() {
            return invalid("commit_interval must be positive".into());
        }
        Ok(())
    }

    /// How many writers may really be open: `writers_open_max`, fewer when the memory budget
    /// cannot give each thread of each writer its minimum.
    pub fn effective_writers_open_max(&self) -> usize {
        let threads = self.indexing_threads_per_writer.max(1);
        self.writers_open_max
            .min(self.indexing_memory_budget_bytes / (THREAD_MEMORY_BYTES_MIN * threads))
            .max(1)
    }

    /// The memory budget of each indexing thread of each writer.
    pub fn thread_memory_bytes(&self) -> usize {
        let threads = self.indexing_threads_per_writer.max(1);
        (self.indexing_memory_budget_bytes / self.effective_writers_open_max() / threads)
            .clamp(THREAD_MEMORY_BYTES_MIN, THREAD_MEMORY_BYTES_MAX)
    }

    /// Segment size target of the write-ahead log: an eighth of its bound, so that truncation
    /// frees space in steps well below the bound.
    pub(crate) fn wal_segment_bytes(&self) -> u64 {
        self.wal_bytes_max / 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = LogStoreConfig::new("/tmp/x");
        config.validate().unwrap();
        assert_eq!(config.effective_writers_open_max(), 16);
        assert_eq!(config.thread_memory_bytes(), 32 << 20);
    }

    #[test]
    fn a_small_budget_caps_the_writers_and_gives_each_thread_its_minimum() {
        let mut config = LogStoreConfig::new("/tmp/x");
        config.indexing_memory_budget_bytes = 80_000_000;
        config.writers_open_max = 10;
        assert_eq!(config.effective_writers_open_max(), 2);
        assert_eq!(config.thread_memory_bytes(), 20_000_000);
        config.indexing_threads_per_writer = 1;
        assert_eq!(config.effective_writers_open_max(), 5);
        assert_eq!(config.thread_memory_bytes(), 16_000_000);
        config.indexing_memory_budget_bytes = 1_000_000;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("less than tantivy's minimum"), "{error}");
        config.indexing_threads_per_writer = 0;
        assert!(config.validate().is_err());
    }
}
