//! Property tests of the guarantees in the crate docs, on generated documents that mix the
//! test schema's keys, aliases, dotted and nested forms, unknown keys, duplicates, `_ignored`
//! records and values of every type, coercible or not.
//!
//! - never panics, on generated documents and on arbitrary bytes;
//! - loses nothing: the stored document and the `_ignored` records hold as many scalars as the
//!   input (less the `@timestamp` added and the key and reason of each new record), and each
//!   input scalar has an equivalent there (the same, or the same once coerced);
//! - idempotent: normalising the stored document again (other ingest time, limits that admit
//!   it) gives the same source, timestamp, unknown keys, keys above `ignore_above` and indexed
//!   values (as a multiset: a nested form is met in another order than a dotted one), and
//!   ignores, coerces and renames nothing;
//! - deterministic.

use proptest::prelude::*;
use serde_json::{Number, Value};

use super::{DICTIONARY, INGEST_TIME_MS};
use crate::timestamp;
use crate::{DEPTH_MAX_CEILING, Limits, Normalized, normalize};

/// A JSON document that can have duplicate keys, which `serde_json::Value` cannot.
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Big(u64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn render(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(value) => out.push_str(&value.to_string()),
            Json::Int(value) => out.push_str(&value.to_string()),
            Json::Big(value) => out.push_str(&value.to_string()),
            Json::Float(value) => match Number::from_f64(*value) {
                Some(number) => out.push_str(&number.to_string()),
                None => out.push_str("null"),
            },
            Json::Str(text) => out.push_str(&Value::String(text.clone()).to_string()),
            Json::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (index, (name, value)) in members.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(name.clone()).to_string());
                    out.push(':');
                    value.render(out);
                }
                out.push('}');
            }
        }
    }

    /// The scalars, as `serde_json` values.
    fn scalars(&self, out: &mut Vec<Value>) {
        match self {
            Json::Array(items) => items.iter().for_each(|item| item.scalars(out)),
            Json::Object(members) => members.iter().for_each(|(_, value)| value.scalars(out)),
            scalar => {
                let mut text = String::new();
                scalar.render(&mut text);
                out.push(serde_json::from_str(&text).unwrap_or(Value::Null));
            }
        }
    }
}

fn scalars_of(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| scalars_of(item, out)),
        Value::Object(map) => map.values().for_each(|value| scalars_of(value, out)),
        scalar => out.push(scalar.clone()),
    }
}

const NAMES: &[&str] = &[
    "@timestamp",
    "ts",
    "level",
    "severity",
    "log",
    "log.level",
    "message",
    "msg",
    "userId",
    "user_id",
    "user-id",
    "http",
    "http.status",
    "http.method",
    "http.route",
    "status",
    "status_code",
    "method",
    "count",
    "ratio",
    "ok",
    "started",
    "blob",
    "tags",
    "labels",
    "labels.team",
    "labels.a.b",
    "team",
    "a",
    "context",
    "ctx",
    "context.a",
    "calls",
    "calls.name",
    "calls.level",
    "name",
    "took_ms",
    "secret",
    "counters",
    "counters.hits",
    "hits",
    "kubernetes",
    "kubernetes.namespace",
    "k8s_namespace",
    "namespace",
    "_ignored",
    "_id",
    "foo",
    "foo.bar",
    "",
    ".",
];

const STRINGS: &[&str] = &[
    "123",
    "-5",
    "1.5",
    "12.0",
    "12abc",
    "abc",
    "true",
    "false",
    "error",
    "INFO",
    "verbose",
    "2026-11-22T10:00:00Z",
    "2026-11-22 12:00:00.5+02:00",
    "2026-11-22T10:00:00.123456Z",
    "1795341600123",
    "9007199254740993",
    "aGk=",
    "123456789",
    "éééééééé",
    "",
    "null",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => "[a-z_@.]{0,6}",
    ]
}

fn scalar() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        prop_oneof![
            Just(0_i64),
            Just(123),
            Just(-5),
            Just(1_795_341_600_123),
            Just(9_007_199_254_740_993),
            any::<i64>(),
        ]
        .prop_map(Json::Int),
        Just(Json::Big(u64::MAX)),
        prop_oneof![
            Just(12.0),
            Just(1.5),
            Just(1e300),
            Just(1_795_341_600_123.0),
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
        ]
        .prop_map(Json::Float),
        prop_oneof![
            3 => prop::sample::select(STRINGS).prop_map(str::to_owned),
            1 => "\\PC{0,10}",
        ]
        .prop_map(Json::Str),
    ]
}

fn value() -> impl Strategy<Value = Json> {
    scalar().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((name(), inner), 0..5).prop_map(Json::Object),
        ]
    })
}

/// A well-formed `_ignored` record, in any member order.
fn record() -> impl Strategy<Value = Json> {
    (name(), value(), "[a-z ]{0,8}", any::<bool>()).prop_map(|(key, value, reason, swap)| {
        let mut members = vec![
            ("key".to_owned(), Json::Str(key)),
            ("value".to_owned(), value),
            ("reason".to_owned(), Json::Str(reason)),
        ];
        if swap {
            members.reverse();
        }
        Json::Object(members)
    })
}

fn document() -> impl Strategy<Value = Json> {
    let member = prop_oneof![
        6 => (name(), value()),
        1 => prop::collection::vec(prop_oneof![record(), value()], 0..3)
            .prop_map(|items| ("_ignored".to_owned(), Json::Array(items))),
    ];
    prop::collection::vec(member, 0..10).prop_map(Json::Object)
}

fn run(document: &[u8], ingest_time_ms: i64, limits: &Limits) -> Option<Normalized> {
    normalize(document, Some(&DICTIONARY), ingest_time_ms, limits).ok()
}

fn generous() -> Limits {
    Limits {
        document_bytes_max: usize::MAX,
        depth_max: DEPTH_MAX_CEILING,
        keys_max: usize::MAX,
    }
}

/// Whether `output` can be `input` as stored: the same, or coerced.
fn equivalent(input: &Value, output: &Value) -> bool {
    if input == output {
        return true;
    }
    let text = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    };
    let (Some(input), Some(output)) = (text(input), text(output)) else {
        return false;
    };
    if input.eq_ignore_ascii_case(&output) {
        return true;
    }
    if matches!((input.parse::<f64>(), output.parse::<f64>()), (Ok(a), Ok(b)) if a == b) {
        return true;
    }
    let instant = |text: &str| {
        timestamp::parse(text).ok().or_else(|| {
            let number = text.parse::<f64>().ok()?;
            (number.fract() == 0.0 && number.abs() < 1e16)
                .then(|| timestamp::Instant::from_millis(number as i64))
                .flatten()
        })
    };
    matches!((instant(&input), instant(&output)), (Some(a), Some(b)) if a == b)
}

fn sorted_indexed(normalized: &Normalized) -> Vec<String> {
    let mut entries: Vec<String> = normalized
        .indexed
        .iter()
        .map(|entry| format!("{} {:?}", entry.key, entry.value))
        .collect();
    entries.sort();
    entries
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = normalize(&bytes, Some(&DICTIONARY), 0, &Limits::default());
        let _ = normalize(&bytes, None, 0, &Limits::default());
    }

    #[test]
    fn loses_nothing(document in document()) {
        let mut text = String::new();
        document.render(&mut text);
        let Some(normalized) = run(text.as_bytes(), INGEST_TIME_MS, &Limits::default()) else {
            return Ok(());
        };
        let mut input = Vec::new();
        document.scalars(&mut input);
        let mut output = Vec::new();
        scalars_of(&Value::Object(normalized.source.to_map()), &mut output);
        let added = usize::from(normalized.timestamp_defaulted) + 2 * normalized.ignored.len();
        prop_assert_eq!(output.len(), input.len() + added, "{}\n{:#?}", text, normalized);
        for scalar in &input {
            prop_assert!(
                output.iter().any(|stored| equivalent(scalar, stored)),
                "{} lost\n{}\n{:#?}", scalar, text, normalized
            );
        }
    }

    #[test]
    fn is_idempotent(document in document()) {
        let mut text = String::new();
        document.render(&mut text);
        let Some(first) = run(text.as_bytes(), INGEST_TIME_MS, &Limits::default()) else {
            return Ok(());
        };
        let mut stored = Vec::new();
        first.write_source(&mut stored);
        let second = run(&stored, 0, &generous());
        prop_assert!(second.is_some(), "refused: {}", String::from_utf8_lossy(&stored));
        let Some(second) = second else { return Ok(()) };
        let context = format!("{text}\n{}", String::from_utf8_lossy(&stored));
        prop_assert_eq!(&second.source, &first.source, "{}", context);
        prop_assert_eq!(second.timestamp_ms, first.timestamp_ms);
        prop_assert_eq!(&second.unknown_keys, &first.unknown_keys, "{}", context);
        prop_assert!(second.ignored.is_empty(), "{}\n{:#?}", context, second.ignored);
        prop_assert_eq!(second.coerced_values, 0, "{}", context);
        prop_assert_eq!(second.renamed_keys, 0, "{}", context);
        prop_assert_eq!(sorted_indexed(&second), sorted_indexed(&first), "{}", context);
        let mut above = (first.ignored_above.clone(), second.ignored_above.clone());
        above.0.sort();
        above.1.sort();
        prop_assert_eq!(above.0, above.1, "{}", context);
    }

    #[test]
    fn is_deterministic(document in document()) {
        let mut text = String::new();
        document.render(&mut text);
        let first = normalize(text.as_bytes(), Some(&DICTIONARY), 7, &Limits::default());
        let second = normalize(text.as_bytes(), Some(&DICTIONARY), 7, &Limits::default());
        prop_assert_eq!(first, second);
    }
}
