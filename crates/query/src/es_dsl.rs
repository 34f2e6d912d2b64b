//! The Elasticsearch 8 query DSL subset into a [`Query`].
//!
//! Reads the value of a search request's `"query"` key. Supported query types: `bool`,
//! `constant_score`, `exists`, `ids`, `match`, `match_all`, `match_none`, `match_phrase`,
//! `prefix`, `query_string`, `range`, `term`, `terms` and `wildcard`. Anything else is
//! [`QueryError::Unsupported`]; a shape Elasticsearch would reject is
//! [`QueryError::Malformed`]. Both carry the JSON path of the problem, starting with
//! `query` (`query.bool.must[1].range.http.status`).
//!
//! Rules worth knowing:
//!
//! - Values may be JSON strings, numbers (their JSON text: `500`, `1.5`) or booleans
//!   (`true`/`false`); they are coerced to the field's type later, by `resolve`.
//! - `boost` and `_name` are accepted and ignored everywhere; so are a few parameters that
//!   do not change which documents match (`lenient`, `analyze_wildcard`, `format`, ...).
//!   Parameters that would change the result and that Caravan cannot honour (`fuzziness`,
//!   `analyzer`, a non-UTC `time_zone`, `case_insensitive: true`, ...) are
//!   [`QueryError::Unsupported`]; unknown parameters are [`QueryError::Malformed`].
//! - A `range` with no bound is [`Query::Exists`]; an empty `terms` or `ids` list is
//!   [`Query::MatchNone`].
//! - `query_string` is parsed by [`crate::lucene::parse_with`]; its syntax errors keep the
//!   byte position in the query string and say they come from `query_string.query`. A
//!   non-UTC `time_zone` is only an error when the query string has a range.
//! - Queries nest at most [`MAX_DEPTH`] deep.

use serde_json::{Map, Value};

use crate::ast::{BoolQuery, Operator, Query, RangeBound, Span};
use crate::error::QueryError;
use crate::lucene;

/// Deepest accepted nesting of queries (`bool` in `bool` ...).
pub const MAX_DEPTH: usize = 32;

/// The query types this reader understands, for error messages.
const SUPPORTED: &str = "bool, constant_score, exists, ids, match, match_all, match_none, \
                         match_phrase, prefix, query_string, range, term, terms, wildcard";

/// Elasticsearch query types that exist but that Caravan does not support.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "boosting",
    "combined_fields",
    "dis_max",
    "distance_feature",
    "function_score",
    "fuzzy",
    "geo_bounding_box",
    "geo_distance",
    "geo_grid",
    "geo_polygon",
    "geo_shape",
    "has_child",
    "has_parent",
    "intervals",
    "knn",
    "match_bool_prefix",
    "match_phrase_prefix",
    "more_like_this",
    "multi_match",
    "nested",
    "parent_id",
    "percolate",
    "pinned",
    "rank_feature",
    "regexp",
    "script",
    "script_score",
    "semantic",
    "shape",
    "simple_query_string",
    "span_containing",
    "span_field_masking",
    "span_first",
    "span_multi",
    "span_near",
    "span_not",
    "span_or",
    "span_term",
    "span_within",
    "sparse_vector",
    "terms_set",
    "text_expansion",
    "weighted_tokens",
    "wrapper",
];

/// Parameters accepted (and ignored) by every query type.
const COMMON_IGNORED: &[&str] = &["boost", "_name"];

/// Time zones that change nothing (Caravan works in UTC).
const UTC_ZONES: &[&str] = &["UTC", "Z", "+00:00", "Etc/UTC"];

/// Reads the value of a search request's `"query"` key.
pub fn parse(query: &Value) -> Result<Query, QueryError> {
    query_at(query, "query", 1)
}

fn malformed(path: &str, message: impl Into<String>) -> QueryError {
    QueryError::Malformed {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn unsupported(path: &str, message: impl Into<String>) -> QueryError {
    QueryError::Unsupported {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// "a string", "an array", ... for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, QueryError> {
    value
        .as_object()
        .ok_or_else(|| malformed(path, format!("expected an object, found {}", kind(value))))
}

fn string<'v>(value: &'v Value, path: &str) -> Result<&'v str, QueryError> {
    value
        .as_str()
        .ok_or_else(|| malformed(path, format!("expected a string, found {}", kind(value))))
}

fn boolean(value: &Value, path: &str) -> Result<bool, QueryError> {
    value
        .as_bool()
        .ok_or_else(|| malformed(path, format!("expected a boolean, found {}", kind(value))))
}

/// A string, number or boolean as text.
fn scalar(value: &Value, path: &str) -> Result<String, QueryError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        other => Err(malformed(
            path,
            format!(
                "expected a string, number or boolean, found {}",
                kind(other)
            ),
        )),
    }
}

fn child(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

/// Checks a parameter the caller does not read: accepted-and-ignored ones pass, ones that
/// would change the result fail as unsupported, unknown ones as malformed.
fn other_param(
    query_type: &str,
    key: &str,
    path: &str,
    expected: &[&str],
    ignored: &[&str],
    unsupported_params: &[&str],
) -> Result<(), QueryError> {
    if COMMON_IGNORED.contains(&key) || ignored.contains(&key) {
        return Ok(());
    }
    if unsupported_params.contains(&key) {
        return Err(unsupported(
            path,
            format!("the `{key}` parameter of `{query_type}` is not supported"),
        ));
    }
    let expected = expected
        .iter()
        .chain(COMMON_IGNORED)
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(malformed(
        path,
        format!("unknown parameter `{key}` in `{query_type}`; expected one of {expected}"),
    ))
}

/// One query object at `path`, `depth` levels deep (the top is 1).
fn query_at(value: &Value, path: &str, depth: usize) -> Result<Query, QueryError> {
    if depth > MAX_DEPTH {
        return Err(malformed(
            path,
            format!("queries nest deeper than {MAX_DEPTH} levels"),
        ));
    }
    let Value::Object(map) = value else {
        return Err(malformed(
            path,
            format!("expected a query object, found {}", kind(value)),
        ));
    };
    let mut entries = map.iter();
    let (query_type, body) = match (entries.next(), entries.next()) {
        (Some(entry), None) => entry,
        (None, _) => {
            return Err(malformed(
                path,
                format!("expected one query type (one of {SUPPORTED}), found an empty object"),
            ));
        }
        (Some(_), Some(_)) => {
            let keys = map
                .keys()
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(malformed(
                path,
                format!(
                    "expected exactly one query type, found {}: {keys}",
                    map.len()
                ),
            ));
        }
    };
    let path = child(path, query_type);
    match query_type.as_str() {
        "match_all" => empty_params(query_type, body, &path).map(|()| Query::MatchAll),
        "match_none" => empty_params(query_type, body, &path).map(|()| Query::MatchNone),
        "match" => match_query(body, &path),
        "match_phrase" => match_phrase(body, &path),
        "term" => term(body, &path),
        "terms" => terms(body, &path),
        "ids" => ids(body, &path),
        "range" => range(body, &path),
        "exists" => exists(body, &path),
        "prefix" => prefix(body, &path),
        "wildcard" => wildcard(body, &path),
        "bool" => bool_query(body, &path, depth),
        "constant_score" => constant_score(body, &path, depth),
        "query_string" => query_string(body, &path),
        other if KNOWN_UNSUPPORTED.contains(&other) => Err(unsupported(
            &path,
            format!("`{other}` queries are not supported; supported: {SUPPORTED}"),
        )),
        other => Err(unsupported(
            &path,
            format!("unknown query type `{other}`; supported: {SUPPORTED}"),
        )),
    }
}

/// `match_all` / `match_none`: only `boost` and `_name`.
fn empty_params(query_type: &str, body: &Value, path: &str) -> Result<(), QueryError> {
    for key in object(body, path)?.keys() {
        other_param(query_type, key, &child(path, key), &[], &[], &[])?;
    }
    Ok(())
}

/// The only field of a per-field query (`{"match": {"message": ...}}`), with the path of
/// its value.
fn single_field<'v>(
    query_type: &str,
    body: &'v Value,
    path: &str,
) -> Result<(&'v str, &'v Value, String), QueryError> {
    let map = object(body, path)?;
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((field, value)), None) => {
            check_field(field, path)?;
            Ok((field, value, child(path, field)))
        }
        (None, _) => Err(malformed(
            path,
            format!(
                "`{query_type}` needs a field, e.g. {{\"{query_type}\": {{\"message\": ...}}}}"
            ),
        )),
        (Some(_), Some(_)) => Err(malformed(
            path,
            format!(
                "`{query_type}` takes exactly one field, found {}",
                map.len()
            ),
        )),
    }
}

fn check_field(field: &str, path: &str) -> Result<(), QueryError> {
    if field.is_empty() {
        return Err(malformed(path, "the field name is empty"));
    }
    Ok(())
}

/// `"operator": "and" | "or"` (any case).
fn operator(value: &Value, path: &str) -> Result<Operator, QueryError> {
    let text = string(value, path)?;
    if text.eq_ignore_ascii_case("and") {
        Ok(Operator::And)
    } else if text.eq_ignore_ascii_case("or") {
        Ok(Operator::Or)
    } else {
        Err(malformed(
            path,
            format!("expected `and` or `or`, found `{text}`"),
        ))
    }
}

/// `{"match": {"field": "text"}}` or `{"match": {"field": {"query": "text", ...}}}`.
fn match_query(body: &Value, path: &str) -> Result<Query, QueryError> {
    let (field, spec, path) = single_field("match", body, path)?;
    let (value, operator) = match spec {
        Value::Object(params) => {
            let mut value = None;
            let mut operator_value = Operator::Or;
            for (key, param) in params {
                let key_path = child(&path, key);
                match key.as_str() {
                    "query" => value = Some(scalar(param, &key_path)?),
                    "operator" => operator_value = operator(param, &key_path)?,
                    _ => other_param(
                        "match",
                        key,
                        &key_path,
                        &["query", "operator"],
                        &[
                            "lenient",
                            "auto_generate_synonyms_phrase_query",
                            "fuzzy_transpositions",
                            "max_expansions",
                            "prefix_length",
                        ],
                        &[
                            "analyzer",
                            "fuzziness",
                            "fuzzy_rewrite",
                            "minimum_should_match",
                            "zero_terms_query",
                            "cutoff_frequency",
                        ],
                    )?,
                }
            }
            let value = value.ok_or_else(|| malformed(&path, "`match` needs a `query`"))?;
            (value, operator_value)
        }
        other => (scalar(other, &path)?, Operator::Or),
    };
    Ok(Query::Match {
        field: Some(field.to_owned()),
        value,
        operator,
        span: Span::default(),
    })
}

/// `{"match_phrase": {"field": "text"}}` or with `{"query": "text"}`.
fn match_phrase(body: &Value, path: &str) -> Result<Query, QueryError> {
    let (field, spec, path) = single_field("match_phrase", body, path)?;
    let text = match spec {
        Value::Object(params) => {
            let mut text = None;
            for (key, param) in params {
                let key_path = child(&path, key);
                match key.as_str() {
                    "query" => text = Some(scalar(param, &key_path)?),
                    "slop" if param.as_u64() == Some(0) => {}
                    "slop" => {
                        return Err(unsupported(
                            &key_path,
                            "a `slop` other than 0 is not supported in `match_phrase`",
                        ));
                    }
                    _ => other_param(
                        "match_phrase",
                        key,
                        &key_path,
                        &["query", "slop"],
                        &[],
                        &["analyzer", "zero_terms_query"],
                    )?,
                }
            }
            text.ok_or_else(|| malformed(&path, "`match_phrase` needs a `query`"))?
        }
        other => scalar(other, &path)?,
    };
    Ok(Query::Phrase {
        field: Some(field.to_owned()),
        text,
        span: Span::default(),
    })
}

/// The value of a `term`, `prefix` or `wildcard` query: a scalar, or an object with one
/// of `value_keys` and, maybe, `case_insensitive` (only `false`) and `rewrite` (ignored).
fn value_param(
    query_type: &str,
    spec: &Value,
    path: &str,
    value_keys: &[&str],
) -> Result<String, QueryError> {
    let Value::Object(params) = spec else {
        return scalar(spec, path);
    };
    let mut value = None;
    for (key, param) in params {
        let key_path = child(path, key);
        match key.as_str() {
            key if value_keys.contains(&key) => value = Some(scalar(param, &key_path)?),
            "case_insensitive" => {
                if boolean(param, &key_path)? {
                    return Err(unsupported(
                        &key_path,
                        format!("`case_insensitive: true` is not supported in `{query_type}`"),
                    ));
                }
            }
            _ => {
                let mut expected = value_keys.to_vec();
                expected.push("case_insensitive");
                let ignored: &[&str] = if query_type == "term" {
                    &[]
                } else {
                    &["rewrite"]
                };
                other_param(query_type, key, &key_path, &expected, ignored, &[])?;
            }
        }
    }
    value.ok_or_else(|| malformed(path, format!("`{query_type}` needs a `value`")))
}

/// `{"term": {"field": "v"}}` or `{"term": {"field": {"value": "v"}}}`.
fn term(body: &Value, path: &str) -> Result<Query, QueryError> {
    let (field, spec, path) = single_field("term", body, path)?;
    let value = value_param("term", spec, &path, &["value"])?;
    Ok(Query::Term {
        field: field.to_owned(),
        values: vec![value],
        span: Span::default(),
    })
}

/// `{"terms": {"field": ["a", "b"], "boost": 1.0}}`.
fn terms(body: &Value, path: &str) -> Result<Query, QueryError> {
    let map = object(body, path)?;
    let fields: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(key, _)| !COMMON_IGNORED.contains(&key.as_str()))
        .collect();
    let [(field, list)] = fields.as_slice() else {
        return Err(malformed(
            path,
            format!("`terms` takes exactly one field, found {}", fields.len()),
        ));
    };
    check_field(field, path)?;
    let path = child(path, field);
    let Value::Array(items) = list else {
        if list.is_object() {
            return Err(unsupported(&path, "terms lookup is not supported"));
        }
        return Err(malformed(
            &path,
            format!("expected an array of values, found {}", kind(list)),
        ));
    };
    let values = scalars(items, &path)?;
    Ok(term_list(field, values))
}

/// Each item of a JSON array as text.
fn scalars(items: &[Value], path: &str) -> Result<Vec<String>, QueryError> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| scalar(item, &format!("{path}[{index}]")))
        .collect()
}

/// Any of `values` (none: nothing matches).
fn term_list(field: &str, values: Vec<String>) -> Query {
    if values.is_empty() {
        return Query::MatchNone;
    }
    Query::Term {
        field: field.to_owned(),
        values,
        span: Span::default(),
    }
}

/// `{"ids": {"values": ["a", "b"]}}`: the documents' `_id`.
fn ids(body: &Value, path: &str) -> Result<Query, QueryError> {
    let mut values = None;
    for (key, param) in object(body, path)? {
        let key_path = child(path, key);
        match key.as_str() {
            "values" => {
                let Value::Array(items) = param else {
                    return Err(malformed(
                        &key_path,
                        format!("expected an array of ids, found {}", kind(param)),
                    ));
                };
                values = Some(scalars(items, &key_path)?);
            }
            _ => other_param("ids", key, &key_path, &["values"], &[], &[])?,
        }
    }
    let values = values.ok_or_else(|| malformed(path, "`ids` needs `values`"))?;
    Ok(term_list("_id", values))
}

/// `{"exists": {"field": "x"}}`.
fn exists(body: &Value, path: &str) -> Result<Query, QueryError> {
    let mut field = None;
    for (key, param) in object(body, path)? {
        let key_path = child(path, key);
        match key.as_str() {
            "field" => {
                let name = string(param, &key_path)?;
                check_field(name, &key_path)?;
                field = Some(name.to_owned());
            }
            _ => other_param("exists", key, &key_path, &["field"], &[], &[])?,
        }
    }
    let field = field.ok_or_else(|| malformed(path, "`exists` needs a `field`"))?;
    Ok(Query::Exists {
        field,
        span: Span::default(),
    })
}

/// `{"prefix": {"field": "ab"}}` or with `{"value": "ab"}`: the pattern `ab*`.
fn prefix(body: &Value, path: &str) -> Result<Query, QueryError> {
    let (field, spec, path) = single_field("prefix", body, path)?;
    let value = value_param("prefix", spec, &path, &["value"])?;
    let mut pattern = escape_wildcards(&value);
    pattern.push('*');
    Ok(Query::Wildcard {
        field: Some(field.to_owned()),
        pattern,
        span: Span::default(),
    })
}

/// `{"wildcard": {"field": "ab*"}}` or with `{"value": "ab*"}` (or `"wildcard"`).
fn wildcard(body: &Value, path: &str) -> Result<Query, QueryError> {
    let (field, spec, path) = single_field("wildcard", body, path)?;
    let value = value_param("wildcard", spec, &path, &["value", "wildcard"])?;
    Ok(Query::Wildcard {
        field: Some(field.to_owned()),
        pattern: normalize_wildcard(&value),
        span: Span::default(),
    })
}

/// A literal as a pattern: `*`, `?` and `\` escaped.
fn escape_wildcards(literal: &str) -> String {
    let mut pattern = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// An Elasticsearch wildcard pattern (`\` escapes the next character) in the form of
/// [`Query::Wildcard`]: `\*`, `\?`, `\\` kept, other escapes resolved, a trailing `\`
/// literal.
fn normalize_wildcard(pattern: &str) -> String {
    let mut normalized = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            normalized.push(c);
            continue;
        }
        match chars.next() {
            Some(escaped @ ('*' | '?' | '\\')) => {
                normalized.push('\\');
                normalized.push(escaped);
            }
            Some(escaped) => normalized.push(escaped),
            None => normalized.push_str("\\\\"),
        }
    }
    normalized
}

/// One side of a `range` as written: absent, `null`, or a value.
#[derive(Default)]
struct Side {
    /// `gte` / `lte`.
    inclusive: Option<Option<String>>,
    /// `gt` / `lt`.
    exclusive: Option<Option<String>>,
    /// `from` / `to`.
    legacy: Option<Option<String>>,
    /// `include_lower` / `include_upper`.
    include: Option<bool>,
}

impl Side {
    /// The bound; `names` are this side's (inclusive, exclusive, legacy) keys.
    fn bound(self, path: &str, names: [&str; 3]) -> Result<RangeBound, QueryError> {
        let given = [&self.inclusive, &self.exclusive, &self.legacy];
        let written: Vec<String> = given
            .iter()
            .zip(names)
            .filter(|(value, _)| value.is_some())
            .map(|(_, name)| format!("`{name}`"))
            .collect();
        if written.len() > 1 {
            return Err(malformed(
                path,
                format!("give only one of {}", written.join(" and ")),
            ));
        }
        let bound = match (self.inclusive, self.exclusive, self.legacy) {
            (Some(Some(value)), _, _) => RangeBound::Included(value),
            (_, Some(Some(value)), _) => RangeBound::Excluded(value),
            (_, _, Some(Some(value))) if self.include.unwrap_or(true) => {
                RangeBound::Included(value)
            }
            (_, _, Some(Some(value))) => RangeBound::Excluded(value),
            _ => RangeBound::Unbounded,
        };
        Ok(bound)
    }
}

/// A range bound value: a string or number; `null` for none.
fn range_value(value: &Value, path: &str) -> Result<Option<String>, QueryError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Number(number) => Ok(Some(number.to_string())),
        other => Err(malformed(
            path,
            format!("expected a string or a number, found {}", kind(other)),
        )),
    }
}

/// Accepts only the time zones that change nothing.
fn check_time_zone(value: &Value, path: &str) -> Result<(), QueryError> {
    let zone = string(value, path)?;
    if UTC_ZONES.iter().any(|utc| utc.eq_ignore_ascii_case(zone)) {
        return Ok(());
    }
    Err(unsupported(
        path,
        format!("time zone `{zone}` is not supported: write dates in UTC or with an offset"),
    ))
}

/// `{"range": {"field": {"gte": .., "lt": .., ...}}}`.
fn range(body: &Value, path: &str) -> Result<Query, QueryError> {
    let (field, spec, path) = single_field("range", body, path)?;
    let params = object(spec, &path)?;
    let (mut lower, mut upper) = (Side::default(), Side::default());
    for (key, value) in params {
        let key_path = child(&path, key);
        match key.as_str() {
            "gte" => lower.inclusive = Some(range_value(value, &key_path)?),
            "gt" => lower.exclusive = Some(range_value(value, &key_path)?),
            "from" => lower.legacy = Some(range_value(value, &key_path)?),
            "include_lower" => lower.include = Some(boolean(value, &key_path)?),
            "lte" => upper.inclusive = Some(range_value(value, &key_path)?),
            "lt" => upper.exclusive = Some(range_value(value, &key_path)?),
            "to" => upper.legacy = Some(range_value(value, &key_path)?),
            "include_upper" => upper.include = Some(boolean(value, &key_path)?),
            "format" => {
                string(value, &key_path)?;
            }
            "time_zone" => check_time_zone(value, &key_path)?,
            _ => other_param(
                "range",
                key,
                &key_path,
                &[
                    "gte",
                    "gt",
                    "lte",
                    "lt",
                    "from",
                    "to",
                    "include_lower",
                    "include_upper",
                    "format",
                    "time_zone",
                ],
                &["relation"],
                &[],
            )?,
        }
    }
    let lower = lower.bound(&path, ["gte", "gt", "from"])?;
    let upper = upper.bound(&path, ["lte", "lt", "to"])?;
    let field = field.to_owned();
    let span = Span::default();
    if lower == RangeBound::Unbounded && upper == RangeBound::Unbounded {
        return Ok(Query::Exists { field, span });
    }
    Ok(Query::Range {
        field,
        lower,
        upper,
        span,
    })
}

/// `{"bool": {"must": .., "filter": .., "should": .., "must_not": .., ...}}`.
fn bool_query(body: &Value, path: &str, depth: usize) -> Result<Query, QueryError> {
    let mut query = BoolQuery::default();
    for (key, value) in object(body, path)? {
        let key_path = child(path, key);
        match key.as_str() {
            "must" => query.must = clauses(value, &key_path, depth)?,
            "filter" => query.filter = clauses(value, &key_path, depth)?,
            "should" => query.should = clauses(value, &key_path, depth)?,
            "must_not" => query.must_not = clauses(value, &key_path, depth)?,
            "minimum_should_match" => {
                query.minimum_should_match = Some(minimum_should_match(value, &key_path)?);
            }
            _ => other_param(
                "bool",
                key,
                &key_path,
                &[
                    "must",
                    "filter",
                    "should",
                    "must_not",
                    "minimum_should_match",
                ],
                &["adjust_pure_negative"],
                &[],
            )?,
        }
    }
    Ok(Query::Bool(query))
}

/// One query object or an array of them.
fn clauses(value: &Value, path: &str, depth: usize) -> Result<Vec<Query>, QueryError> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| query_at(item, &format!("{path}[{index}]"), depth + 1))
            .collect(),
        Value::Object(_) => Ok(vec![query_at(value, path, depth + 1)?]),
        other => Err(malformed(
            path,
            format!(
                "expected a query object or an array of them, found {}",
                kind(other)
            ),
        )),
    }
}

/// A count, as a number or a numeric string; percentages and combinations are
/// unsupported.
fn minimum_should_match(value: &Value, path: &str) -> Result<u32, QueryError> {
    let text = match value {
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.trim().to_owned(),
        other => {
            return Err(malformed(
                path,
                format!("expected an integer, found {}", kind(other)),
            ));
        }
    };
    if let Ok(count) = text.parse::<u32>() {
        return Ok(count);
    }
    if text.ends_with('%') || text.contains('<') || text.starts_with('-') {
        return Err(unsupported(
            path,
            format!(
                "`minimum_should_match: {text}` is not supported: give a count of clauses (0 or \
                 more)"
            ),
        ));
    }
    Err(malformed(
        path,
        format!("expected a count of clauses, found `{text}`"),
    ))
}

/// `{"constant_score": {"filter": ...}}`: the filter.
fn constant_score(body: &Value, path: &str, depth: usize) -> Result<Query, QueryError> {
    let mut filter = None;
    for (key, value) in object(body, path)? {
        let key_path = child(path, key);
        match key.as_str() {
            "filter" => filter = Some(query_at(value, &key_path, depth + 1)?),
            _ => other_param("constant_score", key, &key_path, &["filter"], &[], &[])?,
        }
    }
    filter.ok_or_else(|| malformed(path, "`constant_score` needs a `filter`"))
}

/// `{"query_string": {"query": "...", "default_field": ..., "fields": [...], ...}}`.
fn query_string(body: &Value, path: &str) -> Result<Query, QueryError> {
    let mut text = None;
    let mut default_field = None;
    let mut fields = None;
    let mut default_operator = Operator::Or;
    let mut time_zone = None;
    for (key, value) in object(body, path)? {
        let key_path = child(path, key);
        match key.as_str() {
            "query" => text = Some(string(value, &key_path)?),
            "default_field" => default_field = Some(string(value, &key_path)?),
            "fields" => fields = Some(field_list(value, &key_path)?),
            "default_operator" => default_operator = operator(value, &key_path)?,
            "time_zone" => time_zone = Some((value, key_path)),
            _ => other_param(
                "query_string",
                key,
                &key_path,
                &[
                    "query",
                    "default_field",
                    "fields",
                    "default_operator",
                    "time_zone",
                ],
                &[
                    "analyze_wildcard",
                    "allow_leading_wildcard",
                    "lenient",
                    "auto_generate_synonyms_phrase_query",
                    "max_determinized_states",
                    "enable_position_increments",
                    "escape",
                ],
                &[
                    "analyzer",
                    "quote_analyzer",
                    "fuzziness",
                    "fuzzy_max_expansions",
                    "fuzzy_prefix_length",
                    "fuzzy_transpositions",
                    "phrase_slop",
                    "quote_field_suffix",
                    "minimum_should_match",
                    "type",
                    "tie_breaker",
                    "rewrite",
                ],
            )?,
        }
    }
    let text = text.ok_or_else(|| malformed(path, "`query_string` needs a `query`"))?;
    let targets = default_fields(default_field, fields, path)?;
    let query = lucene::parse_with(text, default_operator).map_err(|error| match error {
        QueryError::Syntax { position, message } => QueryError::Syntax {
            position,
            message: format!("{message} (in `{path}.query`)"),
        },
        other => other,
    })?;
    if let Some((zone, zone_path)) = time_zone
        && has_range(&query)
    {
        check_time_zone(zone, &zone_path)?;
    }
    Ok(with_fields(query, &targets))
}

/// `fields`: an array of field names; a `^boost` suffix is ignored.
fn field_list(value: &Value, path: &str) -> Result<Vec<String>, QueryError> {
    let Value::Array(items) = value else {
        return Err(malformed(
            path,
            format!("expected an array of field names, found {}", kind(value)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let item_path = format!("{path}[{index}]");
            let name = string(item, &item_path)?;
            let name = name.split_once('^').map_or(name, |(name, _boost)| name);
            check_field(name, &item_path)?;
            Ok(name.to_owned())
        })
        .collect()
}

/// The fields bare words go to; empty for the schema's default fields.
fn default_fields(
    default_field: Option<&str>,
    fields: Option<Vec<String>>,
    path: &str,
) -> Result<Vec<String>, QueryError> {
    let fields = match (default_field, fields) {
        (Some(_), Some(_)) => {
            return Err(malformed(
                path,
                "give `default_field` or `fields`, not both",
            ));
        }
        (Some(field), None) => {
            check_field(field, &child(path, "default_field"))?;
            vec![field.to_owned()]
        }
        (None, Some(fields)) => fields,
        (None, None) => Vec::new(),
    };
    if fields.iter().any(|field| field == "*") {
        return Ok(Vec::new());
    }
    if let Some(pattern) = fields.iter().find(|field| field.contains('*')) {
        return Err(unsupported(
            path,
            format!("field patterns such as `{pattern}` are not supported; name the fields"),
        ));
    }
    Ok(fields)
}

fn has_range(query: &Query) -> bool {
    match query {
        Query::Range { .. } => true,
        Query::Bool(b) => b
            .must
            .iter()
            .chain(&b.filter)
            .chain(&b.should)
            .chain(&b.must_not)
            .any(has_range),
        _ => false,
    }
}

/// Gives the clauses without a field the `fields` (several: any of them).
fn with_fields(query: Query, fields: &[String]) -> Query {
    if fields.is_empty() {
        return query;
    }
    let each = |make: &dyn Fn(String) -> Query| -> Query {
        match fields {
            [one] => make(one.clone()),
            many => Query::Bool(BoolQuery {
                should: many.iter().cloned().map(make).collect(),
                ..BoolQuery::default()
            }),
        }
    };
    let list = |queries: Vec<Query>| -> Vec<Query> {
        queries
            .into_iter()
            .map(|query| with_fields(query, fields))
            .collect()
    };
    match query {
        Query::Match {
            field: None,
            value,
            operator,
            span,
        } => each(&|field| Query::Match {
            field: Some(field),
            value: value.clone(),
            operator,
            span,
        }),
        Query::Phrase {
            field: None,
            text,
            span,
        } => each(&|field| Query::Phrase {
            field: Some(field),
            text: text.clone(),
            span,
        }),
        Query::Wildcard {
            field: None,
            pattern,
            span,
        } => each(&|field| Query::Wildcard {
            field: Some(field),
            pattern: pattern.clone(),
            span,
        }),
        Query::Bool(b) => Query::Bool(BoolQuery {
            must: list(b.must),
            filter: list(b.filter),
            should: list(b.should),
            must_not: list(b.must_not),
            minimum_should_match: b.minimum_should_match,
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ok(value: Value) -> Query {
        match parse(&value) {
            Ok(query) => query,
            Err(error) => panic!("{value} failed: {error}"),
        }
    }

    fn malformed_at(value: Value) -> (String, String) {
        match parse(&value) {
            Err(QueryError::Malformed { path, message }) => (path, message),
            other => panic!("{value} should be malformed, got {other:?}"),
        }
    }

    fn unsupported_at(value: Value) -> (String, String) {
        match parse(&value) {
            Err(QueryError::Unsupported { path, message }) => (path, message),
            other => panic!("{value} should be unsupported, got {other:?}"),
        }
    }

    fn path_of(value: Value) -> String {
        match parse(&value) {
            Err(QueryError::Malformed { path, .. } | QueryError::Unsupported { path, .. }) => path,
            other => panic!("{value} should fail, got {other:?}"),
        }
    }

    fn fm(field: &str, value: &str, operator: Operator) -> Query {
        Query::Match {
            field: Some(field.into()),
            value: value.into(),
            operator,
            span: Span::default(),
        }
    }

    fn term_of(field: &str, values: &[&str]) -> Query {
        Query::Term {
            field: field.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            span: Span::default(),
        }
    }

    fn range_of(field: &str, lower: RangeBound, upper: RangeBound) -> Query {
        Query::Range {
            field: field.into(),
            lower,
            upper,
            span: Span::default(),
        }
    }

    fn exists_of(field: &str) -> Query {
        Query::Exists {
            field: field.into(),
            span: Span::default(),
        }
    }

    fn wildcard_of(field: &str, pattern: &str) -> Query {
        Query::Wildcard {
            field: Some(field.into()),
            pattern: pattern.into(),
            span: Span::default(),
        }
    }

    fn inc(value: &str) -> RangeBound {
        RangeBound::Included(value.into())
    }

    fn exc(value: &str) -> RangeBound {
        RangeBound::Excluded(value.into())
    }

    // ----- match_all, match_none -----

    #[test]
    fn match_all_and_none() {
        assert_eq!(ok(json!({"match_all": {}})), Query::MatchAll);
        assert_eq!(ok(json!({"match_all": {"boost": 1.2}})), Query::MatchAll);
        assert_eq!(ok(json!({"match_none": {}})), Query::MatchNone);
        assert_eq!(
            malformed_at(json!({"match_all": {"x": 1}})),
            (
                "query.match_all.x".into(),
                "unknown parameter `x` in `match_all`; expected one of `boost`, `_name`".into()
            )
        );
        assert_eq!(path_of(json!({"match_all": []})), "query.match_all");
    }

    // ----- the query object itself -----

    #[test]
    fn query_object_shape() {
        assert_eq!(
            malformed_at(json!("error")),
            (
                "query".into(),
                "expected a query object, found a string".into()
            )
        );
        let (path, message) = malformed_at(json!({}));
        assert_eq!(path, "query");
        assert!(message.contains("found an empty object"), "{message}");
        assert_eq!(
            malformed_at(json!({"match_all": {}, "term": {"a": 1}})),
            (
                "query".into(),
                "expected exactly one query type, found 2: `match_all`, `term`".into()
            )
        );
    }

    #[test]
    fn unsupported_query_types() {
        let (path, message) = unsupported_at(json!({"fuzzy": {"user": "ki"}}));
        assert_eq!(path, "query.fuzzy");
        assert!(message.starts_with("`fuzzy` queries are not supported; supported: bool,"));
        assert_eq!(
            path_of(json!({"bool": {"must": [{"term": {"a": 1}}, {"regexp": {"a": "b.*"}}]}})),
            "query.bool.must[1].regexp"
        );
        let (_, message) = unsupported_at(json!({"simple_query_string": {"query": "a"}}));
        assert!(message.contains("`simple_query_string`"), "{message}");
        let (path, message) = unsupported_at(json!({"frobnicate": {}}));
        assert_eq!(path, "query.frobnicate");
        assert!(
            message.starts_with("unknown query type `frobnicate`"),
            "{message}"
        );
    }

    // ----- match, match_phrase -----

    #[test]
    fn match_short_and_long_forms() {
        assert_eq!(
            ok(json!({"match": {"message": "connection refused"}})),
            fm("message", "connection refused", Operator::Or)
        );
        assert_eq!(
            ok(json!({"match": {"message": {"query": "a b", "operator": "and"}}})),
            fm("message", "a b", Operator::And)
        );
        assert_eq!(
            ok(json!({"match": {"message": {"query": "a b", "operator": "OR", "boost": 2}}})),
            fm("message", "a b", Operator::Or)
        );
        assert_eq!(
            ok(json!({"match": {"message": {"query": "a", "lenient": true}}})),
            fm("message", "a", Operator::Or)
        );
    }

    #[test]
    fn match_values_may_be_numbers_or_booleans() {
        assert_eq!(
            ok(json!({"match": {"http.status": 500}})),
            fm("http.status", "500", Operator::Or)
        );
        assert_eq!(
            ok(json!({"match": {"ratio": 0.5}})),
            fm("ratio", "0.5", Operator::Or)
        );
        assert_eq!(
            ok(json!({"match": {"ok": {"query": false}}})),
            fm("ok", "false", Operator::Or)
        );
    }

    #[test]
    fn match_errors() {
        assert_eq!(
            malformed_at(json!({"match": {}})),
            (
                "query.match".into(),
                "`match` needs a field, e.g. {\"match\": {\"message\": ...}}".into()
            )
        );
        assert_eq!(
            malformed_at(json!({"match": {"a": "x", "b": "y"}})),
            (
                "query.match".into(),
                "`match` takes exactly one field, found 2".into()
            )
        );
        assert_eq!(
            malformed_at(json!({"match": {"a": null}})),
            (
                "query.match.a".into(),
                "expected a string, number or boolean, found null".into()
            )
        );
        assert_eq!(
            malformed_at(json!({"match": {"a": {"operator": "and"}}})),
            ("query.match.a".into(), "`match` needs a `query`".into())
        );
        assert_eq!(
            malformed_at(json!({"match": {"a": {"query": "x", "operator": "xor"}}})),
            (
                "query.match.a.operator".into(),
                "expected `and` or `or`, found `xor`".into()
            )
        );
        assert_eq!(
            path_of(json!({"match": {"a": {"query": ["x"]}}})),
            "query.match.a.query"
        );
        assert_eq!(
            unsupported_at(json!({"match": {"a": {"query": "x", "fuzziness": "AUTO"}}})),
            (
                "query.match.a.fuzziness".into(),
                "the `fuzziness` parameter of `match` is not supported".into()
            )
        );
        let (path, message) = malformed_at(json!({"match": {"a": {"query": "x", "qurey": 1}}}));
        assert_eq!(path, "query.match.a.qurey");
        assert!(
            message.starts_with("unknown parameter `qurey` in `match`; expected one of `query`"),
            "{message}"
        );
        assert_eq!(
            malformed_at(json!({"match": {"": "x"}})),
            ("query.match".into(), "the field name is empty".into())
        );
    }

    #[test]
    fn match_phrase() {
        let phrase = Query::Phrase {
            field: Some("message".into()),
            text: "connection refused".into(),
            span: Span::default(),
        };
        assert_eq!(
            ok(json!({"match_phrase": {"message": "connection refused"}})),
            phrase
        );
        assert_eq!(
            ok(json!({"match_phrase": {"message": {"query": "connection refused", "slop": 0}}})),
            phrase
        );
        assert_eq!(
            path_of(json!({"match_phrase": {"message": {"query": "a b", "slop": 2}}})),
            "query.match_phrase.message.slop"
        );
        assert_eq!(
            malformed_at(json!({"match_phrase": {"message": {}}})),
            (
                "query.match_phrase.message".into(),
                "`match_phrase` needs a `query`".into()
            )
        );
        assert_eq!(
            unsupported_at(json!({"match_phrase": {"m": {"query": "a", "analyzer": "x"}}})).0,
            "query.match_phrase.m.analyzer"
        );
        assert_eq!(
            malformed_at(json!({"match_phrase": {"m": {"query": "a", "operator": "and"}}})).0,
            "query.match_phrase.m.operator"
        );
    }

    // ----- term, terms, ids -----

    #[test]
    fn term() {
        assert_eq!(
            ok(json!({"term": {"level": "ERROR"}})),
            term_of("level", &["ERROR"])
        );
        assert_eq!(
            ok(json!({"term": {"status": 404}})),
            term_of("status", &["404"])
        );
        assert_eq!(ok(json!({"term": {"ok": true}})), term_of("ok", &["true"]));
        assert_eq!(
            ok(json!({"term": {"level": {"value": "ERROR", "boost": 1.0}}})),
            term_of("level", &["ERROR"])
        );
        assert_eq!(
            ok(json!({"term": {"level": {"value": "ERROR", "case_insensitive": false}}})),
            term_of("level", &["ERROR"])
        );
    }

    #[test]
    fn term_errors() {
        assert_eq!(
            malformed_at(json!({"term": {"level": {}}})),
            ("query.term.level".into(), "`term` needs a `value`".into())
        );
        assert_eq!(
            unsupported_at(json!({"term": {"l": {"value": "x", "case_insensitive": true}}})),
            (
                "query.term.l.case_insensitive".into(),
                "`case_insensitive: true` is not supported in `term`".into()
            )
        );
        assert_eq!(
            path_of(json!({"term": {"l": {"value": "x", "case_insensitive": "yes"}}})),
            "query.term.l.case_insensitive"
        );
        assert_eq!(path_of(json!({"term": {"l": [1]}})), "query.term.l");
        assert_eq!(
            malformed_at(json!({"term": {"l": {"value": "x", "rewrite": "y"}}})).0,
            "query.term.l.rewrite"
        );
    }

    #[test]
    fn terms() {
        assert_eq!(
            ok(json!({"terms": {"level": ["ERROR", "FATAL"]}})),
            term_of("level", &["ERROR", "FATAL"])
        );
        assert_eq!(
            ok(json!({"terms": {"status": [500, 503], "boost": 1.0}})),
            term_of("status", &["500", "503"])
        );
        assert_eq!(ok(json!({"terms": {"status": []}})), Query::MatchNone);
    }

    #[test]
    fn terms_errors() {
        assert_eq!(
            malformed_at(json!({"terms": {"boost": 1.0}})),
            (
                "query.terms".into(),
                "`terms` takes exactly one field, found 0".into()
            )
        );
        assert_eq!(
            malformed_at(json!({"terms": {"a": [1], "b": [2]}})).1,
            "`terms` takes exactly one field, found 2"
        );
        assert_eq!(
            malformed_at(json!({"terms": {"a": "x"}})),
            (
                "query.terms.a".into(),
                "expected an array of values, found a string".into()
            )
        );
        assert_eq!(
            unsupported_at(json!({"terms": {"a": {"index": "i", "id": "1", "path": "p"}}})),
            (
                "query.terms.a".into(),
                "terms lookup is not supported".into()
            )
        );
        assert_eq!(
            path_of(json!({"terms": {"a": ["x", {"y": 1}]}})),
            "query.terms.a[1]"
        );
    }

    #[test]
    fn ids() {
        assert_eq!(
            ok(json!({"ids": {"values": ["a1", "b2"]}})),
            term_of("_id", &["a1", "b2"])
        );
        assert_eq!(ok(json!({"ids": {"values": []}})), Query::MatchNone);
        assert_eq!(
            malformed_at(json!({"ids": {}})),
            ("query.ids".into(), "`ids` needs `values`".into())
        );
        assert_eq!(path_of(json!({"ids": {"values": "a"}})), "query.ids.values");
        assert_eq!(
            path_of(json!({"ids": {"values": [null]}})),
            "query.ids.values[0]"
        );
        assert_eq!(path_of(json!({"ids": {"value": ["a"]}})), "query.ids.value");
    }

    // ----- range -----

    #[test]
    fn range_bounds() {
        assert_eq!(
            ok(json!({"range": {"http.status": {"gte": 500, "lt": 600}}})),
            range_of("http.status", inc("500"), exc("600"))
        );
        assert_eq!(
            ok(json!({"range": {"x": {"gt": "a", "lte": "b"}}})),
            range_of("x", exc("a"), inc("b"))
        );
        assert_eq!(
            ok(json!({"range": {"x": {"gte": 1.5}}})),
            range_of("x", inc("1.5"), RangeBound::Unbounded)
        );
        assert_eq!(
            ok(json!({"range": {"x": {"lt": 10, "gte": null}}})),
            range_of("x", RangeBound::Unbounded, exc("10"))
        );
        assert_eq!(ok(json!({"range": {"x": {}}})), exists_of("x"));
    }

    #[test]
    fn range_dates_format_and_time_zone() {
        assert_eq!(
            ok(json!({"range": {"@timestamp": {
                "gte": "2026-11-01T00:00:00Z",
                "lte": "now-1h",
                "format": "strict_date_optional_time",
                "time_zone": "UTC",
            }}})),
            range_of("@timestamp", inc("2026-11-01T00:00:00Z"), inc("now-1h"))
        );
        assert_eq!(
            ok(json!({"range": {"@timestamp": {
                "gte": 1_700_000_000_000_i64, "format": "epoch_millis", "time_zone": "+00:00"
            }}})),
            range_of("@timestamp", inc("1700000000000"), RangeBound::Unbounded)
        );
        assert!(parse(&json!({"range": {"t": {"gte": 1, "time_zone": "z"}}})).is_ok());
        assert_eq!(
            unsupported_at(json!({"range": {"t": {"gte": 1, "time_zone": "Europe/Paris"}}})),
            (
                "query.range.t.time_zone".into(),
                "time zone `Europe/Paris` is not supported: write dates in UTC or with an offset"
                    .into()
            )
        );
        assert_eq!(
            path_of(json!({"range": {"t": {"gte": 1, "format": 7}}})),
            "query.range.t.format"
        );
    }

    #[test]
    fn range_legacy_from_to() {
        assert_eq!(
            ok(json!({"range": {"x": {"from": 1, "to": 5}}})),
            range_of("x", inc("1"), inc("5"))
        );
        assert_eq!(
            ok(json!({"range": {"x": {
                "from": 1, "to": 5, "include_lower": false, "include_upper": false
            }}})),
            range_of("x", exc("1"), exc("5"))
        );
        assert_eq!(
            ok(json!({"range": {"x": {"from": null, "to": 5}}})),
            range_of("x", RangeBound::Unbounded, inc("5"))
        );
    }

    #[test]
    fn range_errors() {
        assert_eq!(
            path_of(
                json!({"bool": {"must": [{"match_all": {}}, {"range": {"http.status": 500}}]}})
            ),
            "query.bool.must[1].range.http.status"
        );
        assert_eq!(
            malformed_at(json!({"range": {"x": {"gt": 1, "gte": 2}}})),
            (
                "query.range.x".into(),
                "give only one of `gte` and `gt`".into()
            )
        );
        assert_eq!(
            malformed_at(json!({"range": {"x": {"from": 1, "gte": 2}}})).1,
            "give only one of `gte` and `from`"
        );
        assert_eq!(
            malformed_at(json!({"range": {"x": {"lt": 1, "to": 2, "lte": 3}}})).1,
            "give only one of `lte` and `lt` and `to`"
        );
        assert_eq!(
            malformed_at(json!({"range": {"x": {"gte": true}}})),
            (
                "query.range.x.gte".into(),
                "expected a string or a number, found a boolean".into()
            )
        );
        assert_eq!(
            path_of(json!({"range": {"x": {"from": 1, "include_lower": "no"}}})),
            "query.range.x.include_lower"
        );
        assert_eq!(
            path_of(json!({"range": {"x": {"gte": 1, "gtee": 2}}})),
            "query.range.x.gtee"
        );
        assert_eq!(path_of(json!({"range": {"x": {}, "y": {}}})), "query.range");
    }

    // ----- exists, prefix, wildcard -----

    #[test]
    fn exists() {
        assert_eq!(
            ok(json!({"exists": {"field": "user.id"}})),
            exists_of("user.id")
        );
        assert_eq!(
            malformed_at(json!({"exists": {}})),
            ("query.exists".into(), "`exists` needs a `field`".into())
        );
        assert_eq!(
            path_of(json!({"exists": {"field": 1}})),
            "query.exists.field"
        );
        assert_eq!(
            path_of(json!({"exists": {"field": ""}})),
            "query.exists.field"
        );
        assert_eq!(
            path_of(json!({"exists": {"fields": "a"}})),
            "query.exists.fields"
        );
    }

    #[test]
    fn prefix_is_an_escaped_wildcard() {
        assert_eq!(
            ok(json!({"prefix": {"host": "web-"}})),
            wildcard_of("host", "web-*")
        );
        assert_eq!(
            ok(json!({"prefix": {"host": {"value": r"a*b?c\d", "rewrite": "x"}}})),
            wildcard_of("host", r"a\*b\?c\\d*")
        );
        assert_eq!(
            path_of(json!({"prefix": {"host": {"value": "a", "case_insensitive": true}}})),
            "query.prefix.host.case_insensitive"
        );
        assert_eq!(
            malformed_at(json!({"prefix": {"host": {}}})).1,
            "`prefix` needs a `value`"
        );
    }

    #[test]
    fn wildcard_patterns() {
        assert_eq!(
            ok(json!({"wildcard": {"host": "web-*"}})),
            wildcard_of("host", "web-*")
        );
        assert_eq!(
            ok(json!({"wildcard": {"host": {"value": "w?b*"}}})),
            wildcard_of("host", "w?b*")
        );
        assert_eq!(
            ok(json!({"wildcard": {"host": {"wildcard": "w*"}}})),
            wildcard_of("host", "w*")
        );
        assert_eq!(
            ok(json!({"wildcard": {"host": r"a\*b\?\\c\d*\"}})),
            wildcard_of("host", r"a\*b\?\\cd*\\")
        );
        assert_eq!(
            path_of(json!({"wildcard": {"host": {"value": "a*", "boost": 1, "x": 1}}})),
            "query.wildcard.host.x"
        );
    }

    // ----- bool, constant_score -----

    #[test]
    fn bool_clauses_as_objects_or_arrays() {
        let query = ok(json!({"bool": {
            "must": {"match": {"message": "timeout"}},
            "filter": [{"term": {"level": "ERROR"}}, {"range": {"status": {"gte": 500}}}],
            "should": [{"term": {"a": 1}}, {"term": {"b": 2}}],
            "must_not": {"exists": {"field": "canary"}},
            "minimum_should_match": 1,
            "boost": 1.0,
        }}));
        assert_eq!(
            query,
            Query::Bool(BoolQuery {
                must: vec![fm("message", "timeout", Operator::Or)],
                filter: vec![
                    term_of("level", &["ERROR"]),
                    range_of("status", inc("500"), RangeBound::Unbounded),
                ],
                should: vec![term_of("a", &["1"]), term_of("b", &["2"])],
                must_not: vec![exists_of("canary")],
                minimum_should_match: Some(1),
            })
        );
        assert_eq!(ok(json!({"bool": {}})), Query::Bool(BoolQuery::default()));
        assert_eq!(
            ok(json!({"bool": {"must": []}})),
            Query::Bool(BoolQuery::default())
        );
    }

    #[test]
    fn minimum_should_match_forms() {
        let msm = |value: Value| match ok(json!({"bool": {"minimum_should_match": value}})) {
            Query::Bool(b) => b.minimum_should_match,
            other => panic!("{other:?}"),
        };
        assert_eq!(msm(json!(2)), Some(2));
        assert_eq!(msm(json!("2")), Some(2));
        assert_eq!(msm(json!(" 0 ")), Some(0));
        assert_eq!(
            unsupported_at(json!({"bool": {"minimum_should_match": "75%"}})),
            (
                "query.bool.minimum_should_match".into(),
                "`minimum_should_match: 75%` is not supported: give a count of clauses (0 or \
                 more)"
                    .into()
            )
        );
        assert_eq!(
            unsupported_at(json!({"bool": {"minimum_should_match": -1}})).0,
            "query.bool.minimum_should_match"
        );
        assert_eq!(
            unsupported_at(json!({"bool": {"minimum_should_match": "3<90%"}})).0,
            "query.bool.minimum_should_match"
        );
        assert_eq!(
            malformed_at(json!({"bool": {"minimum_should_match": 1.5}})),
            (
                "query.bool.minimum_should_match".into(),
                "expected a count of clauses, found `1.5`".into()
            )
        );
        assert_eq!(
            malformed_at(json!({"bool": {"minimum_should_match": "two"}})).1,
            "expected a count of clauses, found `two`"
        );
        assert_eq!(
            malformed_at(json!({"bool": {"minimum_should_match": true}})).1,
            "expected an integer, found a boolean"
        );
    }

    #[test]
    fn bool_errors() {
        assert_eq!(
            malformed_at(json!({"bool": {"must": "x"}})),
            (
                "query.bool.must".into(),
                "expected a query object or an array of them, found a string".into()
            )
        );
        assert_eq!(
            malformed_at(json!({"bool": {"should": [{"term": {"a": 1}}, 3]}})),
            (
                "query.bool.should[1]".into(),
                "expected a query object, found a number".into()
            )
        );
        assert_eq!(
            path_of(json!({"bool": {"must_not": {"term": {"a": {"vlaue": 1}}}}})),
            "query.bool.must_not.term.a.vlaue"
        );
        let (path, message) = malformed_at(json!({"bool": {"mustnt": []}}));
        assert_eq!(path, "query.bool.mustnt");
        assert!(
            message.starts_with("unknown parameter `mustnt` in `bool`"),
            "{message}"
        );
        assert_eq!(path_of(json!({"bool": []})), "query.bool");
    }

    #[test]
    fn constant_score_is_its_filter() {
        assert_eq!(
            ok(json!({"constant_score": {"filter": {"term": {"a": 1}}, "boost": 1.2}})),
            term_of("a", &["1"])
        );
        assert_eq!(
            malformed_at(json!({"constant_score": {}})),
            (
                "query.constant_score".into(),
                "`constant_score` needs a `filter`".into()
            )
        );
        assert_eq!(
            path_of(json!({"constant_score": {"filter": {"fuzzy": {"a": "b"}}}})),
            "query.constant_score.filter.fuzzy"
        );
        assert_eq!(
            path_of(json!({"constant_score": {"query": {"term": {"a": 1}}}})),
            "query.constant_score.query"
        );
    }

    #[test]
    fn depth_limit() {
        let nested = |levels: usize| {
            let mut query = json!({"match_all": {}});
            for _ in 1..levels {
                query = json!({"bool": {"must": [query]}});
            }
            query
        };
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        let (path, message) = malformed_at(nested(MAX_DEPTH + 1));
        assert_eq!(
            message,
            format!("queries nest deeper than {MAX_DEPTH} levels")
        );
        assert_eq!(path.matches(".bool.must[0]").count(), MAX_DEPTH);
        let mut scored = json!({"match_all": {}});
        for _ in 0..MAX_DEPTH {
            scored = json!({"constant_score": {"filter": scored}});
        }
        assert!(matches!(parse(&scored), Err(QueryError::Malformed { .. })));
    }

    // ----- query_string -----

    #[test]
    fn query_string_parses_lucene() {
        assert_eq!(
            ok(json!({"query_string": {"query": "level:ERROR AND status:>=500"}})),
            Query::Bool(BoolQuery {
                must: vec![
                    Query::Match {
                        field: Some("level".into()),
                        value: "ERROR".into(),
                        operator: Operator::Or,
                        span: Span { start: 0, end: 11 },
                    },
                    Query::Range {
                        field: "status".into(),
                        lower: inc("500"),
                        upper: RangeBound::Unbounded,
                        span: Span { start: 16, end: 28 },
                    },
                ],
                ..BoolQuery::default()
            })
        );
        assert_eq!(
            ok(json!({"query_string": {
                "query": "*", "analyze_wildcard": true, "lenient": true, "boost": 1
            }})),
            Query::MatchAll
        );
    }

    #[test]
    fn query_string_default_operator() {
        let Query::Bool(b) =
            ok(json!({"query_string": {"query": "a b", "default_operator": "AND"}}))
        else {
            panic!("expected a bool");
        };
        assert_eq!(b.must.len(), 2);
        assert!(b.must.iter().all(|q| matches!(
            q,
            Query::Match {
                operator: Operator::And,
                ..
            }
        )));
        assert_eq!(
            path_of(json!({"query_string": {"query": "a", "default_operator": "NAND"}})),
            "query.query_string.default_operator"
        );
    }

    #[test]
    fn query_string_default_field() {
        assert_eq!(
            ok(json!({"query_string": {"query": "timeout", "default_field": "message"}})),
            Query::Match {
                field: Some("message".into()),
                value: "timeout".into(),
                operator: Operator::Or,
                span: Span { start: 0, end: 7 },
            }
        );
        // Explicit fields stay; `*` means the schema's default fields.
        let Query::Bool(b) = ok(json!({"query_string": {
            "query": "a* OR level:x OR \"b c\"", "default_field": "message"
        }})) else {
            panic!("expected a bool");
        };
        assert!(matches!(&b.should[0], Query::Wildcard { field: Some(f), .. } if f == "message"));
        assert!(matches!(&b.should[1], Query::Match { field: Some(f), .. } if f == "level"));
        assert!(matches!(&b.should[2], Query::Phrase { field: Some(f), .. } if f == "message"));
        assert!(matches!(
            ok(json!({"query_string": {"query": "a", "default_field": "*"}})),
            Query::Match { field: None, .. }
        ));
    }

    #[test]
    fn query_string_several_fields() {
        let query = ok(json!({"query_string": {
            "query": "NOT timeout", "fields": ["message", "title^2"]
        }}));
        let Query::Bool(negation) = query else {
            panic!("expected a bool");
        };
        assert_eq!(negation.must, vec![Query::MatchAll]);
        let [Query::Bool(either)] = negation.must_not.as_slice() else {
            panic!("expected one bool in must_not");
        };
        let fields: Vec<_> = either
            .should
            .iter()
            .map(|q| match q {
                Query::Match { field, .. } => field.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(fields, vec![Some("message".into()), Some("title".into())]);
        assert!(matches!(
            ok(json!({"query_string": {"query": "a", "fields": ["*", "x"]}})),
            Query::Match { field: None, .. }
        ));
        assert!(matches!(
            ok(json!({"query_string": {"query": "a", "fields": []}})),
            Query::Match { field: None, .. }
        ));
    }

    #[test]
    fn query_string_errors() {
        assert_eq!(
            parse(&json!({"query_string": {"query": "status:"}})),
            Err(QueryError::Syntax {
                position: 7,
                message: "expected a value after `status:` (in `query.query_string.query`)".into()
            })
        );
        assert_eq!(
            malformed_at(json!({"query_string": {}})),
            (
                "query.query_string".into(),
                "`query_string` needs a `query`".into()
            )
        );
        assert_eq!(
            path_of(json!({"query_string": {"query": 5}})),
            "query.query_string.query"
        );
        assert_eq!(
            malformed_at(json!({"query_string": {
                "query": "a", "default_field": "x", "fields": ["y"]
            }})),
            (
                "query.query_string".into(),
                "give `default_field` or `fields`, not both".into()
            )
        );
        assert_eq!(
            path_of(json!({"query_string": {"query": "a", "fields": "x"}})),
            "query.query_string.fields"
        );
        assert_eq!(
            path_of(json!({"query_string": {"query": "a", "fields": ["x", 1]}})),
            "query.query_string.fields[1]"
        );
        assert_eq!(
            path_of(json!({"query_string": {"query": "a", "default_field": ""}})),
            "query.query_string.default_field"
        );
        assert_eq!(
            unsupported_at(json!({"query_string": {"query": "a", "fields": ["http.*"]}})),
            (
                "query.query_string".into(),
                "field patterns such as `http.*` are not supported; name the fields".into()
            )
        );
        assert_eq!(
            unsupported_at(json!({"query_string": {"query": "a", "fuzziness": 2}})).0,
            "query.query_string.fuzziness"
        );
        assert_eq!(
            malformed_at(json!({"query_string": {"query": "a", "qeury": "b"}})).0,
            "query.query_string.qeury"
        );
    }

    #[test]
    fn query_string_time_zone_matters_only_with_ranges() {
        assert!(
            parse(&json!({"query_string": {"query": "level:ERROR", "time_zone": "Europe/Paris"}}))
                .is_ok()
        );
        assert!(
            parse(&json!({"query_string": {"query": "t:>now-1h", "time_zone": "UTC"}})).is_ok()
        );
        assert_eq!(
            unsupported_at(json!({"query_string": {
                "query": "a AND t:[2026-01-01 TO now]", "time_zone": "Europe/Paris"
            }}))
            .0,
            "query.query_string.time_zone"
        );
        assert_eq!(
            path_of(json!({"query_string": {"query": "t:>1", "time_zone": 1}})),
            "query.query_string.time_zone"
        );
    }

    #[test]
    fn wildcard_helpers() {
        assert_eq!(escape_wildcards(r"a*?\b"), r"a\*\?\\b");
        assert_eq!(normalize_wildcard(r"\a\*\?\\*"), r"a\*\?\\*");
        assert_eq!(normalize_wildcard("\\"), r"\\");
    }

    // ----- properties -----

    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "bool",
            "must",
            "filter",
            "should",
            "must_not",
            "minimum_should_match",
            "match",
            "match_all",
            "match_phrase",
            "term",
            "terms",
            "range",
            "gte",
            "lt",
            "from",
            "to",
            "exists",
            "field",
            "query",
            "query_string",
            "fields",
            "default_field",
            "prefix",
            "wildcard",
            "value",
            "ids",
            "values",
            "constant_score",
            "fuzzy",
            "time_zone",
            "operator",
            "status",
            "",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z:*()\\[\\] ]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..3).prop_map(|entries| {
                    Value::Object(
                        entries
                            .into_iter()
                            .map(|(key, value)| (key.to_owned(), value))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(value in json_value()) {
            match parse(&value) {
                Ok(_) => {}
                Err(QueryError::Malformed { path, .. } | QueryError::Unsupported { path, .. }) => {
                    prop_assert!(path.starts_with("query"));
                }
                Err(QueryError::Syntax { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
        }
    }
}
