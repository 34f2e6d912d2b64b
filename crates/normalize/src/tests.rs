//! One test per rule of the crate docs, through the public entry points, against a small
//! schema that has every kind of key.

mod properties;

use std::sync::LazyLock;

use caravan_schema::{CompileOptions, Dictionary, compile_files};
use serde_json::{Value, json};

use crate::{
    DocumentError, IgnoredKind, Limits, Normalized, TypedValue, normalize, normalize_value,
};

pub(crate) const SCHEMA: &str = r#"
syntax = "proto3";
package test.v1;
import "caravan/options.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";

message LogSchema {
  enum Level { DEBUG = 0; INFO = 1; WARN = 2; ERROR = 3; }
  google.protobuf.Timestamp timestamp = 1 [(caravan.field) = { name: "@timestamp", aliases: ["ts"] }];
  Level level = 2 [(caravan.field) = { aliases: ["severity", "log.level", "calls.level"] }];
  string message = 3 [(caravan.field) = { text: true, aliases: ["msg"] }];
  string userId = 4 [(caravan.field) = { aliases: ["user_id", "user-id"] }];
  Http http = 5;
  int64 count = 6;
  double ratio = 7;
  bool ok = 8;
  google.protobuf.Timestamp started = 9;
  bytes blob = 10;
  repeated string tags = 11;
  map<string, string> labels = 12 [(caravan.field) = { ignore_above: 8 }];
  google.protobuf.Struct context = 13 [(caravan.field) = { aliases: ["ctx"] }];
  repeated Call calls = 14;
  string secret = 15 [(caravan.field) = { index: false }];
  map<string, int64> counters = 16;
  Kubernetes kubernetes = 17;
}
message Http {
  string method = 1;
  int32 status = 2 [(caravan.field) = { aliases: ["status_code"] }];
}
message Call {
  string name = 1;
  int64 took_ms = 2;
}
message Kubernetes {
  string namespace = 1 [(caravan.field) = { aliases: ["k8s_namespace"] }];
  string pod = 2;
}
"#;

pub(crate) static DICTIONARY: LazyLock<Dictionary> = LazyLock::new(|| {
    compile_files([("log_schema.proto", SCHEMA)], &CompileOptions::default())
        .unwrap_or_else(|err| panic!("{err:?}"))
});

/// 2026-11-22T10:00:00.000Z.
pub(crate) const INGEST_TIME_MS: i64 = 1_795_341_600_000;
const INGEST_TIME: &str = "2026-11-22T10:00:00.000Z";

fn run(document: &str) -> Normalized {
    normalize(
        document.as_bytes(),
        Some(&DICTIONARY),
        INGEST_TIME_MS,
        &Limits::default(),
    )
    .unwrap_or_else(|err| panic!("{err}: {document}"))
}

/// The stored document without `@timestamp` when it is the ingest time, and without
/// `_ignored` (checked through [`ignored`]).
fn stored(normalized: &Normalized) -> Value {
    let mut source = normalized.source.to_map();
    if source["@timestamp"] == INGEST_TIME {
        source.remove("@timestamp");
    }
    source.remove("_ignored");
    Value::Object(source)
}

fn indexed(normalized: &Normalized) -> Vec<(&str, TypedValue)> {
    normalized
        .indexed
        .iter()
        .map(|entry| (entry.key.as_str(), entry.value.clone()))
        .collect()
}

/// The ignored values as (key, value, reason), also checking that `_ignored` in the source
/// holds the same records.
fn ignored(normalized: &Normalized) -> Vec<(&str, Value, &str)> {
    let records: Vec<Value> = normalized.ignored.iter().map(|i| i.to_record()).collect();
    match normalized.source.get("_ignored").as_ref() {
        Some(Value::Array(stored)) => assert!(stored.ends_with(&records), "{stored:?}"),
        None => assert!(records.is_empty()),
        Some(other) => panic!("_ignored is {other}"),
    }
    normalized
        .ignored
        .iter()
        .map(|i| (i.key.as_str(), i.value.clone(), i.reason.as_str()))
        .collect()
}

fn keyword(text: &str) -> TypedValue {
    TypedValue::Keyword(text.to_owned())
}

const DUPLICATE: &str = "duplicate key: the first value in document order is kept";

#[test]
fn aliases_are_stored_under_their_key() {
    let n = run(r#"{"user_id": "u1", "msg": "hello", "severity": "WARN", "k8s_namespace": "pay"}"#);
    assert_eq!(
        stored(&n),
        json!({"userId": "u1", "message": "hello", "level": "WARN", "kubernetes": {"namespace": "pay"}})
    );
    assert_eq!(
        indexed(&n),
        [
            ("userId", keyword("u1")),
            ("message", TypedValue::Text("hello".to_owned())),
            ("level", keyword("WARN")),
            ("kubernetes.namespace", keyword("pay")),
            ("@timestamp", TypedValue::Date(INGEST_TIME_MS)),
        ]
    );
    assert_eq!(n.renamed_keys, 4);
    assert_eq!(n.coerced_values, 0);
    assert!(n.unknown_keys.is_empty() && n.ignored.is_empty());
}

#[test]
fn dotted_and_nested_keys_are_the_same_key() {
    let dotted = run(r#"{"http.status": 200, "http.method": "GET"}"#);
    let nested = run(r#"{"http": {"status": 200, "method": "GET"}}"#);
    let mixed = run(r#"{"http": {"status": 200}, "http.method": "GET"}"#);
    let expected = json!({"http": {"status": 200, "method": "GET"}});
    assert_eq!(stored(&dotted), expected);
    assert_eq!(dotted.source, nested.source);
    assert_eq!(dotted.source, mixed.source);
    assert_eq!(indexed(&dotted), indexed(&nested));

    // Members of unknown objects are resolved too: `log: {level}` is the alias `log.level`.
    let n = run(r#"{"log": {"level": "warn"}}"#);
    assert_eq!(stored(&n), json!({"level": "WARN"}));
    assert!(n.unknown_keys.is_empty());
    assert_eq!(n.renamed_keys, 1);
}

#[test]
fn map_free_keys_keep_their_key_and_take_the_value_type() {
    let n = run(r#"{"labels.team": "core", "labels": {"tier": 1}, "counters": {"hits": "12"}}"#);
    assert_eq!(
        stored(&n),
        json!({"labels": {"team": "core", "tier": "1"}, "counters": {"hits": 12}})
    );
    assert_eq!(
        indexed(&n)[..3],
        [
            ("labels.team", keyword("core")),
            ("labels.tier", keyword("1")),
            ("counters.hits", TypedValue::Long(12)),
        ]
    );
    assert_eq!(n.coerced_values, 2);

    // Free keys may have dots; nested or dotted, they are the same key.
    let dotted = run(r#"{"labels.a.b": "x"}"#);
    let nested = run(r#"{"labels": {"a": {"b": "x"}}}"#);
    assert_eq!(stored(&dotted), json!({"labels": {"a": {"b": "x"}}}));
    assert_eq!(dotted.source, nested.source);
    assert_eq!(indexed(&nested)[0], ("labels.a.b", keyword("x")));

    let n = run(r#"{"counters": {"hits": "many"}}"#);
    assert_eq!(
        ignored(&n),
        [(
            "counters.hits",
            json!("many"),
            "expected long, got a string that is not an integer"
        )]
    );
}

#[test]
fn struct_keys_keep_members_as_sent_and_are_never_indexed() {
    let n =
        run(r#"{"context": {"a": {"b": 1}, "c.d": [true]}, "context.e.f": "x", "ctx.g": null}"#);
    assert_eq!(
        stored(&n),
        json!({"context": {"a": {"b": 1}, "c.d": [true], "e.f": "x", "g": null}})
    );
    assert_eq!(
        indexed(&n),
        [("@timestamp", TypedValue::Date(INGEST_TIME_MS))]
    );
    assert!(n.unknown_keys.is_empty());

    let n = run(r#"{"context": "not an object", "ctx": {"a": 1}, "context.a": 2}"#);
    assert_eq!(stored(&n), json!({"context": {"a": 1}}));
    assert_eq!(
        ignored(&n),
        [
            (
                "context",
                json!("not an object"),
                "expected an object (`context` is a struct), got a string"
            ),
            ("context.a", json!(2), DUPLICATE),
        ]
    );
}

#[test]
fn object_keys_hold_keys_and_refuse_scalars() {
    let n = run(r#"{"http": 404, "kubernetes": {}, "http.method": "GET"}"#);
    assert_eq!(
        stored(&n),
        json!({"kubernetes": {}, "http": {"method": "GET"}})
    );
    assert_eq!(
        ignored(&n),
        [(
            "http",
            json!(404),
            "expected an object (`http` holds keys), got a number"
        )]
    );
    let n = run(r#"{"http": null}"#);
    assert_eq!(stored(&n), json!({"http": null}));
}

#[test]
fn arrays_of_objects_are_normalised_element_by_element() {
    let n = run(
        r#"{"calls": [{"name": "db", "took_ms": "5", "extra": 1}, {}, null, 3,
                      {"name": 7, "level": "info"}]}"#,
    );
    assert_eq!(
        stored(&n),
        json!({
            "calls": [{"name": "db", "took_ms": 5, "extra": 1}, {}, null, {"name": "7"}],
            "level": "INFO",
        })
    );
    assert_eq!(
        indexed(&n)[..4],
        [
            ("calls.name", keyword("db")),
            ("calls.took_ms", TypedValue::Long(5)),
            ("calls.name", keyword("7")),
            ("level", keyword("INFO")),
        ]
    );
    assert_eq!(n.unknown_keys, ["calls.extra"]);
    assert_eq!(
        ignored(&n),
        [(
            "calls",
            json!(3),
            "expected an object (`calls` holds keys), got a number in an array"
        )]
    );

    // The key already holds an object: the array is ignored whole, nothing of it indexed.
    let n = run(r#"{"calls.name": "x", "http.method": "GET", "http": [{"status": 1}]}"#);
    assert_eq!(
        stored(&n),
        json!({"calls": {"name": "x"}, "http": {"method": "GET"}})
    );
    assert_eq!(ignored(&n), [("http", json!([{"status": 1}]), DUPLICATE)]);
    assert!(!n.indexed.iter().any(|entry| entry.key == "http.status"));
    // A repeated key appends the array to what is there.
    let n = run(r#"{"calls.name": "x", "calls": [{"name": "y"}]}"#);
    assert_eq!(stored(&n), json!({"calls": [{"name": "x"}, {"name": "y"}]}));

    // A non-repeated object takes an array too, as in Elasticsearch.
    let n = run(r#"{"http": [{"status": 200}, {"status": "x"}]}"#);
    assert_eq!(stored(&n), json!({"http": [{"status": 200}, {}]}));
    assert_eq!(ignored(&n)[0].0, "http.status");
}

#[test]
fn a_key_sent_twice_keeps_the_first_value_unless_repeated() {
    let n = run(r#"{"http.status": 200, "http": {"status": 201}}"#);
    assert_eq!(stored(&n), json!({"http": {"status": 200}}));
    assert_eq!(ignored(&n), [("http.status", json!(201), DUPLICATE)]);
    assert_eq!(n.ignored[0].kind, IgnoredKind::Duplicate);
    assert_eq!(indexed(&n)[0], ("http.status", TypedValue::Long(200)));
    assert_eq!(n.indexed.len(), 2);

    // A key and its alias; the same name twice in one object (the later value as coerced).
    let n = run(r#"{"userId": "a", "user_id": "b", "count": 1, "count": "2"}"#);
    assert_eq!(stored(&n), json!({"userId": "a", "count": 1}));
    assert_eq!(
        ignored(&n),
        [
            ("userId", json!("b"), DUPLICATE),
            ("count", json!(2), DUPLICATE)
        ]
    );

    // A repeated key keeps every value in document order.
    let n = run(r#"{"tags": "a", "tags": ["b", 3], "tags": []}"#);
    assert_eq!(stored(&n), json!({"tags": ["a", "b", "3"]}));
    assert_eq!(
        indexed(&n)[..3],
        [
            ("tags", keyword("a")),
            ("tags", keyword("b")),
            ("tags", keyword("3"))
        ]
    );

    // A prefix already holding a value.
    let n = run(r#"{"labels.a": "x", "labels.a.b": "y"}"#);
    assert_eq!(stored(&n), json!({"labels": {"a": "x"}}));
    assert_eq!(
        ignored(&n),
        [(
            "labels.a.b",
            json!("y"),
            "conflicting key: `labels.a` already holds a value that is not an object"
        )]
    );
}

#[test]
fn values_are_coerced_when_lossless() {
    let n = run(
        r#"{"count": "123", "userId": 123, "ok": "true", "ratio": "1.5",
            "started": 1795341600123, "message": false, "http.status": 404.0}"#,
    );
    assert_eq!(
        stored(&n),
        json!({
            "count": 123, "userId": "123", "ok": true, "ratio": 1.5,
            "started": "2026-11-22T10:00:00.123Z", "message": "false", "http": {"status": 404},
        })
    );
    assert_eq!(n.coerced_values, 7);
    assert_eq!(
        indexed(&n)[..7],
        [
            ("count", TypedValue::Long(123)),
            ("userId", keyword("123")),
            ("ok", TypedValue::Boolean(true)),
            ("ratio", TypedValue::Double(1.5)),
            ("started", TypedValue::Date(1_795_341_600_123)),
            ("message", TypedValue::Text("false".to_owned())),
            ("http.status", TypedValue::Long(404)),
        ]
    );
    let n = run(r#"{"count": 5, "ratio": 2, "ok": false}"#);
    assert_eq!(n.coerced_values, 0);
    assert_eq!(stored(&n), json!({"count": 5, "ratio": 2, "ok": false}));
}

#[test]
fn uncoercible_values_are_moved_to_ignored_and_the_rest_is_stored() {
    let n = run(r#"{"count": "12abc", "ok": "yes", "ratio": {"x": 1}, "userId": "u"}"#);
    assert_eq!(stored(&n), json!({"userId": "u"}));
    assert_eq!(
        ignored(&n),
        [
            (
                "count",
                json!("12abc"),
                "expected long, got a string that is not an integer"
            ),
            (
                "ok",
                json!("yes"),
                "expected boolean, got a string other than \"true\" or \"false\""
            ),
            ("ratio", json!({"x": 1}), "expected double, got an object"),
        ]
    );
    assert!(n.ignored.iter().all(|i| i.kind == IgnoredKind::Malformed));
    assert_eq!(
        n.source.to_map()["_ignored"][0],
        json!({"key": "count", "value": "12abc", "reason": "expected long, got a string that is not an integer"})
    );
}

/// The seed's conflict: one team logs `userId` as "123", then 123, then "abc" in one batch.
/// Elasticsearch's dynamic mapping rejected the whole batch; here every line is stored.
#[test]
fn the_seed_conflict_stores_every_line() {
    let batch = [
        r#"{"userId": "123"}"#,
        r#"{"userId": 123}"#,
        r#"{"userId": "abc"}"#,
    ];
    // `userId` is a keyword: all three fit, the number as its text.
    let stored_ids: Vec<Value> = batch
        .iter()
        .map(|line| run(line).source.to_map()["userId"].clone())
        .collect();
    assert_eq!(stored_ids, [json!("123"), json!("123"), json!("abc")]);
    assert_eq!(run(batch[1]).coerced_values, 1);

    // For a long key ("count" here), "abc" is the one that cannot be coerced.
    let results: Vec<Normalized> = [
        r#"{"count": "123"}"#,
        r#"{"count": 123}"#,
        r#"{"count": "abc"}"#,
    ]
    .iter()
    .map(|line| run(line))
    .collect();
    assert_eq!(results[0].source.to_map()["count"], json!(123));
    assert_eq!(results[1].source.to_map()["count"], json!(123));
    assert!(!results[2].source.contains_key("count"));
    assert_eq!(
        ignored(&results[2]),
        [(
            "count",
            json!("abc"),
            "expected long, got a string that is not an integer"
        )]
    );
    assert_eq!(indexed(&results[0])[0], ("count", TypedValue::Long(123)));
}

#[test]
fn enums_take_declared_values_in_any_case() {
    let n = run(r#"{"level": "error"}"#);
    assert_eq!(stored(&n), json!({"level": "ERROR"}));
    assert_eq!(n.coerced_values, 1);
    let n = run(r#"{"level": "verbose"}"#);
    assert_eq!(
        ignored(&n),
        [(
            "level",
            json!("verbose"),
            "expected one of DEBUG, INFO, WARN, ERROR (any case)"
        )]
    );
    assert_eq!(n.ignored[0].kind, IgnoredKind::NotAllowed);
}

#[test]
fn keywords_above_ignore_above_are_stored_not_indexed() {
    // `labels` has ignore_above: 8 characters (not bytes).
    let n = run(r#"{"labels": {"long": "123456789", "short": "12345678", "wide": "éééééééé"}}"#);
    assert_eq!(
        stored(&n),
        json!({"labels": {"long": "123456789", "short": "12345678", "wide": "éééééééé"}})
    );
    assert_eq!(n.ignored_above, ["labels.long"]);
    assert_eq!(
        indexed(&n)[..2],
        [
            ("labels.short", keyword("12345678")),
            ("labels.wide", keyword("éééééééé"))
        ]
    );
    assert!(n.ignored.is_empty());
}

#[test]
fn keys_not_indexed_and_binary_are_stored_only() {
    let n = run(r#"{"secret": 42, "blob": "aGVsbG8=", "userId": null}"#);
    assert_eq!(
        stored(&n),
        json!({"secret": "42", "blob": "aGVsbG8=", "userId": null})
    );
    assert_eq!(
        indexed(&n),
        [("@timestamp", TypedValue::Date(INGEST_TIME_MS))]
    );
    let n = run(r#"{"blob": "not base64!"}"#);
    assert_eq!(
        ignored(&n)[0].2,
        "expected binary, got a string that is not base64"
    );
}

#[test]
fn arrays_are_accepted_for_every_value_key() {
    let n = run(r#"{"userId": ["a", 1, {"x": 1}, [2], null], "count": ["x"]}"#);
    assert_eq!(stored(&n), json!({"userId": ["a", "1", null]}));
    assert_eq!(
        indexed(&n)[..2],
        [("userId", keyword("a")), ("userId", keyword("1"))]
    );
    assert_eq!(
        ignored(&n),
        [
            ("userId", json!({"x": 1}), "expected keyword, got an object"),
            (
                "userId",
                json!([2]),
                "expected keyword, got an array inside an array"
            ),
            (
                "count",
                json!("x"),
                "expected long, got a string that is not an integer"
            ),
        ]
    );
    let n = run(r#"{"count": []}"#);
    assert_eq!(stored(&n), json!({"count": []}));
}

#[test]
fn unknown_keys_are_stored_as_sent_and_listed() {
    let n = run(
        r#"{"team": "core", "foo.bar": 1, "http.route": "/x", "_id": "abc",
            "nested": {"a": {"b": [1, {"c": 2}]}, "userId": "u"}, "empty": {},
            "http": {"extra": {"deep": true}}}"#,
    );
    assert_eq!(
        stored(&n),
        json!({
            "team": "core", "foo.bar": 1, "_id": "abc",
            "http": {"route": "/x", "extra": {"deep": true}},
            "nested": {"a": {"b": [1, {"c": 2}]}, "userId": "u"},
            "empty": {},
        })
    );
    assert_eq!(
        n.unknown_keys,
        [
            "_id",
            "foo.bar",
            "http.extra.deep",
            "http.route",
            "nested.a.b",
            "nested.userId",
            "team"
        ]
    );
    assert_eq!(
        indexed(&n),
        [("@timestamp", TypedValue::Date(INGEST_TIME_MS))]
    );

    // The same unknown key twice: the first is kept, listed once.
    let n = run(r#"{"foo": {"a": 1}, "foo": {"a": 2}, "bar": {"x": 1, "x": 2}}"#);
    assert_eq!(stored(&n), json!({"foo": {"a": 1}, "bar": {"x": 1}}));
    assert_eq!(n.unknown_keys, ["bar.x", "foo.a"]);
    assert_eq!(
        ignored(&n),
        [
            ("foo.a", json!(2), DUPLICATE),
            ("bar.x", json!(2), DUPLICATE)
        ]
    );
    // Inside a value stored whole, duplicates are found too.
    let n = run(r#"{"items": [{"x": 1, "x": 2}]}"#);
    assert_eq!(stored(&n), json!({"items": [{"x": 1}]}));
    assert_eq!(ignored(&n), [("items.x", json!(2), DUPLICATE)]);
}

#[test]
fn ignored_is_reserved_and_its_records_are_carried_over() {
    let record = json!({"key": "count", "value": "abc", "reason": "earlier"});
    let document = json!({"_ignored": [record.clone(), {"key": 1}, "x"], "count": "bad"});
    let n = run(&document.to_string());
    let reserved = "`_ignored` is reserved for the values Caravan could not store under their \
                    key: it holds records of {key, value, reason}";
    assert_eq!(
        ignored(&n),
        [
            ("_ignored", json!({"key": 1}), reserved),
            ("_ignored", json!("x"), reserved),
            (
                "count",
                json!("bad"),
                "expected long, got a string that is not an integer"
            ),
        ]
    );
    assert_eq!(n.source.to_map()["_ignored"][0], record);
    assert_eq!(
        n.source.to_map()["_ignored"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(n.ignored[0].kind, IgnoredKind::Reserved);

    let n = run(r#"{"_ignored": {"not": "a list"}}"#);
    assert_eq!(
        ignored(&n),
        [("_ignored", json!({"not": "a list"}), reserved)]
    );
    // Only at the root.
    let n = run(r#"{"foo": {"_ignored": 1}}"#);
    assert_eq!(stored(&n), json!({"foo": {"_ignored": 1}}));
}

#[test]
fn timestamp_is_parsed_normalised_or_the_ingest_time() {
    let n = run(r#"{"@timestamp": "2026-11-22T12:00:00.5+02:00"}"#);
    assert_eq!(n.source.to_map()["@timestamp"], "2026-11-22T10:00:00.500Z");
    assert_eq!(n.timestamp_ms, INGEST_TIME_MS + 500);
    assert!(!n.timestamp_defaulted);
    assert_eq!(n.coerced_values, 1);
    assert_eq!(
        indexed(&n),
        [("@timestamp", TypedValue::Date(INGEST_TIME_MS + 500))]
    );

    let n = run(r#"{"message": "no date"}"#);
    assert_eq!(n.source.to_map()["@timestamp"], INGEST_TIME);
    assert_eq!(n.timestamp_ms, INGEST_TIME_MS);
    assert!(n.timestamp_defaulted);
    assert!(n.ignored.is_empty());

    for (value, reason) in [
        (
            json!("yesterday"),
            "expected date, got a string that is not an RFC 3339 date (like 2026-11-22T10:00:00.123Z) nor epoch milliseconds",
        ),
        (json!(null), "expected date, got null"),
        (json!(["2026-11-22"]), "expected one date, got an array"),
        (json!(true), "expected date, got a boolean"),
    ] {
        let n = run(&json!({"@timestamp": value}).to_string());
        assert_eq!(n.timestamp_ms, INGEST_TIME_MS);
        assert!(n.timestamp_defaulted);
        assert_eq!(ignored(&n), [("@timestamp", value, reason)]);
    }

    // An alias from the dictionary; the first valid date wins.
    let n = run(r#"{"ts": 1795341600123, "@timestamp": "2026-01-01"}"#);
    assert_eq!(n.timestamp_ms, INGEST_TIME_MS + 123);
    assert_eq!(
        ignored(&n),
        [("@timestamp", json!("2026-01-01T00:00:00.000Z"), DUPLICATE)]
    );
    let n = run(r#"{"ts": "bad", "@timestamp": "2026-01-01"}"#);
    assert_eq!(n.source.to_map()["@timestamp"], "2026-01-01T00:00:00.000Z");
    assert_eq!(ignored(&n).len(), 1);
    // Not at the root, it is an ordinary unknown key.
    let n = run(r#"{"foo": {"@timestamp": "x"}}"#);
    assert_eq!(n.unknown_keys, ["foo.@timestamp"]);
}

#[test]
fn without_a_dictionary_everything_is_unknown_but_the_timestamp() {
    let document = r#"{"@timestamp": 1795341600123, "user_id": 1, "http": {"status": "x"}}"#;
    let n = normalize(document.as_bytes(), None, 0, &Limits::default()).unwrap();
    assert_eq!(
        Value::Object(n.source.to_map()),
        json!({"@timestamp": "2026-11-22T10:00:00.123Z", "user_id": 1, "http": {"status": "x"}})
    );
    assert_eq!(n.timestamp_ms, INGEST_TIME_MS + 123);
    assert!(n.indexed.is_empty());
    assert_eq!(n.unknown_keys, ["http.status", "user_id"]);
    let n = normalize(
        br#"{"@timestamp": "x"}"#,
        None,
        INGEST_TIME_MS,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(n.source.to_map()["@timestamp"], INGEST_TIME);
    assert_eq!(n.ignored.len(), 1);
}

#[test]
fn limits_refuse_the_document_with_the_limit_and_the_path() {
    let limits = Limits {
        document_bytes_max: 64,
        depth_max: 3,
        keys_max: 4,
    };
    let run = |document: &str| normalize(document.as_bytes(), Some(&DICTIONARY), 0, &limits);
    assert_eq!(
        run(&format!(r#"{{"message": "{}"}}"#, "x".repeat(60))),
        Err(DocumentError::TooLarge {
            bytes: 75,
            bytes_max: 64
        })
    );
    assert_eq!(
        run(r#"{"a": {"b": {"c": {"d": 1}}}}"#),
        Err(DocumentError::TooDeep {
            path: "a.b.c.d".to_owned(),
            depth: 4,
            depth_max: 3
        })
    );
    assert_eq!(
        run(r#"{"a": 1, "b": {"c": 1, "d": 1}, "e": 1}"#),
        Err(DocumentError::TooManyKeys {
            path: "e".to_owned(),
            keys_max: 4
        })
    );
    assert!(run(r#"{"a": 1, "b": {"c": 1, "d": 1}}"#).is_ok());
    assert!(matches!(
        run("{"),
        Err(DocumentError::NotJson {
            line: 1,
            column: 1,
            ..
        })
    ));
    assert_eq!(
        run("[]"),
        Err(DocumentError::NotAnObject { found: "an array" })
    );
}

#[test]
fn parsed_values_normalise_like_bytes() {
    let document = r#"{"user_id": 5, "http": {"status": "200"}, "labels": {"x": "y"}, "foo": [1]}"#;
    let value: Value = serde_json::from_str(document).unwrap();
    let from_value = normalize_value(
        &value,
        Some(&DICTIONARY),
        INGEST_TIME_MS,
        &Limits::default(),
    )
    .unwrap();
    let from_bytes = run(document);
    assert_eq!(from_value.source, from_bytes.source);
    // A `Value` has sorted its keys, so values are met in another order.
    let sorted = |n: &Normalized| {
        let mut entries = indexed(n)
            .into_iter()
            .map(|(key, value)| format!("{key} {value:?}"))
            .collect::<Vec<_>>();
        entries.sort();
        entries
    };
    assert_eq!(sorted(&from_value), sorted(&from_bytes));
    assert!(matches!(
        normalize_value(&json!([1]), None, 0, &Limits::default()),
        Err(DocumentError::NotAnObject { .. })
    ));
}

#[test]
fn write_source_gives_the_stored_bytes() {
    let n = run(r#"{"count": "1"}"#);
    let mut bytes = b"prefix:".to_vec();
    n.write_source(&mut bytes);
    let written: Value = serde_json::from_slice(&bytes[7..]).unwrap();
    assert_eq!(written, Value::Object(n.source.into_map()));
}

#[test]
fn ingest_time_outside_the_calendar_is_clamped() {
    let n = normalize(b"{}", None, i64::MAX, &Limits::default()).unwrap();
    assert_eq!(n.source.to_map()["@timestamp"], "9999-12-31T23:59:59.999Z");
}
