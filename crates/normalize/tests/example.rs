//! Realistic log lines normalised against the example schema
//! (`examples/schema/log_schema.proto`), snapshotted whole: stored document, indexed values,
//! ignored values, unknown keys and counters.

use caravan_normalize::{Limits, Normalized, normalize};
use caravan_schema::{CompileOptions, Dictionary, compile_files};

const EXAMPLE: &str = include_str!("../../../examples/schema/log_schema.proto");

/// 2026-11-22T10:00:05.000Z.
const INGEST_TIME_MS: i64 = 1_795_341_605_000;

fn example() -> Dictionary {
    compile_files([("log_schema.proto", EXAMPLE)], &CompileOptions::default())
        .unwrap_or_else(|err| panic!("{err:?}"))
}

fn run(dictionary: Option<&Dictionary>, document: &str) -> Normalized {
    normalize(
        document.as_bytes(),
        dictionary,
        INGEST_TIME_MS,
        &Limits::default(),
    )
    .unwrap_or_else(|err| panic!("{err}"))
}

/// A line as the schema wants it, nested, with a zone offset and a lower-case level.
const CLEAN: &str = r#"{
  "@timestamp": "2026-11-22T11:00:00.123+01:00",
  "level": "info",
  "message": "GET /api/v1/trips/42 200",
  "service": "trips-api",
  "kubernetes": {"namespace": "trips", "pod": "trips-api-7d9c-x2x", "container": "api", "node": "gke-n1"},
  "userId": "8812",
  "http": {"method": "GET", "path": "/api/v1/trips/42", "status": 200},
  "duration_ms": 12,
  "bytes": 5321,
  "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
  "tags": ["api", "trips"],
  "labels": {"team": "trips", "release": "2026.11.3"},
  "context": {"feature_flags": {"new_pricing": true}, "retry": 0},
  "user-agent": "Mozilla/5.0"
}"#;

/// The same kind of line from a team that drifted: aliases, dotted keys, numbers as strings,
/// an unknown level, a fractional duration, a label above `ignore_above`, unknown keys, a
/// duplicate through an alias and Elasticsearch metadata in the body.
const DRIFTED: &str = r#"{
  "timestamp": "2026-11-22T10:00:00Z",
  "ts": 1795341600123,
  "severity": "warning",
  "msg": "payment declined",
  "app": "payments",
  "k8s_namespace": "payments",
  "kubernetes.pod": "payments-5f6b-abc",
  "user_id": 8812,
  "userId": "8813",
  "http.status": "402",
  "status_code": 402,
  "http": {"method": "post", "route": "/pay"},
  "duration_ms": "12.5",
  "bytes": "1024",
  "traceId": "0af7651916cd43dd8448eb211c80319c",
  "tags": "payments",
  "labels.team": "payments",
  "labels.commit": "a5c3f1e9b7d2c4a6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0",
  "error": {"kind": "CardDeclined", "message": "insufficient funds", "stack": "at pay()\n at main()", "code": 51},
  "context.attempt": 2,
  "_id": "doc-1",
  "amount_cents": 1999
}"#;

/// A line with no usable date and values that fit nowhere.
const BROKEN: &str = r#"{
  "@timestamp": "yesterday at noon",
  "level": 3,
  "message": {"text": "nested message"},
  "kubernetes": "payments",
  "duration_ms": [1, "2", "three"],
  "tags": ["a", ["b"], {"c": 1}],
  "_ignored": "not records"
}"#;

#[test]
fn clean_line() {
    let normalized = run(Some(&example()), CLEAN);
    assert!(normalized.ignored.is_empty() && normalized.unknown_keys.is_empty());
    insta::assert_json_snapshot!("clean", normalized);
}

#[test]
fn drifted_line() {
    insta::assert_json_snapshot!("drifted", run(Some(&example()), DRIFTED));
}

#[test]
fn broken_line() {
    let normalized = run(Some(&example()), BROKEN);
    assert!(normalized.timestamp_defaulted);
    insta::assert_json_snapshot!("broken", normalized);
}

#[test]
fn drifted_line_before_any_schema() {
    insta::assert_json_snapshot!("drifted_without_schema", run(None, DRIFTED));
}

#[test]
fn stored_lines_normalise_to_themselves() {
    let dictionary = example();
    for document in [CLEAN, DRIFTED, BROKEN] {
        let first = run(Some(&dictionary), document);
        let mut stored = Vec::new();
        first.write_source(&mut stored);
        let second = normalize(&stored, Some(&dictionary), 0, &Limits::default())
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(second.source, first.source);
        assert!(second.ignored.is_empty());
        assert_eq!(second.coerced_values, 0);
    }
}
