//! Ingest benchmark: the whole store (validation, write-ahead log with group commit, routing,
//! tantivy) against raw tantivy (one `IndexWriter`, same schema and documents, no log) as the
//! ceiling.
//!
//! `cargo bench -p caravan-logstore` (release). Bounded: `LOGSTORE_BENCH_DOCS` documents
//! (default 300,000, at most 2,000,000), batches of `LOGSTORE_BENCH_BATCH` (default 2,000),
//! `LOGSTORE_BENCH_TASKS` concurrent appenders (default 4), `LOGSTORE_BENCH_TENANTS` tenants
//! (1 to 4, default 4); each phase is abandoned after 300 s. The store runs with the default
//! configuration unless `LOGSTORE_BENCH_COMMIT_MS`, `LOGSTORE_BENCH_BUDGET_MB` or
//! `LOGSTORE_BENCH_WRITERS` say otherwise.
//!
//! Prints, for both: docs/s and MB/s of raw JSON (wall clock), documents per CPU-second of the
//! whole process (meaningful when other work shares the machine), bytes on disk per byte of raw
//! JSON; then the store's group-commit figures and the two ratios store / ceiling.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caravan_logstore::tantivy::{Index, IndexWriter};
use caravan_logstore::{Day, LogDocument, LogSchema, LogStore, LogStoreConfig, TimeRange};

const DOCUMENTS_MAX: usize = 2_000_000;
const PHASE_TIMEOUT: Duration = Duration::from_secs(300);
mod common;

use common::{Random, TENANTS, document};

fn main() {
    let documents = env_usize("LOGSTORE_BENCH_DOCS", 300_000).min(DOCUMENTS_MAX);
    let batch_size = env_usize("LOGSTORE_BENCH_BATCH", 2_000).clamp(1, 10_000);
    let tasks = env_usize("LOGSTORE_BENCH_TASKS", 4).clamp(1, 64);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let generated = Instant::now();
    let batches = generate(documents, batch_size);
    let raw_bytes: u64 = batches
        .iter()
        .flatten()
        .map(|d| d.source.len() as u64)
        .sum();
    println!(
        "{documents} documents in batches of {batch_size}, {} tenants, average {} bytes of JSON, generated in {:.1} s; {cores} cores",
        TENANTS.len(),
        raw_bytes / documents as u64,
        generated.elapsed().as_secs_f64()
    );

    let ceiling_dir = tempfile::tempdir().expect("temporary directory");
    let ceiling = raw_tantivy(ceiling_dir.path(), &batches, cores);
    drop(ceiling_dir);
    report("raw tantivy (ceiling)", documents, raw_bytes, &ceiling);

    let store_dir = tempfile::tempdir().expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("runtime");
    let (store, fsyncs, records) =
        runtime.block_on(store_pipeline(store_dir.path(), batches, tasks));
    report("log store (WAL + tantivy)", documents, raw_bytes, &store);
    println!(
        "group commit: {records} appends, {fsyncs} fsyncs ({:.1} appends per fsync)",
        records as f64 / fsyncs.max(1) as f64
    );
    println!(
        "ratio store / ceiling: {:.2} in docs/s, {:.2} in docs per CPU-second",
        ceiling.elapsed.as_secs_f64() / store.elapsed.as_secs_f64(),
        ceiling.cpu_seconds / store.cpu_seconds
    );
}

/// What a phase measured.
struct Phase {
    elapsed: Duration,
    /// CPU time of the whole process during the phase (all threads): robust when other work
    /// shares the machine, unlike wall time.
    cpu_seconds: f64,
    disk_bytes: u64,
}

fn report(what: &str, documents: usize, raw_bytes: u64, phase: &Phase) {
    let seconds = phase.elapsed.as_secs_f64();
    println!(
        "{what:<26} {:>7.0} docs/s {:>5.1} MB/s ({:.1} s wall) | {:>7.0} docs per CPU-second | on disk {:.3} x raw JSON ({} MB)",
        documents as f64 / seconds,
        raw_bytes as f64 / seconds / 1e6,
        seconds,
        documents as f64 / phase.cpu_seconds,
        phase.disk_bytes as f64 / raw_bytes as f64,
        phase.disk_bytes / 1_000_000
    );
}

/// User and system CPU time of this process so far (Linux `/proc/self/stat`, in ticks of
/// 1/100 s); 0 elsewhere.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start at field 3.
    let Some(after_name) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// One `IndexWriter` with a thread per core, the store's schema and settings, same documents.
fn raw_tantivy(dir: &Path, batches: &[Vec<LogDocument>], cores: usize) -> Phase {
    let schema = LogSchema::new();
    let index = Index::builder()
        .schema(schema.schema.clone())
        .settings(LogSchema::index_settings())
        .create_in_dir(dir)
        .expect("index");
    let started = Instant::now();
    let cpu_started = process_cpu_seconds();
    let mut writer: IndexWriter = index
        .writer_with_num_threads(cores, 512 << 20)
        .expect("writer");
    for document in batches.iter().flatten() {
        writer
            .add_document(schema.to_tantivy(document))
            .expect("add");
        if started.elapsed() > PHASE_TIMEOUT {
            panic!("raw tantivy phase exceeded {PHASE_TIMEOUT:?}");
        }
    }
    writer.commit().expect("commit");
    let elapsed = started.elapsed();
    let cpu_seconds = process_cpu_seconds() - cpu_started;
    writer.wait_merging_threads().expect("merges");
    Phase {
        elapsed,
        cpu_seconds,
        disk_bytes: dir_bytes(dir),
    }
}

async fn store_pipeline(
    root: &Path,
    batches: Vec<Vec<LogDocument>>,
    tasks: usize,
) -> (Phase, u64, u64) {
    let mut config = LogStoreConfig::new(root);
    if let Some(commit_ms) = std::env::var("LOGSTORE_BENCH_COMMIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.commit_interval = Duration::from_millis(commit_ms);
    }
    if let Some(budget_mb) = std::env::var("LOGSTORE_BENCH_BUDGET_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        config.indexing_memory_budget_bytes = budget_mb << 20;
    }
    if let Some(writers) = std::env::var("LOGSTORE_BENCH_WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.writers_open_max = writers;
    }
    let store = LogStore::open(config).await.expect("open");
    let documents: usize = batches.iter().map(Vec::len).sum();
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let started = Instant::now();
    let cpu_started = process_cpu_seconds();
    let appenders: Vec<_> = (0..tasks)
        .map(|_| {
            let store = store.clone();
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                loop {
                    let batch = queue.lock().expect("queue").pop();
                    let Some(batch) = batch else { break };
                    // The default 512 MiB log holds the whole run: backpressure would be a
                    // finding, not something to retry around.
                    if let Err(error) = store.append(batch).await {
                        panic!("append failed: {error}");
                    }
                    assert!(started.elapsed() < PHASE_TIMEOUT, "store phase too slow");
                }
            })
        })
        .collect();
    for appender in appenders {
        appender.await.expect("appender");
    }
    let acknowledged = started.elapsed();
    store.refresh().await.expect("refresh");
    let elapsed = started.elapsed();
    let cpu_seconds = process_cpu_seconds() - cpu_started;
    println!(
        "log store: all appends acknowledged after {:.1} s, searchable after {:.1} s",
        acknowledged.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    let mut counted = 0;
    for tenant in TENANTS {
        counted += store.count(tenant, TimeRange::ALL).await.expect("count");
    }
    assert_eq!(counted as usize, documents, "every document is searchable");
    let stats = store.stats();
    store.shutdown().await.expect("shutdown");
    let phase = Phase {
        elapsed,
        cpu_seconds,
        disk_bytes: dir_bytes(&root.join("indexes")),
    };
    (phase, stats.wal_fsyncs, stats.wal_records)
}

/// Documents already split into dictionary fields, grouped in single-tenant batches.
fn generate(count: usize, batch_size: usize) -> Vec<Vec<LogDocument>> {
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let day = Day::from_ymd(2026, 3, 10).expect("date");
    let mut batches = Vec::new();
    let mut produced = 0;
    while produced < count {
        let tenants = env_usize("LOGSTORE_BENCH_TENANTS", TENANTS.len()).clamp(1, TENANTS.len());
        let tenant = TENANTS[batches.len() % tenants];
        let size = batch_size.min(count - produced);
        let batch = (0..size)
            .map(|n| {
                let timestamp_ms = day.start_ms() + ((produced + n) as i64 * 37) % 86_400_000;
                document(&mut random, tenant, produced + n, timestamp_ms)
            })
            .collect();
        produced += size;
        batches.push(batch);
    }
    batches
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        total += if metadata.is_dir() {
            dir_bytes(&entry.path())
        } else {
            metadata.len()
        };
    }
    total
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
