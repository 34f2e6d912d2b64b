//! Normalisation benchmark (`cargo bench -p caravan-normalize`): realistic log lines of
//! about 420 bytes against the example schema, a third of them with drift (aliases, dotted
//! keys, numbers as strings, epoch-millisecond dates, an unknown key, an uncoercible value).
//! Prints documents and megabytes per second on one core, for normalising alone and for
//! normalising then serialising the stored document (what the ingest path does).
//!
//! Bounded: each measurement runs `ROUNDS` rounds of `ROUND` after a short warm-up (about 3 s),
//! and prints the best and the median round.

use std::hint::black_box;
use std::time::{Duration, Instant};

use caravan_normalize::{Limits, normalize};
use caravan_schema::{CompileOptions, compile_files};

const EXAMPLE: &str = include_str!("../../../examples/schema/log_schema.proto");
const DOCUMENTS: usize = 1024;
const WARM_UP: Duration = Duration::from_millis(300);
const ROUNDS: usize = 7;
const ROUND: Duration = Duration::from_millis(400);
const INGEST_TIME_MS: i64 = 1_795_341_600_000;

fn main() {
    let dictionary = compile_files([("log_schema.proto", EXAMPLE)], &CompileOptions::default())
        .expect("the example schema compiles");
    let documents: Vec<Vec<u8>> = (0..DOCUMENTS).map(document).collect();
    let bytes_total: usize = documents.iter().map(Vec::len).sum();
    let limits = Limits::default();

    let drifted = normalize(&documents[1], Some(&dictionary), 0, &limits).expect("normalises");
    println!(
        "{DOCUMENTS} documents, {:.0} bytes on average; a drifted one: {} coerced, {} renamed, \
         {} ignored, unknown {:?}",
        bytes_total as f64 / DOCUMENTS as f64,
        drifted.coerced_values,
        drifted.renamed_keys,
        drifted.ignored.len(),
        drifted.unknown_keys,
    );

    let mut out = Vec::with_capacity(1024);
    // For scale: parsing into a `serde_json::Value` and serialising it back, nothing else.
    measure("serde_json parse + write", bytes_total, || {
        for document in &documents {
            let value: serde_json::Value =
                serde_json::from_slice(black_box(document)).expect("JSON");
            out.clear();
            serde_json::to_writer(&mut out, &value).expect("serialises");
            black_box(&out);
        }
    });
    measure("normalize", bytes_total, || {
        for document in &documents {
            let normalized = normalize(
                black_box(document),
                Some(&dictionary),
                INGEST_TIME_MS,
                &limits,
            )
            .expect("normalises");
            black_box(&normalized);
        }
    });
    measure("normalize + write_source", bytes_total, || {
        for document in &documents {
            let normalized = normalize(
                black_box(document),
                Some(&dictionary),
                INGEST_TIME_MS,
                &limits,
            )
            .expect("normalises");
            out.clear();
            normalized.write_source(&mut out);
            black_box(&out);
        }
    });
}

/// Runs `pass` (one pass over the documents) for `ROUNDS` rounds of about `ROUND` each after
/// a warm-up, and prints the best and the median round: the machine is shared, so the best
/// round is the closest to the cost on an idle core.
fn measure(label: &str, bytes_per_pass: usize, mut pass: impl FnMut()) {
    let started = Instant::now();
    while started.elapsed() < WARM_UP {
        pass();
    }
    let mut rates = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut passes = 0usize;
        while started.elapsed() < ROUND {
            pass();
            passes += 1;
        }
        rates.push((passes * DOCUMENTS) as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let best = rates[ROUNDS - 1];
    let median = rates[ROUNDS / 2];
    let bytes_per_doc = bytes_per_pass as f64 / DOCUMENTS as f64;
    println!(
        "{label:>26}: best {best:>7.0} docs/s, {:>5.1} MB/s, {:>5.2} us/doc; median {median:>7.0} docs/s (one core)",
        best * bytes_per_doc / 1e6,
        1e6 / best,
    );
}

/// The `index`-th document: one clean line in three, the others with some drift.
fn document(index: usize) -> Vec<u8> {
    let user = 1000 + index * 7 % 9000;
    let status = [200, 201, 404, 500][index % 4];
    let took = index * 13 % 900;
    let millis = 1_795_341_600_000 + index as i64 * 37;
    let text = match index % 3 {
        0 => format!(
            r#"{{"@timestamp":"2026-11-22T10:00:{:02}.{:03}Z","level":"info","message":"GET /api/v1/trips/{index} {status} in {took}ms","service":"trips-api","kubernetes":{{"namespace":"trips","pod":"trips-api-7d9c-x2x","container":"api","node":"gke-pool-1-n{}"}},"userId":"{user}","http":{{"method":"GET","path":"/api/v1/trips/{index}","status":{status}}},"duration_ms":{took},"bytes":5321,"trace_id":"4bf92f3577b34da6a3ce929d0e0e{:04}","labels":{{"team":"trips"}}}}"#,
            index % 60,
            index % 1000,
            index % 10,
            index % 10_000,
        ),
        1 => format!(
            r#"{{"@timestamp":{millis},"severity":"WARN","msg":"POST /api/v1/payments {status} after retry","app":"payments-api","k8s_namespace":"payments","kubernetes.pod":"payments-5f6b-abc","kubernetes.container":"api","user_id":{user},"http.method":"POST","http.path":"/api/v1/payments","http.status":"{status}","duration_ms":"{took}","bytes":"2048","traceId":"0af7651916cd43dd8448eb211c80{:04}","request_id":"req-{index}","labels.team":"payments"}}"#,
            index % 10_000,
        ),
        _ => format!(
            r#"{{"@timestamp":"2026-11-22T11:00:{:02}+01:00","level":"error","message":"payment declined for card ending 4242","service":"payments-api","kubernetes":{{"namespace":"payments","pod":"payments-5f6b-abc","container":"api"}},"userId":{user},"http":{{"method":"post","path":"/pay","status_code":402}},"duration_ms":12.5,"error":{{"kind":"CardDeclined","message":"insufficient funds"}},"tags":["payments","declined"],"labels":{{"team":"payments"}}}}"#,
            index % 60,
        ),
    };
    text.into_bytes()
}
