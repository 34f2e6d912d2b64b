//! Search benchmark: the ingest benchmark's documents over three UTC days in one tenant
//! (10 million by default), then the p50 and p99 latency of four searches on a warm cache:
//! (a) a keyword term in the last 24 h, (b) a bare word over the text of every day, (c) a
//! 24 h date histogram, (d) a terms aggregation on `service` over the three days.
//!
//! `cargo bench -p caravan-logstore --bench search` (release). Bounded: `SEARCH_BENCH_DOCS`
//! (default 10,000,000, at most 20,000,000), `SEARCH_BENCH_RUNS` timed runs per search
//! (default 50, after 3 warm-ups). `SEARCH_BENCH_DIR` keeps the store there and reuses it on
//! the next run (ingestion skipped when it already holds the documents).
//!
//! Runs against the store (`LogStore::search`), as the server does after resolving the
//! query; HTTP and query parsing add well under a millisecond.

mod common;

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use caravan_logstore::{
    Aggregation, Day, FieldValue, LogStore, LogStoreConfig, SearchRequest, SortOrder, TimeRange,
};
use caravan_query::{Filter, Operator};
use common::{Random, document};

const DOCUMENTS_MAX: usize = 20_000_000;
const BATCH: usize = 5_000;
const APPENDERS: usize = 4;
const DAYS: i64 = 3;
const TENANT: &str = "payments";

fn main() {
    let documents = env_usize("SEARCH_BENCH_DOCS", 10_000_000).min(DOCUMENTS_MAX);
    let runs = env_usize("SEARCH_BENCH_RUNS", 50).clamp(1, 1_000);
    let kept = std::env::var("SEARCH_BENCH_DIR").ok();
    let temporary = tempfile::tempdir().expect("temp dir");
    let root = kept
        .as_deref()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let store = LogStore::open(LogStoreConfig::new(&root))
            .await
            .expect("open store");
        let last_day = Day::from_ymd(2026, 3, 10).expect("date");
        let first_ms = last_day.start_ms() - (DAYS - 1) * 86_400_000;
        let end_ms = last_day.start_ms() + 86_400_000;
        let present = store.count(TENANT, TimeRange::ALL).await.expect("count") as usize;
        if present < documents {
            ingest(&store, present, documents, first_ms).await;
        }
        let total = store.count(TENANT, TimeRange::ALL).await.expect("count");
        let disk: u64 = store
            .partitions(Some(TENANT))
            .await
            .expect("partitions")
            .iter()
            .map(|p| p.disk_bytes)
            .sum();
        println!(
            "{total} documents of {TENANT} over {DAYS} days, {:.2} GB on disk",
            disk as f64 / 1e9
        );
        let last_24h = TimeRange {
            from_ms: end_ms - 86_400_000,
            to_ms: end_ms,
        };
        let searches = [
            (
                "(a) keyword term, last 24 h (service:ledger, 100 newest)",
                request(
                    Filter::Exact {
                        key: "service".into(),
                        value: FieldValue::Keyword("ledger".into()),
                    },
                    last_24h,
                    100,
                    Vec::new(),
                ),
            ),
            (
                "(a') keyword term, a 24 h window across two days (service:ledger, 100 newest)",
                request(
                    Filter::Exact {
                        key: "service".into(),
                        value: FieldValue::Keyword("ledger".into()),
                    },
                    TimeRange {
                        from_ms: last_24h.from_ms - 43_200_000,
                        to_ms: last_24h.to_ms - 43_200_000,
                    },
                    100,
                    Vec::new(),
                ),
            ),
            (
                "(c') date histogram, a 24 h window across two days (48 buckets)",
                request(
                    Filter::All,
                    TimeRange {
                        from_ms: last_24h.from_ms - 43_200_000,
                        to_ms: last_24h.to_ms - 43_200_000,
                    },
                    0,
                    vec![(
                        "histogram".into(),
                        Aggregation::DateHistogram {
                            interval_ms: 30 * 60_000,
                            bounds: Some((
                                last_24h.from_ms - 43_200_000,
                                last_24h.to_ms - 43_200_000,
                            )),
                        },
                    )],
                ),
            ),
            (
                "(b) bare word, every day (timeout, 100 newest)",
                request(
                    Filter::Match {
                        key: "message".into(),
                        text: "timeout".into(),
                        operator: Operator::Or,
                    },
                    TimeRange::ALL,
                    100,
                    Vec::new(),
                ),
            ),
            (
                "(c) date histogram, last 24 h (48 buckets)",
                request(
                    Filter::All,
                    last_24h,
                    0,
                    vec![(
                        "histogram".into(),
                        Aggregation::DateHistogram {
                            interval_ms: 30 * 60_000,
                            bounds: Some((last_24h.from_ms, last_24h.to_ms)),
                        },
                    )],
                ),
            ),
            (
                "(d) terms on service, every day (top 10)",
                request(
                    Filter::All,
                    TimeRange::ALL,
                    0,
                    vec![(
                        "services".into(),
                        Aggregation::Terms {
                            key: "service".into(),
                            size: 10,
                        },
                    )],
                ),
            ),
            (
                "(e) keyword term + range, last 24 h (service:ledger AND http.status:>=500)",
                request(
                    Filter::all(vec![
                        Filter::Exact {
                            key: "service".into(),
                            value: FieldValue::Keyword("ledger".into()),
                        },
                        Filter::Range {
                            key: "http.status".into(),
                            lower: Bound::Included(FieldValue::Long(500)),
                            upper: Bound::Unbounded,
                        },
                    ]),
                    last_24h,
                    100,
                    Vec::new(),
                ),
            ),
        ];
        for (name, search) in searches {
            let mut latencies = Vec::with_capacity(runs);
            let mut matched = 0;
            for run in 0..runs + 3 {
                let started = Instant::now();
                let result = store.search(search.clone()).await.expect("search");
                if run >= 3 {
                    latencies.push(started.elapsed());
                }
                matched = result.total;
            }
            latencies.sort();
            let percentile =
                |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
            println!(
                "{name}: p50 {:.1} ms, p99 {:.1} ms ({matched} matching, {runs} runs)",
                ms(percentile(0.50)),
                ms(percentile(0.99)),
            );
        }
        store.shutdown().await.expect("shutdown");
    });
}

fn request(
    filter: Filter,
    range: TimeRange,
    size: usize,
    aggregations: Vec<(String, Aggregation)>,
) -> SearchRequest {
    SearchRequest {
        tenants: vec![(TENANT.to_owned(), filter)],
        range,
        order: SortOrder::Descending,
        from: 0,
        size,
        search_after: None,
        aggregations,
    }
}

/// Appends documents `present..documents`, spread evenly over the days from `first_ms`.
async fn ingest(store: &LogStore, present: usize, documents: usize, first_ms: i64) {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(present));
    let spacing_ms = (DAYS * 86_400_000) as f64 / documents as f64;
    let mut tasks = Vec::new();
    for _ in 0..APPENDERS {
        let (store, next) = (store.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(BATCH, Ordering::Relaxed);
                if start >= documents {
                    break;
                }
                let end = (start + BATCH).min(documents);
                let mut random = Random(0x9E37_79B9_7F4A_7C15 ^ start as u64);
                let batch = (start..end)
                    .map(|n| {
                        let at = first_ms + (n as f64 * spacing_ms) as i64;
                        document(&mut random, TENANT, n, at)
                    })
                    .collect::<Vec<_>>();
                loop {
                    match store.append(batch.clone()).await {
                        Ok(_) => break,
                        Err(caravan_logstore::LogStoreError::Backpressure(_)) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(error) => panic!("append: {error}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("appender");
    }
    store.refresh().await.expect("refresh");
    let elapsed = started.elapsed();
    println!(
        "ingested {} documents in {:.0} s ({:.0} docs/s)",
        documents - present,
        elapsed.as_secs_f64(),
        (documents - present) as f64 / elapsed.as_secs_f64()
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
