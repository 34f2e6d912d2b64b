//! End-to-end ingestion benchmark: realistic JSON logs sent through HTTP `_bulk` to a release
//! `caravan server` by several concurrent clients; and, in the same run on the same documents,
//! raw tantivy indexing (same schema, no HTTP, no write-ahead log, no normalisation) as the
//! ceiling. Prints docs/s, MB/s, p99 bulk latency, bytes on disk per raw byte and the ratio.
//!
//! `cargo bench -p caravan --bench ingest_http` (bounded: about 30 s). Environment knobs:
//! `CARAVAN_BENCH_DOCS` (default 600000), `CARAVAN_BENCH_CLIENTS` (4), `CARAVAN_BENCH_BATCH`
//! (2000).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caravan_logstore::{LogDocument, LogSchema, WriteMode};
use caravan_normalize::Limits;
use serde_json::json;

const TENANTS: [&str; 4] = ["payments", "search", "checkout", "identity"];
const LEVELS: [&str; 5] = ["info", "INFO", "warn", "ERROR", "debug"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const WORDS: [&str; 16] = [
    "payment",
    "accepted",
    "for",
    "user",
    "order",
    "timeout",
    "while",
    "calling",
    "upstream",
    "retrying",
    "request",
    "completed",
    "cache",
    "miss",
    "refund",
    "issued",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A deterministic pseudo-random stream.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

/// About 420 bytes of JSON, with some alias and type drift (`user_id`, numbers as strings).
fn document(n: u64, rng: &mut Lcg) -> String {
    let tenant = TENANTS[(n % 4) as usize];
    let words: Vec<&str> = (0..8 + rng.next() % 6).map(|_| rng.pick(&WORDS)).collect();
    let user = rng.next() % 100_000;
    let status = [200, 200, 200, 201, 404, 500][(rng.next() % 6) as usize];
    let mut doc = json!({
        "@timestamp": format!("2026-11-23T{:02}:{:02}:{:02}.{:03}Z", (n / 3_600_000) % 24, (n / 60_000) % 60, (n / 1000) % 60, n % 1000),
        "level": rng.pick(&LEVELS),
        "message": words.join(" "),
        "service": format!("{tenant}-api"),
        "kubernetes": {
            "namespace": tenant,
            "pod": format!("{tenant}-api-7d9f8b6c5-{:05x}", rng.next() % 0xfffff),
            "container": "app",
            "node": format!("node-{:03}", rng.next() % 200),
        },
        "http": {"method": rng.pick(&METHODS), "path": format!("/v1/{}/{}", rng.pick(&WORDS), rng.next() % 1000), "status": status},
        "duration_ms": rng.next() % 2000,
        "bytes": rng.next() % 100_000,
        "trace_id": format!("{:016x}{:016x}", rng.next(), rng.next()),
    });
    match n % 3 {
        0 => doc["userId"] = json!(user.to_string()),
        1 => doc["user_id"] = json!(user),
        _ => doc["user-id"] = json!(user.to_string()),
    }
    if n.is_multiple_of(5) {
        doc["http"]["status"] = json!(status.to_string());
    }
    doc.to_string()
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`: on a
/// shared machine, CPU per document says more than wall time.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn main() {
    let total = env_usize("CARAVAN_BENCH_DOCS", 600_000);
    let clients = env_usize("CARAVAN_BENCH_CLIENTS", 4);
    let batch = env_usize("CARAVAN_BENCH_BATCH", 2_000);
    let mut rng = Lcg(42);
    let documents: Vec<String> = (0..total as u64).map(|n| document(n, &mut rng)).collect();
    let raw_bytes: usize = documents.iter().map(|d| d.len()).sum();
    println!(
        "{total} documents, {:.0} bytes each on average, {:.1} MB of raw JSON; {clients} clients, batches of {batch}",
        raw_bytes as f64 / total as f64,
        raw_bytes as f64 / 1e6
    );

    // The server, in release, with the example schema and four tenants.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Command::new(env!("CARGO_BIN_EXE_caravan"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.strip_prefix("caravan listening on ") {
            break url.to_owned();
        }
    };
    let admin = std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let schema = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/schema/log_schema.proto"),
    )
    .unwrap();
    let response = http
        .post(format!("{url}/api/v1/schema"))
        .bearer_auth(&admin)
        .json(&json!({"files": [{"name": "log_schema.proto", "content": schema}]}))
        .send()
        .unwrap();
    assert!(response.status().is_success());
    for tenant in TENANTS {
        let response = http
            .post(format!("{url}/api/v1/tenants"))
            .bearer_auth(&admin)
            .json(&json!({"name": tenant}))
            .send()
            .unwrap();
        assert!(response.status().is_success());
    }

    // Bodies prepared before the clock starts.
    let bodies: Vec<String> = documents
        .chunks(batch)
        .map(|chunk| {
            let mut body = String::with_capacity(chunk.iter().map(|d| d.len() + 48).sum());
            for (i, doc) in chunk.iter().enumerate() {
                let tenant = TENANTS[i % 4];
                body.push_str(&format!(
                    "{{\"index\":{{\"_index\":\"{tenant}-2026.11.23\"}}}}\n"
                ));
                body.push_str(doc);
                body.push('\n');
            }
            body
        })
        .collect();
    let server_pid = server.id().to_string();
    let server_cpu_before = cpu_seconds(&server_pid);
    let queue = Arc::new(Mutex::new(bodies));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (queue, latencies, url, admin, http) = (
                queue.clone(),
                latencies.clone(),
                url.clone(),
                admin.clone(),
                http.clone(),
            );
            std::thread::spawn(move || {
                loop {
                    let Some(body) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let sent = Instant::now();
                    let response = http
                        .post(format!("{url}/_bulk?filter_path=errors"))
                        .bearer_auth(&admin)
                        .body(body)
                        .send()
                        .unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                    let answer: serde_json::Value = response.json().unwrap();
                    assert_eq!(answer["errors"], false, "a bulk request had item errors");
                    latencies.lock().unwrap().push(sent.elapsed());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let elapsed = started.elapsed();
    let server_cpu = cpu_seconds(&server_pid) - server_cpu_before;
    let response = http
        .post(format!("{url}/_bulk?refresh=true"))
        .bearer_auth(&admin)
        .body("")
        .send()
        .unwrap();
    assert!(response.status().is_success());
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    let e2e_docs_per_s = total as f64 / elapsed.as_secs_f64();
    println!(
        "end to end (HTTP _bulk, WAL fsync, normalisation, tantivy): {:.0} docs/s, {:.1} MB/s, p99 bulk latency {:.0} ms, {:.2} s",
        e2e_docs_per_s,
        raw_bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        p99.as_secs_f64() * 1000.0,
        elapsed.as_secs_f64()
    );
    // Let the periodic commit and merges settle, then stop the server cleanly.
    std::thread::sleep(Duration::from_secs(2));
    let server_cpu_settled = cpu_seconds(&server_pid) - server_cpu_before;
    println!(
        "server CPU: {:.1} us per document while timed ({:.1} s, {:.2} cores), {:.1} us with the 2 s after",
        server_cpu * 1e6 / total as f64,
        server_cpu,
        server_cpu / elapsed.as_secs_f64(),
        server_cpu_settled * 1e6 / total as f64
    );
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    server.wait().unwrap();
    let index_bytes = dir_bytes(&data_dir.join("logs/indexes"));
    let all_bytes = dir_bytes(&data_dir.join("logs"));
    println!(
        "on disk: indexes {:.1} MB = {:.2} x raw JSON (with the write-ahead log: {:.1} MB = {:.2} x)",
        index_bytes as f64 / 1e6,
        index_bytes as f64 / raw_bytes as f64,
        all_bytes as f64 / 1e6,
        all_bytes as f64 / raw_bytes as f64
    );

    // The ceiling: the same documents, normalised beforehand (not timed), indexed by one
    // tantivy writer with the same schema, no HTTP, no WAL.
    let dictionary =
        caravan_schema::compile_files([("log_schema.proto", schema.as_str())], &Default::default())
            .unwrap();
    let limits = Limits::default();
    let log_schema = LogSchema::new();
    let prepared: Vec<_> = documents
        .iter()
        .enumerate()
        .map(|(n, doc)| {
            let normalized =
                caravan_normalize::normalize(doc.as_bytes(), Some(&dictionary), 0, &limits)
                    .unwrap();
            let mut source = Vec::new();
            normalized.write_source(&mut source);
            let fields = normalized
                .indexed
                .into_iter()
                .map(|indexed| (indexed.key, indexed.value))
                .collect();
            log_schema.to_tantivy(&LogDocument {
                tenant: TENANTS[n % 4].to_owned(),
                id: format!("{n:020}"),
                timestamp_ms: normalized.timestamp_ms,
                source,
                fields,
                mode: WriteMode::Create,
            })
        })
        .collect();
    let raw_dir = dir.path().join("raw");
    std::fs::create_dir_all(&raw_dir).unwrap();
    let index = caravan_logstore::tantivy::Index::builder()
        .schema(log_schema.schema.clone())
        .settings(LogSchema::index_settings())
        .create_in_dir(&raw_dir)
        .unwrap();
    let raw_cpu_before = cpu_seconds("self");
    let started = Instant::now();
    let mut writer: caravan_logstore::tantivy::IndexWriter =
        index.writer_with_num_threads(2, 256 * 1024 * 1024).unwrap();
    for doc in prepared {
        writer.add_document(doc).unwrap();
    }
    writer.commit().unwrap();
    let raw_elapsed = started.elapsed();
    let raw_cpu = cpu_seconds("self") - raw_cpu_before;
    let raw_docs_per_s = total as f64 / raw_elapsed.as_secs_f64();
    println!(
        "raw tantivy (same schema, 2 threads, no HTTP/WAL/normalisation): {:.0} docs/s, {:.2} s",
        raw_docs_per_s,
        raw_elapsed.as_secs_f64()
    );
    println!(
        "raw tantivy CPU: {:.1} us per document ({:.2} cores)",
        raw_cpu * 1e6 / total as f64,
        raw_cpu / raw_elapsed.as_secs_f64()
    );
    println!(
        "ratio end to end / raw tantivy: {:.2} (CPU per document, raw / end to end: {:.2})",
        e2e_docs_per_s / raw_docs_per_s,
        raw_cpu / server_cpu
    );
}
