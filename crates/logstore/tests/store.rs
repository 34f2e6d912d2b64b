//! The store through its public API: durability, partitioning, retention, bounds, reads.

mod common;

use std::sync::Arc;
use std::time::Duration;

use caravan_logstore::tantivy::collector::Count;
use caravan_logstore::tantivy::query::TermQuery;
use caravan_logstore::tantivy::schema::IndexRecordOption;
use caravan_logstore::{
    DurableBatch, LogDocument, LogSink, LogStore, LogStoreError, TimeRange, WriteMode,
};
use common::{config, day_count, document, documents, eventually, is_backpressure, open, today};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_documents_are_searchable_after_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let receipt = store
        .append(documents("web", "a", today(), 50))
        .await
        .unwrap();
    assert_eq!(receipt.documents, 50);
    assert_eq!(receipt.position, Some(1));
    assert_eq!(
        day_count(&store, "web", today()).await,
        50,
        "the first read of a search-idle tenant commits its partitions first"
    );
    store
        .append(documents("web", "more", today(), 5))
        .await
        .unwrap();
    assert_eq!(
        day_count(&store, "web", today()).await,
        50,
        "search-active now: not committed before the commit interval"
    );
    store.refresh().await.unwrap();
    assert_eq!(day_count(&store, "web", today()).await, 55);
    assert_eq!(store.count("web", TimeRange::ALL).await.unwrap(), 55);
    let partial = TimeRange {
        from_ms: today().start_ms() + 10_000,
        to_ms: today().start_ms() + 20_000,
    };
    assert_eq!(store.count("web", partial).await.unwrap(), 10);
    let stored = store.get("web", "a-7").await.unwrap().unwrap();
    assert_eq!(stored.id, "a-7");
    assert_eq!(stored.timestamp_ms, today().start_ms() + 7_000);
    assert!(
        String::from_utf8(stored.source)
            .unwrap()
            .contains("hello a-7")
    );
    assert_eq!(store.get("web", "missing").await.unwrap(), None);
    assert_eq!(
        store.get("other", "a-7").await.unwrap(),
        None,
        "tenants are separate"
    );
    store.shutdown().await.unwrap();
    assert!(matches!(
        store.append(documents("web", "b", today(), 1)).await,
        Err(LogStoreError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_partitioned_by_tenant_and_utc_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let yesterday = today().plus_days(-1);
    let mut batch = documents("web", "t", today(), 3);
    batch.extend(documents("web", "y", yesterday, 2));
    // One millisecond before midnight UTC belongs to yesterday.
    batch.push(document("web", "edge", today(), -1));
    batch.extend(documents("db", "d", today(), 4));
    store.append(batch).await.unwrap();
    store.refresh().await.unwrap();
    let indexes = dir.path().join("indexes");
    assert!(
        indexes
            .join("web")
            .join("2026-03-10")
            .join("meta.json")
            .exists()
    );
    assert!(
        indexes
            .join("web")
            .join("2026-03-09")
            .join("meta.json")
            .exists()
    );
    assert!(
        indexes
            .join("db")
            .join("2026-03-10")
            .join("meta.json")
            .exists()
    );
    assert_eq!(day_count(&store, "web", today()).await, 3);
    assert_eq!(day_count(&store, "web", yesterday).await, 3);
    let partitions = store.partitions(Some("web")).await.unwrap();
    let summary: Vec<(String, u64)> = partitions
        .iter()
        .map(|p| (p.day.to_string(), p.documents))
        .collect();
    assert_eq!(
        summary,
        [("2026-03-09".to_string(), 3), ("2026-03-10".to_string(), 3)]
    );
    assert!(partitions.iter().all(|p| p.disk_bytes > 0));
    assert_eq!(store.partitions(None).await.unwrap().len(), 3);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_documents_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let mut batch = documents("web", "ok", today(), 2);
    batch.push(document("../etc", "x", today(), 0));
    let error = store.append(batch).await.unwrap_err();
    assert!(
        matches!(error, LogStoreError::InvalidTenant { .. }),
        "{error}"
    );
    let mut empty_id = document("web", "", today(), 0);
    empty_id.id.clear();
    assert!(matches!(
        store.append(vec![empty_id]).await,
        Err(LogStoreError::InvalidDocument { .. })
    ));
    assert!(store.count("Web", TimeRange::ALL).await.is_err());
    store.refresh().await.unwrap();
    assert_eq!(store.count("web", TimeRange::ALL).await.unwrap(), 0);
    assert_eq!(store.stats().wal_records, 0);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let tasks: Vec<_> = (0..200)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch = documents("web", &format!("task{task}"), today(), 10);
                store.append(batch).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.wal_records, 200);
    assert_eq!(stats.documents_appended, 2_000);
    assert!(
        stats.wal_fsyncs * 4 <= stats.wal_records,
        "group commit: {} fsyncs for {} appends",
        stats.wal_fsyncs,
        stats.wal_records
    );
    store.refresh().await.unwrap();
    assert_eq!(store.count("web", TimeRange::ALL).await.unwrap(), 2_000);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_ahead_log_answers_backpressure_until_indexing_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.wal_bytes_max = 64 << 10;
    let store = open(config).await;
    let mut accepted = 0;
    let error = loop {
        match store
            .append(documents("web", &format!("b{accepted}"), today(), 20))
            .await
        {
            Ok(_) => accepted += 1,
            Err(error) => break error,
        }
        assert!(accepted < 1_000, "the log never filled");
    };
    assert!(
        is_backpressure(&error, "write-ahead log is full"),
        "{error}"
    );
    assert!(store.stats().wal_bytes <= 64 << 10);
    // Committing lets the log truncate; appends are accepted again.
    store.refresh().await.unwrap();
    eventually(Duration::from_secs(5), "log truncation", || {
        store.stats().wal_bytes < 32 << 10
    })
    .await;
    store
        .append(documents("web", "after", today(), 20))
        .await
        .unwrap();
    store.refresh().await.unwrap();
    assert_eq!(
        store.count("web", TimeRange::ALL).await.unwrap(),
        (accepted + 1) * 20
    );
    // A batch larger than the whole log can never fit.
    let mut huge = document("web", "huge", today(), 0);
    huge.source = vec![b' '; 70 << 10];
    assert!(matches!(
        store.append(vec![huge]).await,
        Err(LogStoreError::BatchTooLarge { .. })
    ));
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_append_queue_answers_backpressure() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.append_queue_max = 1;
    let store = open(config).await;
    let tasks: Vec<_> = (0..256)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(vec![document("web", &format!("q{task}"), today(), 0)])
                    .await
            })
        })
        .collect();
    let mut refused = 0;
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(error) => {
                assert!(is_backpressure(&error, "append queue is full"), "{error}");
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "256 concurrent appends never filled a queue of 1"
    );
    store.refresh().await.unwrap();
    assert_eq!(store.count("web", TimeRange::ALL).await.unwrap(), accepted);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_stay_under_the_budget_and_close_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // 40 MB give two writers their 15 MB minimum: at most two open, whatever writers_open_max.
    config.indexing_memory_budget_bytes = 40_000_000;
    config.writers_open_max = 10;
    config.commit_interval = Duration::from_millis(20);
    config.writer_idle_close = Duration::from_millis(100);
    let store = open(config).await;
    // Six days interleaved in one batch: the record opens its six writers, and the pool is
    // brought back to two (committing the others) once the record is applied.
    let batch: Vec<_> = (0..60)
        .map(|n| {
            document(
                "web",
                &format!("w{n}"),
                today().plus_days(-(n % 6)),
                n as i64,
            )
        })
        .collect();
    store.append(batch).await.unwrap();
    store.refresh().await.unwrap();
    let stats = store.stats();
    assert!(
        stats.writers_open <= 2,
        "{} writers open",
        stats.writers_open
    );
    assert_eq!(stats.writers_opened_total, 6);
    // One day per batch: least recently used writers are closed before opening another.
    for back in 0..6 {
        let day = today().plus_days(-back);
        store
            .append(documents("web", &format!("s{back}"), day, 5))
            .await
            .unwrap();
    }
    store.refresh().await.unwrap();
    assert!(store.stats().writers_open <= 2);
    for back in 0..6 {
        assert_eq!(day_count(&store, "web", today().plus_days(-back)).await, 15);
    }
    eventually(Duration::from_secs(5), "idle writers to close", || {
        store.stats().writers_open == 0
    })
    .await;
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_an_unclean_stop_is_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // One writer at a time: appending day 2 commits day 1 (by closing its writer) while the
    // log still holds day 1's record: the state of a crash between commit and truncation.
    config.indexing_memory_budget_bytes = 20_000_000;
    let yesterday = today().plus_days(-1);
    {
        let store = open(config.clone()).await;
        store
            .append(documents("web", "d1", yesterday, 30))
            .await
            .unwrap();
        store
            .append(documents("web", "d2", today(), 40))
            .await
            .unwrap();
        // Dropped without shutdown: day 2 was never committed.
    }
    let store = open(config.clone()).await;
    let stats = store.stats();
    assert_eq!(
        stats.documents_skipped_on_replay, 30,
        "day 1 is in its commit"
    );
    assert_eq!(stats.documents_replayed, 40, "day 2 only in the log");
    assert_eq!(day_count(&store, "web", yesterday).await, 30);
    assert_eq!(day_count(&store, "web", today()).await, 40);
    store
        .append(documents("web", "d3", today(), 5))
        .await
        .unwrap();
    drop(store);
    let store = open(config).await;
    assert_eq!(day_count(&store, "web", yesterday).await, 30);
    assert_eq!(day_count(&store, "web", today()).await, 45);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    store
        .append(documents("web", "s", today(), 25))
        .await
        .unwrap();
    store.shutdown().await.unwrap();
    let store = open(config(dir.path())).await;
    let stats = store.stats();
    assert_eq!(stats.wal_bytes, 0);
    assert_eq!(
        stats.documents_replayed + stats.documents_skipped_on_replay,
        0
    );
    assert_eq!(store.count("web", TimeRange::ALL).await.unwrap(), 25);
    let receipt = store
        .append(documents("web", "t", today(), 1))
        .await
        .unwrap();
    assert_eq!(
        receipt.position,
        Some(2),
        "positions continue after an emptied log"
    );
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_the_right_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    for back in 0..5 {
        let day = today().plus_days(-back);
        store
            .append(documents("web", &format!("w{back}"), day, 3))
            .await
            .unwrap();
        store
            .append(documents("db", &format!("d{back}"), day, 2))
            .await
            .unwrap();
    }
    store.refresh().await.unwrap();
    let now_ms = today().start_ms() + 3_600_000;
    let dropped = store
        .enforce_retention(now_ms, |tenant| (tenant == "web").then_some(2))
        .await
        .unwrap();
    let mut dropped_days: Vec<String> = dropped
        .iter()
        .map(|p| format!("{}/{}:{}", p.tenant, p.day, p.documents))
        .collect();
    dropped_days.sort();
    assert_eq!(
        dropped_days,
        ["web/2026-03-06:3", "web/2026-03-07:3", "web/2026-03-08:3"]
    );
    let web = dir.path().join("indexes").join("web");
    assert!(!web.join("2026-03-08").exists());
    assert!(web.join("2026-03-09").exists() && web.join("2026-03-10").exists());
    assert_eq!(
        store.partitions(Some("db")).await.unwrap().len(),
        5,
        "no retention for db"
    );
    assert_eq!(store.count("web", TimeRange::ALL).await.unwrap(), 6);
    assert!(store.get("web", "w4-0").await.unwrap().is_none());

    // A late document for a dropped day recreates its partition.
    store
        .append(vec![document("web", "late", today().plus_days(-4), 0)])
        .await
        .unwrap();
    store.refresh().await.unwrap();
    assert_eq!(day_count(&store, "web", today().plus_days(-4)).await, 1);

    let dropped = store
        .drop_partitions_before("db", today().plus_days(-1))
        .await
        .unwrap();
    assert_eq!(dropped.len(), 3);
    let dropped = store.drop_partition("db", today()).await.unwrap().unwrap();
    assert_eq!(dropped.documents, 2);
    assert_eq!(store.drop_partition("db", today()).await.unwrap(), None);
    let dropped = store.drop_tenant("db").await.unwrap();
    assert_eq!(dropped.len(), 1);
    assert!(!dir.path().join("indexes").join("db").exists());
    assert_eq!(store.count("db", TimeRange::ALL).await.unwrap(), 0);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_partitions_stay_dropped_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // One writer: appending today's batch commits yesterday's partition (closing its writer)
    // while today's stays uncommitted, so the log keeps yesterday's record.
    config.indexing_memory_budget_bytes = 20_000_000;
    let yesterday = today().plus_days(-1);
    {
        let store = open(config.clone()).await;
        store
            .append(documents("web", "old", yesterday, 10))
            .await
            .unwrap();
        store
            .append(documents("web", "new", today(), 5))
            .await
            .unwrap();
        let dropped = store.drop_partition("web", yesterday).await.unwrap();
        assert_eq!(dropped.map(|p| p.documents), Some(10));
        // Dropped without shutdown: a crash.
    }
    let store = open(config).await;
    let stats = store.stats();
    assert_eq!(
        stats.documents_skipped_on_replay, 10,
        "yesterday's record was replayed, and skipped"
    );
    assert_eq!(
        day_count(&store, "web", yesterday).await,
        0,
        "not resurrected by replay"
    );
    assert_eq!(day_count(&store, "web", today()).await, 5);
    assert!(!dir.path().join("indexes/web/2026-03-09").exists());
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_exist_from_acknowledgement_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    store
        .append(documents("web", "p", today(), 3))
        .await
        .unwrap();
    assert!(
        store.id_exists("web", "p-1").await.unwrap(),
        "pending, not committed"
    );
    assert!(!store.id_exists("web", "p-9").await.unwrap());
    assert!(!store.id_exists("db", "p-1").await.unwrap());
    store.refresh().await.unwrap();
    assert_eq!(store.stats().pending_ids, 0);
    assert!(store.id_exists("web", "p-1").await.unwrap(), "committed");
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_replaces_the_document_with_the_same_id_in_any_partition() {
    let dir = tempfile::tempdir().unwrap();
    let yesterday = today().plus_days(-1);
    {
        let store = open(config(dir.path())).await;
        store
            .append(vec![document("web", "x", yesterday, 0)])
            .await
            .unwrap();
        store.refresh().await.unwrap();
        let mut moved = document("web", "x", today(), 5);
        moved.mode = WriteMode::Upsert;
        store.append(vec![moved]).await.unwrap();
        // Twice more before any commit, the second in the same batch.
        let mut again = document("web", "x", today(), 6);
        again.mode = WriteMode::Upsert;
        let mut last = document("web", "x", today(), 7);
        last.mode = WriteMode::Upsert;
        store.append(vec![again, last]).await.unwrap();
        store.refresh().await.unwrap();
        assert_eq!(store.count("web", TimeRange::ALL).await.unwrap(), 1);
        let stored = store.get("web", "x").await.unwrap().unwrap();
        assert_eq!(stored.timestamp_ms, today().start_ms() + 7);
        // A crash now replays the upserts: still one document.
    }
    let store = open(config(dir.path())).await;
    assert_eq!(store.count("web", TimeRange::ALL).await.unwrap(), 1);
    assert_eq!(
        store.get("web", "x").await.unwrap().unwrap().timestamp_ms,
        today().start_ms() + 7
    );
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_documents_come_newest_first_across_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    store
        .append(documents("web", "old", today().plus_days(-1), 5))
        .await
        .unwrap();
    store
        .append(documents("web", "new", today(), 3))
        .await
        .unwrap();
    store.refresh().await.unwrap();
    let recent = store.search_recent("web", 5).await.unwrap();
    let ids: Vec<&str> = recent.iter().map(|log| log.id.as_str()).collect();
    assert_eq!(ids, ["new-2", "new-1", "new-0", "old-4", "old-3"]);
    assert!(
        recent
            .windows(2)
            .all(|w| w[0].timestamp_ms >= w[1].timestamp_ms)
    );
    assert!(store.search_recent("nobody", 5).await.unwrap().is_empty());
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searchers_cover_only_the_requested_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    for back in 0..4 {
        let day = today().plus_days(-back);
        store
            .append(documents("web", &format!("s{back}"), day, 2))
            .await
            .unwrap();
    }
    store.refresh().await.unwrap();
    let (days, matches) = store
        .with_searchers(
            "web",
            today().plus_days(-2)..=today().plus_days(-1),
            |schema, searchers| {
                let query = TermQuery::new(
                    schema.keyword_term("service", "api"),
                    IndexRecordOption::Basic,
                );
                let mut matches = 0;
                for (_, searcher) in searchers {
                    matches += searcher
                        .search(&query, &Count)
                        .map_err(|e| LogStoreError::Unavailable(e.to_string()))?;
                }
                Ok((
                    searchers
                        .iter()
                        .map(|(day, _)| day.to_string())
                        .collect::<Vec<_>>(),
                    matches,
                ))
            },
        )
        .await
        .unwrap();
    assert_eq!(days, ["2026-03-08", "2026-03-09"]);
    assert_eq!(matches, 4);
    store.shutdown().await.unwrap();
}

/// A second sink sees every durable batch, in log order, as the documents appended.
struct Recorder(std::sync::Mutex<Vec<(u64, Vec<LogDocument>)>>);

impl LogSink for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn accept(&self, batch: &Arc<DurableBatch>) -> Result<(), LogStoreError> {
        self.0
            .lock()
            .unwrap()
            .push((batch.position, batch.documents.clone()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additional_sinks_receive_durable_batches_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder(std::sync::Mutex::new(Vec::new())));
    let store = LogStore::open_with_sinks(
        config(dir.path()),
        vec![recorder.clone() as Arc<dyn LogSink>],
    )
    .await
    .unwrap();
    let mut appended = Vec::new();
    for n in 0..3 {
        let batch = documents("web", &format!("k{n}"), today(), 2);
        store.append(batch.clone()).await.unwrap();
        appended.push((n + 1, batch));
    }
    assert_eq!(*recorder.0.lock().unwrap(), appended);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_on_the_same_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(config(dir.path())).await;
    let mut second = config(dir.path());
    second.root_lock_wait = Duration::from_millis(50);
    assert!(matches!(
        LogStore::open(second).await,
        Err(LogStoreError::Locked(_))
    ));
    store.shutdown().await.unwrap();
}

/// Search-active tenants commit every 20 ms; a tenant stays active (once read) or idle (until
/// read) for the whole test, and idle ones never commit by time.
fn search_idle_config(root: &std::path::Path) -> caravan_logstore::LogStoreConfig {
    let mut config = config(root);
    config.commit_interval = Duration::from_millis(20);
    config.idle_commit_interval = Duration::from_secs(3600);
    config.search_idle_after = Duration::from_secs(3600);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_idle_tenants_commit_rarely_and_their_first_read_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(search_idle_config(dir.path())).await;
    store
        .append(documents("web", "idle", today(), 20))
        .await
        .unwrap();
    // Many commit intervals pass: nobody reads "web", so nothing is committed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.stats().commits, 0, "a search-idle tenant waits");
    assert_eq!(store.stats().pending_ids, 20);
    // Its first read commits first, and sees everything acknowledged.
    assert_eq!(day_count(&store, "web", today()).await, 20);
    assert_eq!(store.stats().commits, 1);
    // Search-active now: new documents become visible within the commit interval, unasked.
    store
        .append(documents("web", "active", today(), 5))
        .await
        .unwrap();
    let mut visible = 0;
    for _ in 0..500 {
        visible = day_count(&store, "web", today()).await;
        if visible == 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(visible, 25, "the periodic commit of an active tenant");
    // Another tenant stays idle while "web" is read.
    store
        .append(documents("api", "idle", today(), 3))
        .await
        .unwrap();
    let commits = store.stats().commits;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store.stats().commits,
        commits,
        "api is not read: not committed"
    );
    assert_eq!(day_count(&store, "api", today()).await, 3);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filling_log_commits_search_idle_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = search_idle_config(dir.path());
    config.wal_bytes_max = 256 << 10;
    let store = open(config).await;
    // Nobody reads, but the log passes half of its bound: the indexer commits so that the
    // log can be truncated.
    let mut appended = 0;
    while store.stats().commits == 0 && store.stats().wal_bytes < 128 << 10 {
        store
            .append(documents("web", &format!("r{appended}"), today(), 10))
            .await
            .unwrap();
        appended += 10;
        if appended == 10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(store.stats().commits, 0, "a small log: no commit");
        }
    }
    eventually(
        Duration::from_secs(5),
        "a commit under log pressure",
        || store.stats().commits > 0,
    )
    .await;
    eventually(Duration::from_secs(5), "the log truncated", || {
        store.stats().wal_bytes < 128 << 10
    })
    .await;
    assert_eq!(day_count(&store, "web", today()).await, appended);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_share_the_memory_budget_by_how_many_are_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let budget = 120_000_000;
    config.indexing_memory_budget_bytes = budget;
    config.writers_open_max = 8;
    config.commit_interval = Duration::from_millis(20);
    config.writer_idle_close = Duration::from_millis(300);
    let store = open(config).await;
    let memory = |store: &LogStore| {
        let memory = store.stats().indexing_memory_bytes;
        assert!(memory <= budget, "{memory} bytes over the budget");
        memory
    };
    let append = |tenants: &'static [&'static str], prefix: String| {
        let batch: Vec<_> = tenants
            .iter()
            .flat_map(|tenant| documents(tenant, &prefix, today(), 5))
            .collect();
        let store = &store;
        async move { store.append(batch).await.unwrap() }
    };
    append(&["t0"], "a".into()).await;
    store.refresh().await.unwrap();
    assert_eq!(memory(&store), budget, "alone, a writer has it all");
    // Two more writers: three open get a quarter each (the count rounded up to a power of
    // two); the first one, opened with all of it, is committed and reopened with its quarter.
    append(&["t1", "t2"], "a".into()).await;
    store.refresh().await.unwrap();
    assert_eq!(memory(&store), 2 * budget / 4);
    append(&["t0"], "b".into()).await;
    store.refresh().await.unwrap();
    assert_eq!(memory(&store), 3 * budget / 4);
    assert_eq!(store.stats().writers_opened_total, 4);
    // t1 and t2 go idle and close; t0, written on and read (so committed every 20 ms), is
    // then reopened with the whole budget.
    assert_eq!(day_count(&store, "t0", today()).await, 10);
    for round in 0..100 {
        append(&["t0"], format!("c{round}")).await;
        if store.stats().writers_open == 1 && memory(&store) == budget {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.stats().writers_open, 1);
    assert_eq!(memory(&store), budget, "the last writer grew back");
    store.refresh().await.unwrap();
    for tenant in ["t1", "t2"] {
        assert_eq!(day_count(&store, tenant, today()).await, 5, "{tenant}");
    }
    assert!(day_count(&store, "t0", today()).await > 10);
    store.shutdown().await.unwrap();
}
