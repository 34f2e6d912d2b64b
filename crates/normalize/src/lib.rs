//! Caravan's log normaliser: one JSON document (a line of a `_bulk` request) and the tenant's
//! field [`Dictionary`] in, the document to store and the typed values to index out.
//!
//! The crate is pure: no I/O, no clock (the ingest time is a parameter), no randomness, no
//! global state, so the same input always gives the same output. It parses each document
//! once, walks it once, and allocates little beyond the output.
//!
//! ```
//! use caravan_normalize::{Limits, TypedValue, normalize};
//! use caravan_schema::{CompileOptions, compile_files};
//!
//! let schema = r#"
//!     syntax = "proto3";
//!     import "caravan/options.proto";
//!     message LogSchema {
//!       string userId = 1 [(caravan.field) = { aliases: ["user_id"] }];
//!       Http http = 2;
//!     }
//!     message Http { int32 status = 1; }
//! "#;
//! let dictionary = compile_files([("log_schema.proto", schema)], &CompileOptions::default())?;
//! let document = br#"{"user_id": 123, "http.status": "abc", "team": "payments"}"#;
//! let ingest_time_ms = 1_795_341_600_000; // 2026-11-22T10:00:00Z
//! let normalized = normalize(document, Some(&dictionary), ingest_time_ms, &Limits::default())?;
//!
//! assert_eq!(
//!     serde_json::Value::Object(normalized.source.to_map()),
//!     serde_json::json!({
//!         "userId": "123",
//!         "team": "payments",
//!         "@timestamp": "2026-11-22T10:00:00.000Z",
//!         "_ignored": [{"key": "http.status", "value": "abc",
//!                       "reason": "expected long, got a string that is not an integer"}],
//!     })
//! );
//! assert_eq!(normalized.indexed[0].value, TypedValue::Keyword("123".to_owned()));
//! assert_eq!(normalized.unknown_keys, ["team"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What refuses a document
//!
//! Only the [`Limits`] and broken JSON ([`DocumentError`]): the size is checked before
//! parsing, depth and key counts while parsing, each error naming the limit and the key path
//! (`a.b[2].c`). Nothing about the values refuses a document: a value that does not fit is
//! moved to `_ignored` and the rest is stored (Elasticsearch's `ignore_malformed`, for every
//! type). So a batch never fails because one line changed a type (the seed's `userId` as
//! `"123"`, then `123`, then `"abc"` for a long: all three stored).
//!
//! # Rules
//!
//! Keys:
//!
//! - **Resolution.** Each key is resolved with `Dictionary::resolve` (what `lookup` uses: O(1)
//!   for keys and aliases). An alias is stored under its key (`user_id` -> `userId`), a map
//!   free key under itself (`labels.team`, with the map's value type).
//! - **Dotted and nested are the same key.** `{"http.status": 200}` and
//!   `{"http": {"status": 200}}` are both stored as `{"http": {"status": 200}}`. Members of
//!   unknown objects are resolved too, so `{"log": {"level": "warn"}}` reaches the alias
//!   `log.level`.
//! - **Containers.** An `object` or `map` key takes an object (its members are keys under it),
//!   null, or an array of objects (each normalised as an element of its own, as
//!   Elasticsearch flattens arrays of objects; keys outside the array's key go to the root).
//!   A free key holding an object extends the free key (`labels: {a: {b: "x"}}` is
//!   `labels.a.b`). Anything else sent for a container is ignored.
//! - **Structs** (`google.protobuf.Struct`) keep their members as sent, whole, never indexed;
//!   `context.a.b` is the member `a.b` of `context`. A scalar is ignored.
//! - **Unknown keys** are stored as sent, never indexed, and listed in
//!   [`Normalized::unknown_keys`] (dotted, sorted, distinct). An unknown dotted name is stored
//!   under its longest prefix that is a known object (`http.route` as `route` in `http`) and
//!   as sent otherwise (`foo.bar` stays one key). Objects under unknown keys are entered, so
//!   the unknown keys listed are those holding something other than an object.
//! - **Duplicates.** A key sent twice in one document (dotted and nested, an alias and its
//!   key, or the same name twice in one object): a `repeated` key keeps every value, as an
//!   array in document order; any other key keeps the first value and moves the later ones to
//!   `_ignored` (reason `duplicate key`). Storing a key under a prefix that already holds a
//!   value (`labels.a` then `labels.a.b`) is a conflict, ignored the same way.
//! - **`_`-prefixed keys.** `_ignored` at the root is reserved: well-formed records
//!   (`{key, value, reason}`) sent in it are carried over to the stored `_ignored`, anything
//!   else in it is itself ignored (kind `reserved`). Other `_` keys (`_id`, `_index`, ...),
//!   which Elasticsearch refuses, are unknown keys here: stored, not indexed. The schema
//!   cannot define `_` keys.
//!
//! Values, for keys with a value type (lossless coercions only, counted in
//! [`Normalized::coerced_values`]; anything else is ignored with the expected type and what
//! came instead):
//!
//! - **long**: integers in the i64 range; strings of one (`"123"`, `"-5"`, not `"1.5"`,
//!   `"12abc"`, `" 1"`); numbers written with a zero fraction (`12.0`) within ±2^53.
//! - **double**: numbers (integers within ±2^53, which a double holds exactly; they stay as
//!   sent) and strings of a finite number (`"1.5"` -> `1.5`).
//! - **keyword / text**: strings; numbers as their JSON text (`123` -> `"123"`, `1.5` ->
//!   `"1.5"`); booleans (`"true"`). **Enums** take their declared values in any ASCII case,
//!   stored as declared (`"error"` -> `"ERROR"`); others are ignored, the reason listing the
//!   values (kind `not_allowed`). A keyword longer than `ignore_above` characters is stored
//!   but not indexed, as in Elasticsearch: not an `_ignored` record, but its key is listed in
//!   [`Normalized::ignored_above`].
//! - **boolean**: `true`, `false`, `"true"`, `"false"`. Not `"1"`/`"0"`, `1`/`0`, `"TRUE"`:
//!   whether those are booleans depends on who wrote them.
//! - **date**: RFC 3339 / ISO 8601 strings (fraction and zone optional, `T` or a space;
//!   without a zone, UTC), epoch milliseconds as an integer number or a string of digits.
//!   Stored as RFC 3339 UTC with milliseconds (`2026-11-22T10:00:00.123Z`, finer digits kept
//!   when not zero), indexed as epoch milliseconds.
//! - **binary**: base64 strings (standard or URL-safe, padded or not), stored, never indexed.
//! - **null** is stored as null and not indexed, for every type.
//! - **Arrays** are accepted for every value key, repeated or not (as Elasticsearch does):
//!   each element is coerced on its own and indexed as its own entry; bad elements (nested
//!   arrays and objects included) are ignored one by one; an array all of whose elements
//!   were ignored is not stored.
//!
//! `@timestamp`:
//!
//! - The root key `@timestamp` (or, if the dictionary defines `@timestamp`, that key and its
//!   aliases) takes one date as above. Missing: the ingest time, and
//!   [`Normalized::timestamp_defaulted`]. Unparsable (or an array, or null): the ingest time
//!   and an `_ignored` record. Always stored in the normalised form; indexed only if the
//!   dictionary's `@timestamp` is. No other key is read as a timestamp unless the dictionary
//!   makes it an alias.
//! - Without a dictionary (no schema pushed yet) every key is unknown, except `@timestamp`.
//!
//! # The stored document
//!
//! [`Normalized::source`] is what is stored and what search returns: known keys nested under
//! their canonical key with coerced values, unknown keys as sent, `@timestamp`, and when
//! anything was ignored `_ignored`: the carried-over records, then this normalisation's, each
//! `{"key", "value", "reason"}` with the value as sent (moved there, not left under the key).
//!
//! Guarantees, checked by property tests:
//!
//! - **Nothing is lost**: every scalar of the input is in `source`, or in an `_ignored`
//!   record, as sent or coerced.
//! - **Idempotent**: normalising `source` again, with limits that admit it (it can be larger
//!   than the input: see [`Limits`]), gives the same `source`, timestamp, unknown keys and
//!   indexed values, with nothing newly ignored or coerced, whatever the ingest time.
//! - **Deterministic**: the output depends only on the inputs.
//!
//! # Modules
//!
//! - `raw`: the one parse, with the limits;
//! - `walk`: resolution and the rules above;
//! - `coerce`: value coercions;
//! - `timestamp`: date parsing and the stored form;
//! - `place`: putting values at key paths, duplicates and conflicts;
//! - `object`: the stored document's objects while they are built;
//! - `limits`, `error`: the bounds and the one error type.

#![warn(missing_docs)]

mod coerce;
mod error;
mod limits;
mod object;
mod place;
mod raw;
mod timestamp;
mod walk;

#[cfg(test)]
mod tests;

use caravan_schema::Dictionary;
use serde::Serialize;
use serde_json::{Map, Value};

pub use error::DocumentError;
pub use limits::{
    DEPTH_MAX_CEILING, DEPTH_MAX_DEFAULT, DOCUMENT_BYTES_MAX_DEFAULT, KEYS_MAX_DEFAULT, Limits,
};
pub use object::StoredObject;

/// The key of the document's date, always present in a stored document.
pub const TIMESTAMP_KEY: &str = "@timestamp";

/// The key of the records of ignored values in a stored document.
pub const IGNORED_KEY: &str = "_ignored";

/// Normalises one JSON document against `dictionary` (`None`: no schema yet, every key but
/// `@timestamp` is unknown). `ingest_time_ms` (epoch milliseconds) stands in for a missing
/// or unparsable `@timestamp`; outside the years 0000 to 9999 it is clamped.
pub fn normalize(
    document: &[u8],
    dictionary: Option<&Dictionary>,
    ingest_time_ms: i64,
    limits: &Limits,
) -> Result<Normalized, DocumentError> {
    let members = raw::parse(document, limits)?;
    Ok(walk::normalize_members(
        &members,
        dictionary,
        ingest_time_ms,
    ))
}

/// Like [`normalize`], for a document the caller has already parsed. The depth and key
/// limits apply; the size limit is the caller's to check, as only the caller saw the bytes.
/// A `Value` has already lost duplicate keys (serde_json keeps the last) and, without
/// serde_json's `preserve_order`, the order of keys, which decides which duplicate is kept.
pub fn normalize_value(
    document: &Value,
    dictionary: Option<&Dictionary>,
    ingest_time_ms: i64,
    limits: &Limits,
) -> Result<Normalized, DocumentError> {
    let members = raw::from_value(document, limits)?;
    Ok(walk::normalize_members(
        &members,
        dictionary,
        ingest_time_ms,
    ))
}

/// Coerces a value written in a query (`userId:123`, `http.status:[500 TO 599]`) to the type
/// of `def` with ingest's rules, so that a query finds what ingest stored: `"123"` is the
/// long 123, `"error"` the enum value `ERROR`, `"2026-11-23"` a date. `def` must be a value
/// type; `None` for binary keys, which are never indexed. The error is the reason, as in an
/// `_ignored` record ("expected long, got a string that is not an integer").
pub fn coerce_query_value(
    text: &str,
    def: &caravan_schema::FieldDef,
) -> Result<Option<TypedValue>, String> {
    let raw = raw::Raw::String(std::borrow::Cow::Borrowed(text));
    coerce::coerce(&raw, def)
        .map(|coerced| coerced.typed)
        .map_err(|rejected| rejected.reason)
}

/// Reads a date as ingest does (RFC 3339 / ISO 8601 with or without time and offset, or
/// epoch milliseconds) into epoch milliseconds; the error says why it is not one.
pub fn parse_timestamp(text: &str) -> Result<i64, &'static str> {
    timestamp::parse(text).map(timestamp::Instant::millis)
}

/// A normalised document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Normalized {
    /// The document as stored and returned by search (crate docs, "The stored document").
    /// An object rather than bytes so that the caller serialises it once, where it needs the
    /// bytes; [`Normalized::write_source`] does that.
    pub source: StoredObject,
    /// The document's date in epoch milliseconds (the ingest time when it had none).
    pub timestamp_ms: i64,
    /// Whether `timestamp_ms` is the ingest time: `@timestamp` was missing or ignored.
    pub timestamp_defaulted: bool,
    /// The values to index, in document order, one entry per value (a repeated key or an
    /// array has several); `@timestamp` last, if the dictionary indexes it. Only keys the
    /// dictionary marks indexed; never binary, struct or unknown keys, nor null.
    pub indexed: Vec<IndexedValue>,
    /// The values this normalisation moved to `_ignored`, in the order they were met (records
    /// carried over from the input are in `source` only).
    pub ignored: Vec<Ignored>,
    /// The dotted keys not in the dictionary, sorted and distinct (count them per key
    /// upstream).
    pub unknown_keys: Vec<String>,
    /// The keys of keyword values stored but not indexed for being longer than the key's
    /// `ignore_above`, one entry per value.
    pub ignored_above: Vec<String>,
    /// How many values were stored in another form than sent (`"123"` -> `123`, `"error"` ->
    /// `"ERROR"`, a date rewritten in the stored form).
    pub coerced_values: u32,
    /// How many keys were sent as an alias of their key (`user_id` for `userId`): how far the
    /// tenant's logs are from the schema's spelling.
    pub renamed_keys: u32,
}

impl Normalized {
    /// Appends the stored document, as compact JSON, to `out`.
    pub fn write_source(&self, out: &mut Vec<u8>) {
        self.source.write_json(out);
    }
}

/// One value to index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexedValue {
    /// The canonical dotted key (`userId` for `user_id`), or the free key of a map
    /// (`labels.team`).
    pub key: String,
    /// The value, of the key's type.
    pub value: TypedValue,
}

/// A value of one of the indexed types.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum TypedValue {
    /// An exact string.
    Keyword(String),
    /// Full text, to analyse.
    Text(String),
    /// A signed 64-bit integer.
    Long(i64),
    /// A finite double.
    Double(f64),
    /// A boolean.
    Boolean(bool),
    /// A date, in epoch milliseconds (rounded down).
    Date(i64),
}

/// A value moved to `_ignored` instead of being stored under its key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ignored {
    /// The canonical dotted key the value was sent for (or as sent, for unknown keys).
    pub key: String,
    /// The value as sent (as it would have been stored, for a duplicate).
    pub value: Value,
    /// Why, for metrics labels.
    pub kind: IgnoredKind,
    /// Why, for people: stored in the record.
    pub reason: String,
}

impl Ignored {
    /// The record stored in `_ignored`: `{"key", "value", "reason"}`.
    pub fn to_record(&self) -> Value {
        let mut record = Map::new();
        record.insert("key".to_owned(), Value::String(self.key.clone()));
        record.insert("value".to_owned(), self.value.clone());
        record.insert("reason".to_owned(), Value::String(self.reason.clone()));
        Value::Object(record)
    }
}

/// The kinds of ignored values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoredKind {
    /// The value cannot be coerced to the key's type.
    Malformed,
    /// The value is not one of the enum's declared values.
    NotAllowed,
    /// The key already had a value, or a prefix of it holds one.
    Duplicate,
    /// The key is reserved: `_ignored` that is not a list of records.
    Reserved,
}

impl IgnoredKind {
    /// A short, stable name for metrics labels: `malformed`, `not_allowed`, `duplicate`,
    /// `reserved`.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoredKind::Malformed => "malformed",
            IgnoredKind::NotAllowed => "not_allowed",
            IgnoredKind::Duplicate => "duplicate",
            IgnoredKind::Reserved => "reserved",
        }
    }
}
