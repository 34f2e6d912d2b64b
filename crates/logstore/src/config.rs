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

/// The largest share of the indexing memory budget one indexing thread gets, however few
/// writers are open: a commit serialises what the threads hold, and the indexer waits for it.
pub const THREAD_MEMORY_BYTES_SHARE_MAX: usize = 256 << 20;

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
    /// Memory for all open tantivy writers together, shared by the writers open (`writers.rs`):
    /// with `n` open, each gets the budget divided by `n` rounded up to a power of two (at
    /// most `writers_open_max`), split between its indexing threads, within 15 MB (tantivy's
    /// minimum, which caps the number of writers when the budget is small) and
    /// `THREAD_MEMORY_BYTES_SHARE_MAX` (256 MiB) per thread. A thread flushes a segment when its share
    /// is full: the fewer writers, the larger the segments and the fewer the merges. Default:
    /// 1 GiB, i.e. 32 MiB per thread with 16 writers open, 128 MiB with 4. Memory is only
    /// used by writers that are open (idle ones close).
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
    /// How often the documents of a search-active tenant (read within `search_idle_after`) are
    /// committed and become searchable without an explicit `refresh`. Default: 1 s
    /// (Elasticsearch's refresh interval).
    pub commit_interval: Duration,
    /// A tenant not read for this long is search-idle (`activity.rs`): its partitions commit
    /// every `idle_commit_interval` instead, and its next read commits first. Default: 30 s
    /// (Elasticsearch's `index.search.idle.after`).
    pub search_idle_after: Duration,
    /// How often the documents of a search-idle tenant are committed; sooner when the
    /// write-ahead log holds more than half of `wal_bytes_max`. Fewer commits make fewer,
    /// larger segments and fewer merges. Never shorter than `commit_interval`. Default: 30 s.
    pub idle_commit_interval: Duration,
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
            search_idle_after: Duration::from_secs(30),
            idle_commit_interval: Duration::from_secs(30),
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

    /// The memory budget of each indexing thread when `writers` writers are open: the budget
    /// divided by `writers` rounded up to a power of two, or by `effective_writers_open_max`
    /// if that is smaller. So `writers` writers never hold more than the budget together (up
    /// to `effective_writers_open_max` writers), and a writer's share changes only when the
    /// count crosses a power of two.
    pub fn thread_memory_bytes(&self, writers: usize) -> usize {
        let threads = self.indexing_threads_per_writer.max(1);
        let open_max = self.effective_writers_open_max();
        let shares = writers.max(1).next_power_of_two().min(open_max);
        (self.indexing_memory_budget_bytes / shares / threads)
            .clamp(THREAD_MEMORY_BYTES_MIN, THREAD_MEMORY_BYTES_SHARE_MAX)
    }

    /// Bytes of write-ahead log past which search-idle partitions commit at the next tick, so
    /// that the log is truncated long before `append` meets its bound.
    pub(crate) fn wal_commit_bytes(&self) -> u64 {
        self.wal_bytes_max / 2
    }

    /// Segment size target of the write-ahead log: an eighth of its bound, so that truncation
    /// frees space in steps well below the bound.
    pub(crate) fn wal_segment_bytes(&self) -> u64 {
        self.wal_bytes_max / 8
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Up to the writers the budget allows, the writers open never hold more than the
        /// budget together, and each thread gets at least tantivy's minimum.
        #[test]
        fn shares_stay_within_the_budget(
            budget in 30_000_000usize..8_000_000_000,
            open_max in 1usize..64,
            threads in 1usize..=INDEXING_THREADS_PER_WRITER_MAX,
        ) {
            let mut config = LogStoreConfig::new("/tmp/x");
            config.indexing_memory_budget_bytes = budget;
            config.writers_open_max = open_max;
            config.indexing_threads_per_writer = threads;
            prop_assume!(config.validate().is_ok());
            for writers in 1..=config.effective_writers_open_max() {
                let share = config.thread_memory_bytes(writers);
                prop_assert!(share >= THREAD_MEMORY_BYTES_MIN);
                prop_assert!(writers * threads * share <= budget, "{writers} writers of {share}");
                if writers > 1 {
                    prop_assert!(share <= config.thread_memory_bytes(writers - 1), "more writers, smaller shares");
                }
            }
        }
    }

    #[test]
    fn defaults_are_valid() {
        let config = LogStoreConfig::new("/tmp/x");
        config.validate().unwrap();
        assert_eq!(config.effective_writers_open_max(), 16);
        assert_eq!(config.thread_memory_bytes(16), 32 << 20);
        assert_eq!(config.thread_memory_bytes(9), 32 << 20);
        assert_eq!(config.thread_memory_bytes(8), 64 << 20);
        assert_eq!(config.thread_memory_bytes(3), 128 << 20);
        assert_eq!(config.thread_memory_bytes(1), THREAD_MEMORY_BYTES_SHARE_MAX);
        assert_eq!(
            config.thread_memory_bytes(100),
            32 << 20,
            "past the limit: the least"
        );
    }

    #[test]
    fn a_small_budget_caps_the_writers_and_gives_each_thread_its_minimum() {
        let mut config = LogStoreConfig::new("/tmp/x");
        config.indexing_memory_budget_bytes = 80_000_000;
        config.writers_open_max = 10;
        assert_eq!(config.effective_writers_open_max(), 2);
        assert_eq!(config.thread_memory_bytes(2), 20_000_000);
        config.indexing_threads_per_writer = 1;
        assert_eq!(config.effective_writers_open_max(), 5);
        assert_eq!(config.thread_memory_bytes(5), 16_000_000);
        assert_eq!(config.thread_memory_bytes(4), 20_000_000);
        config.indexing_memory_budget_bytes = 1_000_000;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("less than tantivy's minimum"), "{error}");
        config.indexing_threads_per_writer = 0;
        assert!(config.validate().is_err());
    }
}
