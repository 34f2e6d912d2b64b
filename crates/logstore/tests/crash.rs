//! The store-level crash property: a child process appends in a loop and is killed with SIGKILL
//! at a random moment; after each kill, every id the child saw acknowledged is present exactly
//! once, and no id is present twice. Several rounds on the same root, so that each replay also
//! recovers from the previous crash.
//!
//! The child is this test binary itself, running the ignored test `crash_child` with the
//! root in an environment variable.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use caravan_logstore::tantivy::TantivyDocument;
use caravan_logstore::tantivy::collector::DocSetCollector;
use caravan_logstore::tantivy::query::AllQuery;
use caravan_logstore::tantivy::schema::Value;
use caravan_logstore::{Day, LogStoreConfig, LogStoreError, WriteMode};
use common::{document, today};

const ROOT_VARIABLE: &str = "CARAVAN_LOGSTORE_CRASH_ROOT";
const ROUND_VARIABLE: &str = "CARAVAN_LOGSTORE_CRASH_ROUND";
const TENANTS: [&str; 2] = ["alpha", "beta"];
const ROUNDS: u64 = 3;

/// Partitions commit every 10 ms (and on the child's refreshes) while the log holds records
/// not yet indexed, so kills land between commits and truncations. Four writers for the four
/// partitions (two tenants, two days): closing writers is covered by
/// `writers_stay_under_the_budget_and_close_when_idle`, and in a debug build each close costs a
/// commit of ~100 ms.
fn crash_config(root: &Path) -> LogStoreConfig {
    let mut config = common::config(root);
    config.indexing_memory_budget_bytes = 60_000_000;
    config.writers_open_max = 4;
    config.commit_interval = Duration::from_millis(10);
    config
}

/// A small xorshift generator: no dependency, reproducible from the printed seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

// This test once found a document present twice (seed 1795444660769615697: "round 2:
// duplicated ids [alpha/r1-t0-b13-2]"): an upsert's delete, the first operation of a writer
// opened after the partition's last commit, lost in a tantivy merge; the old copy came back
// one open later. Fixed in `writers::open_writer`, whose unit test reproduces it exactly.
#[test]
fn acknowledged_documents_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut random = Random(seed);
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut skipped_on_replay = 0;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ROOT_VARIABLE, dir.path())
            .env(ROUND_VARIABLE, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_sender, lines) = mpsc::channel::<String>();
        // Only complete lines count: the kill may cut the last one.
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdout.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.ends_with(b"\n") => {
                        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                        if lines_sender.send(text).is_err() {
                            break;
                        }
                    }
                    Ok(_) => break,
                }
            }
        });
        // Kill at a random moment after the child's first commit (so that partitions have
        // committed records the log may still hold).
        let mut before_kill = Vec::new();
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the child never refreshed");
            if line == "REFRESHED" {
                break;
            }
            before_kill.push(line);
        }
        let kill_after = Duration::from_millis(20 + random.below(200));
        std::thread::sleep(kill_after);
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let mut round_acknowledged = 0;
        for line in before_kill.into_iter().chain(lines.try_iter()) {
            if let Some(ids) = line.strip_prefix("ACK ") {
                for id in ids.split(',') {
                    acknowledged.insert(id.to_string());
                    round_acknowledged += 1;
                }
            }
        }
        assert!(
            round_acknowledged > 0,
            "round {round}: nothing acknowledged"
        );

        let (present, stats) = runtime.block_on(async {
            let store = common::open(crash_config(dir.path())).await;
            let stats = store.stats();
            let present = all_ids(&store).await;
            store.shutdown().await.unwrap();
            (present, stats)
        });
        skipped_on_replay += stats.documents_skipped_on_replay;
        let duplicated: Vec<_> = present.iter().filter(|(_, count)| **count > 1).collect();
        assert!(
            duplicated.is_empty(),
            "round {round} (seed {seed}): duplicated ids {duplicated:?}"
        );
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|id| !present.contains_key(*id))
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "round {round} (seed {seed}): lost acknowledged ids {missing:?}"
        );
        eprintln!(
            "round {round}: killed after {kill_after:?}, {round_acknowledged} acknowledged, {} present, replay: {} indexed, {} already committed",
            present.len(),
            stats.documents_replayed,
            stats.documents_skipped_on_replay,
        );
    }
    // The interesting crashes happened: some partitions had committed records the log still
    // held (the child refreshes every few milliseconds while appending).
    assert!(
        skipped_on_replay > 0,
        "no crash landed between a commit and a truncation (seed {seed})"
    );
}

/// Every `_id` of every partition, with how many documents carry it.
async fn all_ids(store: &caravan_logstore::LogStore) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for tenant in TENANTS {
        let all_days = Day::from_days_since_epoch(0)..=Day::from_days_since_epoch(100_000);
        let found = store
            .with_searchers(tenant, all_days, |schema, searchers| {
                let mut found = Vec::new();
                for (_, searcher) in searchers {
                    let addresses = searcher
                        .search(&AllQuery, &DocSetCollector)
                        .map_err(|e| LogStoreError::Unavailable(e.to_string()))?;
                    for address in addresses {
                        let doc: TantivyDocument = searcher
                            .doc(address)
                            .map_err(|e| LogStoreError::Unavailable(e.to_string()))?;
                        let id = doc
                            .get_first(schema.id)
                            .and_then(|v| v.as_str())
                            .unwrap_or_default();
                        found.push(id.to_string());
                    }
                }
                Ok(found)
            })
            .await
            .unwrap();
        for id in found {
            *ids.entry(format!("{tenant}/{id}")).or_insert(0) += 1;
        }
    }
    ids
}

/// The child: appends batches from three tasks until killed, printing each acknowledged batch.
/// Some batches upsert ids acknowledged earlier (possibly onto another day).
#[test]
#[ignore = "runs as the child process of acknowledged_documents_survive_sigkill_exactly_once"]
fn crash_child() {
    let Ok(root) = std::env::var(ROOT_VARIABLE) else {
        return;
    };
    let round: u64 = std::env::var(ROUND_VARIABLE).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let store = common::open(crash_config(Path::new(&root))).await;
        let started = Instant::now();
        // Commits at random moments, while the appenders go on.
        let refresher = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut random = Random(round * 31 + 17);
                while started.elapsed() < Duration::from_secs(60) {
                    tokio::time::sleep(Duration::from_millis(5 + random.below(25))).await;
                    store.refresh().await.unwrap();
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "REFRESHED").unwrap();
                    stdout.flush().unwrap();
                }
            })
        };
        let tasks: Vec<_> = (0..3u64)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut random = Random((round + 1) * 7_919 + task * 104_729 + 1);
                    let mut previous: Vec<(String, String)> = Vec::new();
                    for batch_number in 0u64.. {
                        // A safety net: the parent kills long before.
                        if started.elapsed() > Duration::from_secs(60) {
                            break;
                        }
                        let upsert = batch_number % 5 == 4 && !previous.is_empty();
                        let mut batch = Vec::new();
                        if upsert {
                            for (tenant, id) in &previous {
                                let day = today().plus_days(-(random.below(2) as i32));
                                let mut doc =
                                    document(tenant, id, day, random.below(86_400_000) as i64);
                                doc.mode = WriteMode::Upsert;
                                batch.push(doc);
                            }
                        } else {
                            for n in 0..1 + random.below(25) {
                                let tenant = TENANTS[random.below(2) as usize];
                                let day = today().plus_days(-(random.below(2) as i32));
                                let id = format!("r{round}-t{task}-b{batch_number}-{n}");
                                batch.push(document(
                                    tenant,
                                    &id,
                                    day,
                                    random.below(86_400_000) as i64,
                                ));
                            }
                        }
                        let ids: Vec<(String, String)> = batch
                            .iter()
                            .map(|d| (d.tenant.clone(), d.id.clone()))
                            .collect();
                        match store.append(batch).await {
                            Ok(_) => {
                                // Let the indexer keep up: a debug build indexes slowly.
                                tokio::time::sleep(Duration::from_millis(2)).await;
                                let line: Vec<String> = ids
                                    .iter()
                                    .map(|(tenant, id)| format!("{tenant}/{id}"))
                                    .collect();
                                let mut stdout = std::io::stdout().lock();
                                writeln!(stdout, "ACK {}", line.join(",")).unwrap();
                                stdout.flush().unwrap();
                                if !upsert {
                                    previous = ids;
                                }
                            }
                            Err(LogStoreError::Backpressure(_)) => {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Err(error) => panic!("append failed: {error}"),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        refresher.abort();
    });
}
