//! From the query as written to a [`Filter`]: names through the tenant's dictionary, values
//! coerced with ingest's rules, so that `user_id:123` finds what ingest stored under
//! `userId` as the keyword `"123"`.

use std::ops::Bound;

use caravan_normalize::{TypedValue, coerce_query_value};
use caravan_schema::{Dictionary, FieldDef, FieldType};

use crate::ast::{BoolQuery, Operator, Query, RangeBound, Span};
use crate::error::QueryError;
use crate::filter::{Filter, ID_KEY, TIMESTAMP_KEY};
use crate::time::parse_time;

/// How many keys an unknown-field error suggests.
const SUGGESTIONS_MAX: usize = 3;

/// Resolves `query` against `dictionary` (`None`: the tenant has no schema yet, and only
/// `@timestamp` and `_id` can be searched). `now_ms` anchors date math (`now-15m`).
pub fn resolve(
    query: &Query,
    dictionary: Option<&Dictionary>,
    now_ms: i64,
) -> Result<Filter, QueryError> {
    Resolver { dictionary, now_ms }.query(query)
}

/// A field named in a query, resolved.
#[derive(Clone)]
enum Target<'d> {
    Timestamp,
    Id,
    /// `key` is the dictionary key, or the name itself for a map's free key (`labels.team`).
    Key {
        key: String,
        def: &'d FieldDef,
    },
}

struct Resolver<'d> {
    dictionary: Option<&'d Dictionary>,
    now_ms: i64,
}

impl<'d> Resolver<'d> {
    fn query(&self, query: &Query) -> Result<Filter, QueryError> {
        match query {
            Query::MatchAll => Ok(Filter::All),
            Query::MatchNone => Ok(Filter::None),
            Query::Match {
                field,
                value,
                operator,
                span,
            } => self.each_target(field.as_deref(), value, *span, |target, explicit| {
                self.matching(target, value, *operator, *span, explicit)
            }),
            Query::Phrase { field, text, span } => {
                self.each_target(field.as_deref(), text, *span, |target, explicit| {
                    self.phrase(target, text, *span, explicit)
                })
            }
            Query::Term {
                field,
                values,
                span,
            } => {
                let target = self.target(field, *span)?;
                let filters = values
                    .iter()
                    .map(|value| self.term(target.clone(), value, *span))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Filter::any(filters))
            }
            Query::Wildcard {
                field,
                pattern,
                span,
            } => self.each_target(field.as_deref(), pattern, *span, |target, explicit| {
                self.wildcard(target, pattern, *span, explicit)
            }),
            Query::Range {
                field,
                lower,
                upper,
                span,
            } => {
                let target = self.target(field, *span)?;
                self.range(target, lower, upper, *span)
            }
            Query::Exists { field, span } => Ok(match self.target(field, *span)? {
                Target::Timestamp | Target::Id => Filter::All,
                Target::Key { key, def } => Filter::Exists {
                    key,
                    field_type: def.field_type,
                },
            }),
            Query::Bool(bool_query) => self.bool(bool_query),
        }
    }

    fn bool(&self, query: &BoolQuery) -> Result<Filter, QueryError> {
        let resolve_all = |queries: &[Query]| -> Result<Vec<Filter>, QueryError> {
            queries.iter().map(|query| self.query(query)).collect()
        };
        let mut must = resolve_all(&query.must)?;
        must.extend(resolve_all(&query.filter)?);
        let should = resolve_all(&query.should)?;
        let must_not = resolve_all(&query.must_not)?;
        let minimum_should_match = match query.minimum_should_match {
            Some(count) => count,
            None if must.is_empty() && !should.is_empty() => 1,
            None => 0,
        };
        if minimum_should_match as usize > should.len() {
            return Ok(Filter::None);
        }
        if must.contains(&Filter::None) || must_not.contains(&Filter::All) {
            return Ok(Filter::None);
        }
        let must_not: Vec<Filter> = must_not
            .into_iter()
            .filter(|f| *f != Filter::None)
            .collect();
        if minimum_should_match == 0 && must_not.is_empty() {
            return Ok(Filter::all(must));
        }
        if minimum_should_match == 1 && must.is_empty() && must_not.is_empty() {
            return Ok(Filter::any(should));
        }
        Ok(Filter::Bool {
            must: must.into_iter().filter(|f| *f != Filter::All).collect(),
            should: if minimum_should_match == 0 {
                Vec::new()
            } else {
                should
            },
            must_not,
            minimum_should_match,
        })
    }

    /// Runs `leaf` on the named field, or on each default field for `None`. A value that
    /// does not fit an explicitly named field is an error; a default field it does not fit
    /// is skipped (`timeout` is not a status code).
    fn each_target(
        &self,
        field: Option<&str>,
        word: &str,
        span: Span,
        leaf: impl Fn(Target<'d>, bool) -> Result<Option<Filter>, QueryError>,
    ) -> Result<Filter, QueryError> {
        if let Some(field) = field {
            let target = self.target(field, span)?;
            return Ok(leaf(target, true)?.unwrap_or(Filter::None));
        }
        let defaults: Vec<&FieldDef> = self
            .dictionary
            .map(|dictionary| {
                dictionary
                    .default_fields()
                    .filter(|def| def.indexed)
                    .collect()
            })
            .unwrap_or_default();
        if defaults.is_empty() {
            return Err(QueryError::NoDefaultFields {
                word: word.to_owned(),
                span: written(span),
            });
        }
        let mut filters = Vec::new();
        for def in defaults {
            let target = Target::Key {
                key: def.key.clone(),
                def,
            };
            if let Some(filter) = leaf(target, false)? {
                filters.push(filter);
            }
        }
        Ok(Filter::any(filters))
    }

    fn target(&self, field: &str, span: Span) -> Result<Target<'d>, QueryError> {
        if field == ID_KEY {
            return Ok(Target::Id);
        }
        let def = self
            .dictionary
            .and_then(|dictionary| dictionary.resolve(field));
        let Some(def) = def else {
            if field == TIMESTAMP_KEY {
                return Ok(Target::Timestamp);
            }
            return Err(QueryError::UnknownField {
                field: field.to_owned(),
                span: written(span),
                suggestions: self.suggestions(field),
            });
        };
        // Only map value definitions have a `*` in their key: a free key is its own name.
        let key = if def.key.ends_with(".*") {
            field
        } else {
            def.key.as_str()
        };
        if def.key == TIMESTAMP_KEY {
            return Ok(Target::Timestamp);
        }
        let not_searchable = |reason: String| QueryError::NotSearchable {
            field: field.to_owned(),
            span: written(span),
            reason,
        };
        match def.field_type {
            FieldType::Object | FieldType::Map | FieldType::Struct => {
                return Err(not_searchable(format!(
                    "it holds other keys (a {}); name one of them (`{key}.…`)",
                    def.field_type
                )));
            }
            FieldType::Binary => {
                return Err(not_searchable("binary values are never indexed".into()));
            }
            _ if !def.indexed => {
                return Err(not_searchable(
                    "the schema declares it `index: false`".into(),
                ));
            }
            _ => {}
        }
        Ok(Target::Key {
            key: key.to_owned(),
            def,
        })
    }

    fn suggestions(&self, field: &str) -> Vec<String> {
        let Some(dictionary) = self.dictionary else {
            return Vec::new();
        };
        let wanted = field.to_ascii_lowercase();
        let last_segment = |name: &str| name.rsplit('.').next().unwrap_or(name).to_owned();
        let mut scored: Vec<(usize, &str)> = Vec::new();
        for def in dictionary.fields() {
            if !def.field_type.is_value() || !def.indexed {
                continue;
            }
            let names =
                std::iter::once(def.key.as_str()).chain(def.aliases.iter().map(String::as_str));
            let best = names
                .map(|name| {
                    let name = name.to_ascii_lowercase();
                    let whole = strsim::levenshtein(&wanted, &name);
                    let tail = strsim::levenshtein(&wanted, &last_segment(&name)) + 1;
                    whole.min(tail)
                })
                .min()
                .unwrap_or(usize::MAX);
            let tolerance = (wanted.chars().count() / 3).max(2);
            if best <= tolerance {
                scored.push((best, def.key.as_str()));
            }
        }
        scored.sort();
        scored
            .into_iter()
            .take(SUGGESTIONS_MAX)
            .map(|(_, key)| key.to_owned())
            .collect()
    }

    fn matching(
        &self,
        target: Target<'d>,
        value: &str,
        operator: Operator,
        span: Span,
        explicit: bool,
    ) -> Result<Option<Filter>, QueryError> {
        match target {
            Target::Key { key, def } if def.field_type == FieldType::Text => {
                Ok(Some(Filter::Match {
                    key,
                    text: value.to_owned(),
                    operator,
                }))
            }
            _ => self.exact(target, value, span, explicit),
        }
    }

    fn phrase(
        &self,
        target: Target<'d>,
        text: &str,
        span: Span,
        explicit: bool,
    ) -> Result<Option<Filter>, QueryError> {
        match target {
            Target::Key { key, def } if def.field_type == FieldType::Text => {
                Ok(Some(Filter::Phrase {
                    key,
                    text: text.to_owned(),
                }))
            }
            _ => self.exact(target, text, span, explicit),
        }
    }

    fn term(&self, target: Target<'d>, value: &str, span: Span) -> Result<Filter, QueryError> {
        match target {
            Target::Key { key, def } if def.field_type == FieldType::Text => Ok(Filter::Exact {
                key,
                value: TypedValue::Text(value.to_owned()),
            }),
            _ => Ok(self
                .exact(target, value, span, true)?
                .unwrap_or(Filter::None)),
        }
    }

    /// The value exactly, coerced to the key's type. A day alone on a date means the day.
    fn exact(
        &self,
        target: Target<'d>,
        value: &str,
        span: Span,
        explicit: bool,
    ) -> Result<Option<Filter>, QueryError> {
        let (key, def) = match target {
            Target::Id => return Ok(Some(Filter::Id(vec![value.to_owned()]))),
            Target::Timestamp => (TIMESTAMP_KEY.to_owned(), None),
            Target::Key { key, def } => (key, Some(def)),
        };
        let is_date = def.is_none_or(|def| def.field_type == FieldType::Date);
        if is_date {
            let from = match parse_time(value, self.now_ms) {
                Ok(from) => from,
                Err(_) if !explicit => return Ok(None),
                Err(reason) => return Err(invalid(&key, span, reason)),
            };
            if is_calendar_day(value) {
                return Ok(Some(Filter::Range {
                    key,
                    lower: Bound::Included(TypedValue::Date(from)),
                    upper: Bound::Excluded(TypedValue::Date(from + DAY_MS)),
                }));
            }
            return Ok(Some(Filter::Exact {
                key,
                value: TypedValue::Date(from),
            }));
        }
        let def = def.unwrap_or_else(|| unreachable!("only @timestamp has no definition"));
        match coerce_query_value(value, def) {
            Ok(Some(value)) => Ok(Some(Filter::Exact { key, value })),
            Ok(None) => Ok(None),
            Err(_) if !explicit => Ok(None),
            Err(reason) => Err(invalid(&key, span, format!("`{value}`: {reason}"))),
        }
    }

    fn wildcard(
        &self,
        target: Target<'d>,
        pattern: &str,
        span: Span,
        explicit: bool,
    ) -> Result<Option<Filter>, QueryError> {
        match target {
            Target::Key { key, def }
                if matches!(def.field_type, FieldType::Keyword | FieldType::Text) =>
            {
                let pattern = if def.field_type == FieldType::Text {
                    pattern.to_lowercase()
                } else {
                    pattern.to_owned()
                };
                Ok(Some(Filter::Wildcard {
                    key,
                    field_type: def.field_type,
                    pattern,
                }))
            }
            _ if !explicit => Ok(None),
            Target::Key { key, def } => Err(invalid(
                &key,
                span,
                format!(
                    "wildcards work on keyword and text fields, and `{key}` is a {}",
                    def.field_type
                ),
            )),
            Target::Timestamp | Target::Id => Err(invalid(
                target_name(&target),
                span,
                "wildcards work on keyword and text fields".into(),
            )),
        }
    }

    fn range(
        &self,
        target: Target<'d>,
        lower: &RangeBound,
        upper: &RangeBound,
        span: Span,
    ) -> Result<Filter, QueryError> {
        let (key, field_type, def) = match target {
            Target::Id => {
                return Err(invalid(ID_KEY, span, "ranges do not apply to `_id`".into()));
            }
            Target::Timestamp => (TIMESTAMP_KEY.to_owned(), FieldType::Date, None),
            Target::Key { key, def } => (key, def.field_type, Some(def)),
        };
        let key = key.as_str();
        if matches!(field_type, FieldType::Text | FieldType::Boolean) {
            return Err(invalid(
                key,
                span,
                format!(
                    "ranges work on numbers, dates and keywords, and `{key}` is a {field_type}"
                ),
            ));
        }
        let bound = |bound: &RangeBound| -> Result<Bound<TypedValue>, QueryError> {
            let typed = |text: &str| -> Result<TypedValue, QueryError> {
                if field_type == FieldType::Date {
                    return parse_time(text, self.now_ms)
                        .map(TypedValue::Date)
                        .map_err(|reason| invalid(key, span, reason));
                }
                let def = def.unwrap_or_else(|| unreachable!("only @timestamp has no definition"));
                match coerce_query_value(text, def) {
                    Ok(Some(value)) => Ok(value),
                    Ok(None) => Err(invalid(key, span, format!("`{text}` cannot be compared"))),
                    Err(reason) => Err(invalid(key, span, format!("`{text}`: {reason}"))),
                }
            };
            Ok(match bound {
                RangeBound::Unbounded => Bound::Unbounded,
                RangeBound::Included(text) => Bound::Included(typed(text)?),
                RangeBound::Excluded(text) => Bound::Excluded(typed(text)?),
            })
        };
        Ok(Filter::Range {
            key: key.to_owned(),
            lower: bound(lower)?,
            upper: bound(upper)?,
        })
    }
}

const DAY_MS: i64 = 86_400_000;

fn is_calendar_day(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-'
}

fn target_name<'t>(target: &'t Target<'_>) -> &'t str {
    match target {
        Target::Timestamp => TIMESTAMP_KEY,
        Target::Id => ID_KEY,
        Target::Key { key, .. } => key,
    }
}

fn invalid(key: &str, span: Span, reason: String) -> QueryError {
    QueryError::InvalidValue {
        field: key.to_owned(),
        span: written(span),
        reason,
    }
}

/// The span of a node written in a query string; `None` for a node read from JSON.
fn written(span: Span) -> Option<Span> {
    (span != Span::default()).then_some(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lucene::parse;
    use caravan_schema::{CompileOptions, compile_files};

    const NOW: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z

    fn dictionary() -> Dictionary {
        let schema = r#"
            syntax = "proto3";
            import "caravan/options.proto";
            import "google/protobuf/timestamp.proto";
            message LogSchema {
              google.protobuf.Timestamp timestamp = 1 [(caravan.field) = { name: "@timestamp" }];
              string message = 2 [(caravan.field) = { text: true, default_field: true }];
              string userId = 3 [(caravan.field) = { aliases: ["user_id"], default_field: true }];
              Http http = 4;
              Level level = 5;
              string payload = 6 [(caravan.field) = { index: false }];
              map<string, string> labels = 7;
              bool sampled = 8;
            }
            message Http { int32 status = 1; double duration = 2; }
            enum Level { LEVEL_UNSPECIFIED = 0; INFO = 1; ERROR = 2; }
        "#;
        compile_files([("log_schema.proto", schema)], &CompileOptions::default())
            .expect("schema compiles")
    }

    fn resolved(query: &str) -> Result<Filter, QueryError> {
        resolve(&parse(query).expect("parses"), Some(&dictionary()), NOW)
    }

    fn exact(key: &str, value: TypedValue) -> Filter {
        Filter::Exact {
            key: key.into(),
            value,
        }
    }

    #[test]
    fn aliases_and_coercion_reach_what_ingest_stored() {
        let user = exact("userId", TypedValue::Keyword("123".into()));
        assert_eq!(resolved("user_id:123"), Ok(user.clone()));
        assert_eq!(resolved("userId:\"123\""), Ok(user));
        assert_eq!(
            resolved("http.status:500"),
            Ok(exact("http.status", TypedValue::Long(500)))
        );
        assert_eq!(
            resolved("sampled:true"),
            Ok(exact("sampled", TypedValue::Boolean(true)))
        );
        assert_eq!(
            resolved("labels.team:payments"),
            Ok(exact("labels.team", TypedValue::Keyword("payments".into())))
        );
    }

    #[test]
    fn bare_words_search_the_default_fields_they_fit() {
        let Ok(Filter::Bool { should, .. }) = resolved("timeout") else {
            panic!("a bare word over two default fields is a disjunction")
        };
        assert!(should.contains(&Filter::Match {
            key: "message".into(),
            text: "timeout".into(),
            operator: Operator::Or,
        }));
        assert!(should.contains(&exact("userId", TypedValue::Keyword("timeout".into()))));
        let empty = resolve(&parse("timeout").expect("parses"), None, NOW);
        assert!(
            matches!(empty, Err(QueryError::NoDefaultFields { .. })),
            "{empty:?}"
        );
    }

    #[test]
    fn unknown_and_unsearchable_fields_are_errors_with_suggestions() {
        let Err(QueryError::UnknownField {
            field,
            span,
            suggestions,
        }) = resolved("level:ERROR AND usrId:1")
        else {
            panic!("unknown field")
        };
        assert_eq!(
            (field.as_str(), span),
            ("usrId", Some(Span { start: 16, end: 23 }))
        );
        assert_eq!(suggestions, ["userId"]);
        let Err(error) = resolved("level:ERROR AND usrId:1") else {
            panic!("unknown field")
        };
        assert_eq!(error.span(), Some(Span { start: 16, end: 23 }));
        let syntax = parse("level:(ERROR").expect_err("unbalanced");
        assert_eq!(syntax.span(), Some(Span { start: 6, end: 6 }));
        let Err(QueryError::UnknownField { suggestions, .. }) = resolved("status:500") else {
            panic!("unknown field")
        };
        assert_eq!(suggestions, ["http.status"], "the last segment counts");
        let error = resolved("payload:x").expect_err("not indexed");
        assert!(error.to_string().contains("index: false"), "{error}");
        let error = resolved("http:x").expect_err("an object");
        assert!(error.to_string().contains("http.…"), "{error}");
    }

    #[test]
    fn values_that_do_not_fit_a_named_field_are_errors() {
        let error = resolved("http.status:abc").expect_err("not a long");
        assert!(
            error.to_string().contains("http.status") && error.to_string().contains("abc"),
            "{error}"
        );
        let error = resolved("http.status:5*").expect_err("no wildcard on longs");
        assert!(error.to_string().contains("wildcards"), "{error}");
        let error = resolved("message:[a TO b]").expect_err("no range on text");
        assert!(error.to_string().contains("ranges"), "{error}");
        let error = resolved("level:DEBUG").expect_err("not an enum value");
        assert!(error.to_string().contains("level"), "{error}");
    }

    #[test]
    fn ranges_and_times() {
        assert_eq!(
            resolved("http.status:[500 TO 599]"),
            Ok(Filter::Range {
                key: "http.status".into(),
                lower: Bound::Included(TypedValue::Long(500)),
                upper: Bound::Included(TypedValue::Long(599)),
            })
        );
        let recent = resolved("@timestamp:>=now-15m").expect("resolves");
        assert_eq!(recent.timestamp_bounds(), (NOW - 900_000, i64::MAX));
        let day = resolved("@timestamp:2026-11-22").expect("resolves");
        assert_eq!(
            day.timestamp_bounds(),
            (NOW - 36_000_000, NOW - 36_000_000 + 86_400_000)
        );
        let both = resolved("level:ERROR AND @timestamp:[now-1h TO now]").expect("resolves");
        assert_eq!(both.timestamp_bounds(), (NOW - 3_600_000, NOW + 1));
        let either = resolved("level:ERROR OR @timestamp:>now").expect("resolves");
        assert_eq!(
            either.timestamp_bounds(),
            (i64::MIN, i64::MAX),
            "not required"
        );
    }

    #[test]
    fn boolean_structure_is_kept() {
        let filter = resolved("level:ERROR AND NOT http.status:200").expect("resolves");
        assert_eq!(
            filter,
            Filter::Bool {
                must: vec![exact("level", TypedValue::Keyword("ERROR".into()))],
                should: Vec::new(),
                must_not: vec![exact("http.status", TypedValue::Long(200))],
                minimum_should_match: 0,
            }
        );
        assert_eq!(resolved("*"), Ok(Filter::All));
        assert_eq!(
            resolved("_exists_:http.status"),
            Ok(Filter::Exists {
                key: "http.status".into(),
                field_type: FieldType::Long,
            })
        );
    }
}
