//! The Logs page's first page of results on the search benchmark's data set (10 million
//! documents of one tenant over three UTC days): a release `caravan server` opens a copy of
//! that log store as its own, then `tests/ui/first_page.mjs` submits representative queries
//! in headless Chromium and prints p50/p99 from submission to the results on screen.
//!
//! `SEARCH_BENCH_DIR=/work/bench-search cargo bench -p caravan --bench ui_first_page`. The data
//! set is made by `SEARCH_BENCH_DIR=... cargo bench -p caravan-logstore --bench search`; it is
//! never written to: the server gets hard links to its index files (which tantivy never
//! changes in place; new files and renames stay in the copy) in a temporary directory beside
//! it, and a copy of its write-ahead log. Needs `tests/ui/node_modules` (`cd tests/ui && npm
//! ci`) and `/usr/bin/chromium`. Bounded: `BENCH_RUNS` (default 20, at most 200) submissions
//! per query, each at most 30 s.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The tenant and the end of the data set the search benchmark writes.
const TENANT: &str = "payments";
const DATA_END: &str = "2026-03-11T00:00:00Z";
/// Long enough that retention never drops the (old) days of the data set.
const RETENTION_DAYS: u32 = 3_650;

fn main() {
    let Some(source) = std::env::var_os("SEARCH_BENCH_DIR").map(PathBuf::from) else {
        eprintln!(
            "SEARCH_BENCH_DIR is not set: make the data set with \
             `SEARCH_BENCH_DIR=DIR cargo bench -p caravan-logstore --bench search`"
        );
        std::process::exit(2);
    };
    let indexes = source.join("indexes").join(TENANT);
    assert!(
        indexes.is_dir(),
        "{} has no partitions of {TENANT}",
        source.display()
    );
    let root = workspace_root();
    assert!(
        root.join("tests/ui/node_modules/playwright-core").is_dir(),
        "tests/ui/node_modules is missing: cd tests/ui && npm ci"
    );

    // The server's data directory, beside the data set (hard links need one file system).
    let parent = source.parent().unwrap_or(Path::new("."));
    let dir = tempfile::Builder::new()
        .prefix(".ui-first-page-")
        .tempdir_in(parent)
        .expect("temporary directory beside SEARCH_BENCH_DIR");
    let data_dir = dir.path().join("data");
    let logs = data_dir.join("logs");
    let started = Instant::now();
    link_tree(&source.join("indexes"), &logs.join("indexes")).expect("link the indexes");
    copy_tree(&source.join("wal"), &logs.join("wal")).expect("copy the write-ahead log");
    println!(
        "data set linked from {} in {:.1} s",
        source.display(),
        started.elapsed().as_secs_f64()
    );

    let mut server = Command::new(env!("CARGO_BIN_EXE_caravan"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start caravan server");
    let mut lines = BufReader::new(server.stdout.take().expect("piped stdout")).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server exited at start")
            .expect("server output");
        if let Some(url) = line.strip_prefix("caravan listening on ") {
            break url.to_owned();
        }
    };
    // Keep reading so that the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let admin = std::fs::read_to_string(data_dir.join("admin.token"))
        .expect("admin token")
        .trim()
        .to_owned();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    let call = |path: &str, body: Value| {
        let response = http
            .post(format!("{url}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .expect("request");
        let status = response.status();
        let answer: Value = response.json().expect("JSON answer");
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    };
    let schema = std::fs::read_to_string(root.join("examples/schema/log_schema.proto"))
        .expect("example schema");
    call(
        "/api/v1/schema",
        json!({"files": [{"name": "log_schema.proto", "content": schema}]}),
    );
    call(
        "/api/v1/tenants",
        json!({"name": TENANT, "retention_days": RETENTION_DAYS}),
    );
    let all = call(
        "/api/v1/logs/search",
        json!({"tenants": [TENANT], "query": "", "from": "2000-01-01T00:00:00Z",
               "to": DATA_END, "size": 0}),
    );
    println!(
        "caravan server (release) at {url}: {} documents of {TENANT}",
        all["total"]
    );

    let status = Command::new("node")
        .arg(root.join("tests/ui/first_page.mjs"))
        .current_dir(root.join("tests/ui"))
        .env("CARAVAN_URL", &url)
        .env("CARAVAN_TOKEN", &admin)
        .env("BENCH_TENANT", TENANT)
        .env("BENCH_END", DATA_END)
        .status()
        .expect("run node");

    // SIGTERM: the server stops as it would in production.
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
    assert!(status.success(), "tests/ui/first_page.mjs failed: {status}");
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Recreates the directory tree `from` at `to` with hard links to its files.
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else {
            std::fs::hard_link(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Copies the directory tree `from` to `to` (files that the store appends to or cuts).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
