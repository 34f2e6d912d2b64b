//! Logs with real clients: the official Python client, and a client that keeps writing while
//! the server is killed with SIGKILL.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::logs::LogsFixture;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn official_python_client() {
    let python = workspace_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make test` creates it (python3 -m venv .venv && .venv/bin/pip install 'elasticsearch>=8,<9')",
        python.display()
    );
    let fixture = LogsFixture::start();
    let token = fixture.server.create_token(json!({
        "name": "python", "kind": "tenant", "tenant": "payments", "scopes": ["logs:write", "logs:read"]
    }));
    let output = Command::new(&python)
        .arg(workspace_root().join("tests/python/es_client.py"))
        .env("CARAVAN_URL", &fixture.server.url)
        .env("CARAVAN_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A deterministic sequence of pauses, so that every run kills at the same moments.
fn pause_ms(round: u64) -> u64 {
    150 + (round * 7919 + 31) % 350
}

#[test]
fn every_acknowledged_id_survives_kill_9_exactly_once() {
    const ROUNDS: u64 = 4;
    const BATCH: usize = 40;
    let fixture = LogsFixture::start();
    let writer = fixture.payments_writer.clone();
    let reader = fixture.payments_reader.clone();
    let data_dir = fixture.server.data_dir.clone();
    let mut server = fixture.server;
    let _dir = server.keep_dir();
    let sent: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let acknowledged: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    for round in 0..ROUNDS {
        if round > 0 {
            server = TestServer::start_in(&data_dir, &[]);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let client = {
            let (url, writer, stop, sent, acknowledged) = (
                server.url.clone(),
                writer.clone(),
                stop.clone(),
                sent.clone(),
                acknowledged.clone(),
            );
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut batch = 0;
                while !stop.load(Ordering::Relaxed) && batch < 10_000 {
                    let ids: Vec<String> = (0..BATCH)
                        .map(|n| format!("r{round}-b{batch}-{n}"))
                        .collect();
                    let mut body = String::new();
                    for id in &ids {
                        body.push_str(
                            &json!({"create": {"_index": "payments-crash", "_id": id}}).to_string(),
                        );
                        body.push('\n');
                        body.push_str(&json!({"message": "crash test", "userId": id}).to_string());
                        body.push('\n');
                    }
                    sent.lock().unwrap().extend(ids.iter().cloned());
                    batch += 1;
                    let Ok(response) = http
                        .post(format!("{url}/_bulk"))
                        .bearer_auth(&writer)
                        .body(body)
                        .send()
                    else {
                        break;
                    };
                    let Ok(answer) = response.json::<Value>() else {
                        break;
                    };
                    for (item, id) in answer["items"].as_array().into_iter().flatten().zip(&ids) {
                        if item["create"]["status"] == 201 {
                            acknowledged.lock().unwrap().insert(id.clone());
                        }
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(pause_ms(round)));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        client.join().unwrap();
    }
    let server = TestServer::start_in(&data_dir, &[]);
    let acknowledged = acknowledged.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 2 * BATCH,
        "the client got too few acknowledgements to prove anything: {}",
        acknowledged.len()
    );
    let http = reqwest::blocking::Client::new();
    let mut present = 0_u64;
    for id in &sent {
        let status = http
            .get(format!("{}/payments-crash/_doc/{id}", server.url))
            .bearer_auth(&reader)
            .send()
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            present += 1;
        } else {
            assert!(
                !acknowledged.contains(id),
                "acknowledged id {id} is missing after the crashes"
            );
        }
    }
    let (status, count) = server.call("GET", "/payments-crash/_count", Some(&reader), None);
    assert_eq!(status, 200, "{count}");
    assert_eq!(
        count["count"].as_u64(),
        Some(present),
        "documents stored more than once"
    );
}
