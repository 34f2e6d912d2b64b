//! Helpers shared by the integration tests: configurations for small machines, documents.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use caravan_logstore::{
    Day, FieldValue, LogDocument, LogStore, LogStoreConfig, LogStoreError, WriteMode,
};

/// A configuration for tests: small budgets, no periodic commit unless asked (tests call
/// `refresh`), fast lock retries.
pub fn config(root: &Path) -> LogStoreConfig {
    let mut config = LogStoreConfig::new(root);
    config.wal_bytes_max = 64 << 20;
    config.indexing_memory_budget_bytes = 60_000_000;
    config.writers_open_max = 4;
    // One thread per writer: fewer threads in debug builds, and budgets in whole writers.
    config.indexing_threads_per_writer = 1;
    config.commit_interval = Duration::from_secs(3600);
    config.writer_idle_close = Duration::from_secs(3600);
    config
}

/// 2026-03-10, the tests' "today".
pub fn today() -> Day {
    Day::from_ymd(2026, 3, 10).expect("valid date")
}

/// A document of `tenant` on `day` (at `offset_ms` into it).
pub fn document(tenant: &str, id: &str, day: Day, offset_ms: i64) -> LogDocument {
    let timestamp_ms = day.start_ms() + offset_ms;
    LogDocument {
        tenant: tenant.to_string(),
        id: id.to_string(),
        timestamp_ms,
        source: format!(
            r#"{{"@timestamp":{timestamp_ms},"message":"hello {id}","service":"api"}}"#
        )
        .into_bytes(),
        fields: vec![
            (
                "service".to_string(),
                FieldValue::Keyword("api".to_string()),
            ),
            (
                "message".to_string(),
                FieldValue::Text(format!("hello {id}")),
            ),
            ("bytes".to_string(), FieldValue::Long(offset_ms)),
        ],
        mode: WriteMode::Create,
    }
}

/// `count` documents `prefix-0..` of `tenant` on `day`.
pub fn documents(tenant: &str, prefix: &str, day: Day, count: usize) -> Vec<LogDocument> {
    (0..count)
        .map(|n| document(tenant, &format!("{prefix}-{n}"), day, n as i64 * 1_000))
        .collect()
}

/// Opens a store, waiting for a dropped predecessor's threads to release the root.
pub async fn open(config: LogStoreConfig) -> LogStore {
    match LogStore::open(config).await {
        Ok(store) => store,
        Err(error) => panic!("open failed: {error}"),
    }
}

/// Waits until `condition` holds, for a background effect (idle close, truncation) that has
/// no event to await. Fails the test after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The day's count in a tenant.
pub async fn day_count(store: &LogStore, tenant: &str, day: Day) -> u64 {
    let range = caravan_logstore::TimeRange {
        from_ms: day.start_ms(),
        to_ms: day.end_ms(),
    };
    store.count(tenant, range).await.expect("count")
}

/// Whether the error is `Backpressure` whose message contains `needle`.
pub fn is_backpressure(error: &LogStoreError, needle: &str) -> bool {
    matches!(error, LogStoreError::Backpressure(message) if message.contains(needle))
}
