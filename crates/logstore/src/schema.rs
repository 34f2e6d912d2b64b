//! The tantivy schema of every partition, and how a `LogDocument` becomes a tantivy document.
//!
//! | field        | type                         | options                                    |
//! |--------------|------------------------------|--------------------------------------------|
//! | `_id`        | text, raw tokenizer          | indexed (doc ids only), stored             |
//! | `@timestamp` | date, millisecond precision  | indexed, fast, stored                      |
//! | `_source`    | bytes                        | stored (docstore: zstd, 64 KiB blocks)     |
//! | `_tie`       | u64, a hash of `_id`         | fast: orders documents of equal time       |
//! | `k`          | JSON, raw tokenizer          | keywords, booleans: indexed, fast          |
//! | `n`          | JSON                         | longs, doubles, dates: fast only           |
//! | `t`          | JSON, `default` tokenizer    | text: indexed with positions               |
//!
//! The dictionary's keys are not schema fields: each value goes under its dotted key in the
//! JSON field of its kind. tantivy writes the value's type into each term and column, so when
//! a key changes type in a new schema version, new documents simply get values of the new type
//! and old partitions are never rewritten; a query for one type does not match values of the
//! other. Dots in keys are expanded: `kubernetes.namespace` is the path `kubernetes` ->
//! `namespace`, and the query parser's `k.kubernetes.namespace:web` finds it.
//!
//! Numbers and dates are columns only (no terms): log queries on them are ranges,
//! which run on columns anyway, and indexing every distinct duration or byte count as a term
//! cost a fifth of the indexing time. An exact match is a range with equal bounds
//! ([`LogSchema::exact_query`] builds the right query for any value).
//!
//! How to query (the tests at the end of this file run each one):
//! - keyword: `TermQuery::new(schema.keyword_term("service", "api"), IndexRecordOption::Basic)`
//! - boolean: `TermQuery` over [`LogSchema::boolean_term`]
//! - long range: `RangeQuery::new(Included(schema.long_term("http.status", 500)),
//!   Excluded(schema.long_term("http.status", 600)))`; doubles and dates (in milliseconds)
//!   likewise with [`LogSchema::double_term`] and [`LogSchema::date_term`]
//! - time range: `RangeQuery` over [`LogSchema::timestamp_term`] (the `@timestamp` field)
//! - text match: `TermQuery` over [`LogSchema::text_term`] for one lowercase word, or
//!   `PhraseQuery` over several; or tantivy's `QueryParser` on the fields `k`, `n` and `t`
//!   (`t.message:timeout AND n.http.status:[500 TO 599] AND k.service:api`).

use std::ops::Bound;
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf, Value};
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, IndexRecordOption, JsonObjectOptions, STORED,
    STRING, Schema, TextFieldIndexing,
};

use tantivy::query::{Query, RangeQuery, TermQuery};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{DateTime, IndexSettings, TantivyDocument, Term};

use crate::document::{FieldValue, LogDocument};

/// Name of the `_id` field.
pub const FIELD_ID: &str = "_id";
/// Name of the `@timestamp` field.
pub const FIELD_TIMESTAMP: &str = "@timestamp";
/// Name of the `_source` field.
pub const FIELD_SOURCE: &str = "_source";
/// Name of the field that orders documents with the same `@timestamp` (a hash of `_id`), so
/// that sorting and `search_after` are total and stable across commits and merges.
pub const FIELD_TIEBREAK: &str = "_tie";
/// Name of the JSON field holding keyword and boolean values.
pub const FIELD_KEYS: &str = "k";
/// Name of the JSON field holding long, double and date values (columns only).
pub const FIELD_NUMBERS: &str = "n";
/// Name of the JSON field holding text values.
pub const FIELD_TEXT: &str = "t";

/// Keyword values longer than this are kept in `_source` but not indexed (Elasticsearch's
/// `ignore_above`): such values are payloads, not things one filters on.
pub const KEYWORD_INDEXED_BYTES_MAX: usize = 1_024;

/// zstd level of the docstore. Level 3 (zstd's default) compresses ~420-byte JSON logs in
/// 64 KiB blocks to about a seventh; higher levels cost indexing throughput for a few percent.
pub const DOCSTORE_ZSTD_LEVEL: i32 = 3;

/// Docstore block size: larger blocks compress repetitive logs better; a `get` decompresses
/// one block (64 KiB, well under a millisecond).
pub const DOCSTORE_BLOCK_BYTES: usize = 64 << 10;

/// The schema and its field handles.
#[derive(Clone, Debug)]
pub struct LogSchema {
    /// The tantivy schema.
    pub schema: Schema,
    /// `_id`.
    pub id: Field,
    /// `@timestamp`.
    pub timestamp: Field,
    /// `_source`.
    pub source: Field,
    /// `_tie`.
    pub tiebreak: Field,
    /// `k`: keyword and boolean keys.
    pub keys: Field,
    /// `n`: long, double and date keys.
    pub numbers: Field,
    /// `t`: text keys.
    pub text: Field,
}

impl Default for LogSchema {
    fn default() -> Self {
        LogSchema::new()
    }
}

impl LogSchema {
    /// Builds the schema.
    pub fn new() -> LogSchema {
        let mut builder = Schema::builder();
        let id = builder.add_text_field(FIELD_ID, STRING | STORED);
        let timestamp = builder.add_date_field(
            FIELD_TIMESTAMP,
            DateOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored()
                .set_precision(DateTimePrecision::Milliseconds),
        );
        let source = builder.add_bytes_field(FIELD_SOURCE, STORED);
        let tiebreak = builder.add_u64_field(FIELD_TIEBREAK, FAST);
        let keys = builder.add_json_field(
            FIELD_KEYS,
            JsonObjectOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("raw")
                        .set_index_option(IndexRecordOption::Basic)
                        .set_fieldnorms(false),
                )
                .set_fast("raw")
                .set_expand_dots_enabled(),
        );
        let numbers = builder.add_json_field(
            FIELD_NUMBERS,
            JsonObjectOptions::default()
                .set_fast("raw")
                .set_expand_dots_enabled(),
        );
        let text = builder.add_json_field(
            FIELD_TEXT,
            JsonObjectOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("default")
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions),
                )
                .set_expand_dots_enabled(),
        );
        LogSchema {
            schema: builder.build(),
            id,
            timestamp,
            source,
            tiebreak,
            keys,
            numbers,
            text,
        }
    }

    /// The settings every partition is created with (zstd docstore).
    pub fn index_settings() -> IndexSettings {
        IndexSettings {
            docstore_compression: Compressor::Zstd(ZstdCompressor {
                compression_level: Some(DOCSTORE_ZSTD_LEVEL),
            }),
            docstore_blocksize: DOCSTORE_BLOCK_BYTES,
            ..IndexSettings::default()
        }
    }

    /// The tantivy document of a log document.
    pub fn to_tantivy(&self, document: &LogDocument) -> TantivyDocument {
        // Sized once: tantivy appends every value to one buffer, and growing it value by
        // value moved the whole document (`_source` included) several times.
        let mut doc = TantivyDocument::with_capacity(encoded_size_hint(document));
        doc.add_text(self.id, &document.id);
        doc.add_date(
            self.timestamp,
            DateTime::from_timestamp_millis(document.timestamp_ms),
        );
        doc.add_bytes(self.source, &document.source);
        doc.add_u64(self.tiebreak, tiebreak(&document.id));
        let (mut keywords, mut numbers, mut text) = (false, false, false);
        for (_, value) in &document.fields {
            match value {
                FieldValue::Keyword(_) | FieldValue::Boolean(_) => keywords = true,
                FieldValue::Text(_) => text = true,
                _ => numbers = true,
            }
        }
        for (present, field, target) in [
            (keywords, self.keys, Target::Keys),
            (numbers, self.numbers, Target::Numbers),
            (text, self.text, Target::Text),
        ] {
            if present {
                doc.add_field_value(field, FieldsView::Object(&document.fields, target));
            }
        }
        doc
    }

    /// The term of `_id`.
    pub fn id_term(&self, id: &str) -> Term {
        Term::from_field_text(self.id, id)
    }

    /// The term of `@timestamp` (milliseconds), for range queries on time.
    pub fn timestamp_term(&self, timestamp_ms: i64) -> Term {
        Term::from_field_date(
            self.timestamp,
            DateTime::from_timestamp_millis(timestamp_ms),
        )
    }

    /// The term of a keyword value of `key` (exact match).
    pub fn keyword_term(&self, key: &str, value: &str) -> Term {
        let mut term = Term::from_field_json_path(self.keys, key, true);
        term.append_type_and_str(value);
        term
    }

    /// A range bound on a long value of `key` (for `RangeQuery`).
    pub fn long_term(&self, key: &str, value: i64) -> Term {
        let mut term = Term::from_field_json_path(self.numbers, key, true);
        term.append_type_and_fast_value(value);
        term
    }

    /// A range bound on a double value of `key` (for `RangeQuery`).
    pub fn double_term(&self, key: &str, value: f64) -> Term {
        let mut term = Term::from_field_json_path(self.numbers, key, true);
        term.append_type_and_fast_value(value);
        term
    }

    /// The term of a boolean value of `key` (for `TermQuery`).
    pub fn boolean_term(&self, key: &str, value: bool) -> Term {
        let mut term = Term::from_field_json_path(self.keys, key, true);
        term.append_type_and_fast_value(value);
        term
    }

    /// A range bound on a date value of `key`, in milliseconds (for `RangeQuery`).
    pub fn date_term(&self, key: &str, value_ms: i64) -> Term {
        let mut term = Term::from_field_json_path(self.numbers, key, true);
        term.append_type_and_fast_value(DateTime::from_timestamp_millis(value_ms));
        term
    }

    /// The query matching documents whose `key` has exactly `value`: a term query for keywords,
    /// booleans and words of text (`value` must then be one lowercase token), a range with
    /// equal bounds for the column-only kinds.
    pub fn exact_query(&self, key: &str, value: &FieldValue) -> Box<dyn Query> {
        let term = match value {
            FieldValue::Keyword(text) => self.keyword_term(key, text),
            FieldValue::Boolean(value) => self.boolean_term(key, *value),
            FieldValue::Text(word) => self.text_term(key, word),
            FieldValue::Long(value) => self.long_term(key, *value),
            FieldValue::Double(value) => self.double_term(key, *value),
            FieldValue::Date(value_ms) => self.date_term(key, *value_ms),
        };
        if matches!(
            value,
            FieldValue::Keyword(_) | FieldValue::Boolean(_) | FieldValue::Text(_)
        ) {
            return Box::new(TermQuery::new(term, IndexRecordOption::Basic));
        }
        Box::new(RangeQuery::new(
            Bound::Included(term.clone()),
            Bound::Included(term),
        ))
    }

    /// The term of one word of a text value of `key`; `word` must already be what the
    /// `default` tokenizer produces (lowercase, no punctuation).
    pub fn text_term(&self, key: &str, word: &str) -> Term {
        let mut term = Term::from_field_json_path(self.text, key, true);
        term.append_type_and_str(word);
        term
    }
}

/// The `_tie` of a document: FNV-1a of its `_id`. Equal times are rare and equal hashes
/// among them rarer still (2^-64 per pair), so `(@timestamp, _tie)` orders documents totally
/// in practice; the value is persisted, so the function may change without breaking order.
pub fn tiebreak(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Which values of the dictionary fields go in a JSON field.
#[derive(Clone, Copy, Debug)]
enum Target {
    Keys,
    Numbers,
    Text,
}

impl Target {
    fn accepts(self, value: &FieldValue) -> bool {
        match (self, value) {
            (Target::Keys, FieldValue::Keyword(text)) => text.len() <= KEYWORD_INDEXED_BYTES_MAX,
            (Target::Keys, FieldValue::Boolean(_)) => true,
            (Target::Text, FieldValue::Text(_)) => true,
            (
                Target::Numbers,
                FieldValue::Long(_) | FieldValue::Double(_) | FieldValue::Date(_),
            ) => true,
            _ => false,
        }
    }
}

/// A borrowed view of a document's fields as a JSON object, so that tantivy copies the values
/// once, into its document, instead of through an intermediate `OwnedValue` tree.
#[derive(Clone, Copy, Debug)]
enum FieldsView<'a> {
    Object(&'a [(String, FieldValue)], Target),
    Leaf(&'a FieldValue),
}

/// The entries of a [`FieldsView::Object`] that its target accepts.
struct FieldsIter<'a> {
    fields: std::slice::Iter<'a, (String, FieldValue)>,
    target: Target,
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = (&'a str, FieldsView<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let target = self.target;
        self.fields
            .by_ref()
            .find(|(_, value)| target.accepts(value))
            .map(|(key, value)| (key.as_str(), FieldsView::Leaf(value)))
    }
}

impl<'a> Value<'a> for FieldsView<'a> {
    type ArrayIter = std::iter::Empty<FieldsView<'a>>;
    type ObjectIter = FieldsIter<'a>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        match *self {
            FieldsView::Object(fields, target) => ReferenceValue::Object(FieldsIter {
                fields: fields.iter(),
                target,
            }),
            FieldsView::Leaf(value) => ReferenceValue::Leaf(match value {
                FieldValue::Keyword(text) | FieldValue::Text(text) => {
                    ReferenceValueLeaf::Str(text.as_str())
                }
                FieldValue::Long(value) => ReferenceValueLeaf::I64(*value),
                FieldValue::Double(value) => ReferenceValueLeaf::F64(*value),
                FieldValue::Boolean(value) => ReferenceValueLeaf::Bool(*value),
                FieldValue::Date(value_ms) => {
                    ReferenceValueLeaf::Date(DateTime::from_timestamp_millis(*value_ms))
                }
            }),
        }
    }
}

/// An upper estimate of the bytes tantivy's document buffer needs for `document`: each string
/// with its length prefix, each number in 8 bytes, and a few bytes of addresses per value.
fn encoded_size_hint(document: &LogDocument) -> usize {
    const PER_VALUE: usize = 16;
    let fields: usize = document
        .fields
        .iter()
        .map(|(key, value)| {
            key.len()
                + PER_VALUE
                + match value {
                    FieldValue::Keyword(text) | FieldValue::Text(text) => text.len(),
                    _ => 8,
                }
        })
        .sum();
    4 * PER_VALUE + document.id.len() + document.source.len() + fields
}

#[cfg(test)]
mod tests {
    use std::ops::Bound::{Excluded, Included};

    use tantivy::collector::{Count, TopDocs};
    use tantivy::query::{PhraseQuery, QueryParser};
    use tantivy::schema::Value as _;
    use tantivy::{Index, IndexWriter};

    use super::*;
    use crate::document::WriteMode;

    fn document(id: &str, timestamp_ms: i64, fields: Vec<(&str, FieldValue)>) -> LogDocument {
        LogDocument {
            tenant: "t".to_string(),
            id: id.to_string(),
            timestamp_ms,
            source: format!("{{\"id\":\"{id}\"}}").into_bytes(),
            fields: fields
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect(),
            mode: WriteMode::Create,
        }
    }

    /// Indexes three documents in RAM; returns the schema and a searcher.
    fn index() -> (LogSchema, tantivy::Searcher) {
        let schema = LogSchema::new();
        let index = Index::builder()
            .schema(schema.schema.clone())
            .settings(LogSchema::index_settings())
            .create_in_ram()
            .unwrap();
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let documents = [
            document(
                "a",
                1_000,
                vec![
                    ("service", FieldValue::Keyword("api".into())),
                    ("http.status", FieldValue::Long(200)),
                    ("duration_ms", FieldValue::Double(12.5)),
                    ("cached", FieldValue::Boolean(true)),
                    ("started", FieldValue::Date(1_500)),
                    (
                        "message",
                        FieldValue::Text("Connection refused by upstream".into()),
                    ),
                ],
            ),
            document(
                "b",
                2_000,
                vec![
                    ("service", FieldValue::Keyword("api-gateway".into())),
                    ("http.status", FieldValue::Long(503)),
                    ("duration_ms", FieldValue::Double(800.0)),
                    ("started", FieldValue::Date(2_500)),
                    (
                        "message",
                        FieldValue::Text("upstream connection timeout".into()),
                    ),
                ],
            ),
            // After a schema change: `http.status` became a keyword.
            document(
                "c",
                3_000,
                vec![("http.status", FieldValue::Keyword("503".into()))],
            ),
        ];
        for document in &documents {
            writer.add_document(schema.to_tantivy(document)).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        (schema, searcher)
    }

    fn ids(schema: &LogSchema, searcher: &tantivy::Searcher, query: &dyn Query) -> Vec<String> {
        let mut ids: Vec<String> = searcher
            .search(query, &TopDocs::with_limit(10).order_by_score())
            .unwrap()
            .into_iter()
            .map(|(_, address)| {
                let doc: TantivyDocument = searcher.doc(address).unwrap();
                doc.get_first(schema.id)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn exact_values_match_only_their_type() {
        let (schema, searcher) = index();
        let query = TermQuery::new(
            schema.keyword_term("service", "api"),
            IndexRecordOption::Basic,
        );
        assert_eq!(ids(&schema, &searcher, &query), ["a"]);
        let query = schema.exact_query("http.status", &FieldValue::Keyword("503".into()));
        assert_eq!(
            ids(&schema, &searcher, &*query),
            ["c"],
            "the keyword, not the long"
        );
        let query = schema.exact_query("http.status", &FieldValue::Long(503));
        assert_eq!(
            ids(&schema, &searcher, &*query),
            ["b"],
            "the long, not the keyword"
        );
        let query = schema.exact_query("cached", &FieldValue::Boolean(true));
        assert_eq!(ids(&schema, &searcher, &*query), ["a"]);
        let query = schema.exact_query("duration_ms", &FieldValue::Double(800.0));
        assert_eq!(ids(&schema, &searcher, &*query), ["b"]);
        let query = schema.exact_query("started", &FieldValue::Date(2_500));
        assert_eq!(ids(&schema, &searcher, &*query), ["b"]);
        let query = schema.exact_query("message", &FieldValue::Text("refused".into()));
        assert_eq!(ids(&schema, &searcher, &*query), ["a"]);
    }

    #[test]
    fn range_queries_on_longs_doubles_dates_and_timestamp() {
        let (schema, searcher) = index();
        let query = RangeQuery::new(
            Included(schema.long_term("http.status", 500)),
            Excluded(schema.long_term("http.status", 600)),
        );
        assert_eq!(ids(&schema, &searcher, &query), ["b"]);
        let query = RangeQuery::new(
            Included(schema.double_term("duration_ms", 10.0)),
            Excluded(schema.double_term("duration_ms", 100.0)),
        );
        assert_eq!(ids(&schema, &searcher, &query), ["a"]);
        let query = RangeQuery::new(
            Included(schema.date_term("started", 1_400)),
            Excluded(schema.date_term("started", 1_600)),
        );
        assert_eq!(
            ids(&schema, &searcher, &query),
            ["a"],
            "milliseconds are kept"
        );
        let query = RangeQuery::new(
            Included(schema.timestamp_term(1_500)),
            Excluded(schema.timestamp_term(3_000)),
        );
        assert_eq!(ids(&schema, &searcher, &query), ["b"]);
        assert_eq!(searcher.search(&query, &Count).unwrap(), 1);
    }

    #[test]
    fn text_is_tokenised_for_terms_phrases_and_the_query_parser() {
        let (schema, searcher) = index();
        let query = TermQuery::new(
            schema.text_term("message", "upstream"),
            IndexRecordOption::WithFreqs,
        );
        assert_eq!(ids(&schema, &searcher, &query), ["a", "b"]);
        let query = PhraseQuery::new(vec![
            schema.text_term("message", "connection"),
            schema.text_term("message", "refused"),
        ]);
        assert_eq!(ids(&schema, &searcher, &query), ["a"]);
        let index = searcher.index();
        let parser = QueryParser::for_index(index, vec![schema.keys, schema.numbers, schema.text]);
        let query = parser
            .parse_query("t.message:timeout AND n.http.status:[500 TO 599]")
            .unwrap();
        assert_eq!(ids(&schema, &searcher, &query), ["b"]);
        let query = parser.parse_query("k.service:api").unwrap();
        assert_eq!(ids(&schema, &searcher, &query), ["a"]);
    }

    #[test]
    fn long_keywords_are_not_indexed() {
        let long = "x".repeat(KEYWORD_INDEXED_BYTES_MAX + 1);
        assert!(!Target::Keys.accepts(&FieldValue::Keyword(long)));
        assert!(Target::Keys.accepts(&FieldValue::Keyword("x".into())));
        assert!(!Target::Keys.accepts(&FieldValue::Text("x".into())));
        assert!(!Target::Keys.accepts(&FieldValue::Long(1)));
        assert!(Target::Keys.accepts(&FieldValue::Boolean(true)));
        assert!(!Target::Numbers.accepts(&FieldValue::Boolean(true)));
        assert!(Target::Numbers.accepts(&FieldValue::Date(1)));
        assert!(Target::Text.accepts(&FieldValue::Text("x".into())));
    }
}
