//! A [`Filter`] (resolved against the dictionary by `caravan-query`) as a tantivy query over
//! the partition schema (`schema.rs`): keywords and booleans under `k`, numbers and dates as
//! columns under `n`, words of text under `t`, the event time in `@timestamp`.

use std::ops::Bound;

use caravan_query::{Filter, Operator, TIMESTAMP_KEY};
use caravan_schema::FieldType;
use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, ExistsQuery, Occur, PhraseQuery, Query, RangeQuery,
    RegexQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::{TextAnalyzer, TokenizerManager};

use crate::document::FieldValue;
use crate::error::LogStoreError;
use crate::schema::{FIELD_KEYS, FIELD_NUMBERS, LogSchema};

/// Builds tantivy queries for one schema.
pub(crate) struct QueryBuilder<'s> {
    schema: &'s LogSchema,
    analyzer: TextAnalyzer,
}

impl<'s> QueryBuilder<'s> {
    pub(crate) fn new(schema: &'s LogSchema) -> QueryBuilder<'s> {
        // The tokenizer text keys are indexed with (`schema.rs`), so words match.
        let analyzer = TokenizerManager::default()
            .get("default")
            .unwrap_or_else(|| TextAnalyzer::from(tantivy::tokenizer::SimpleTokenizer::default()));
        QueryBuilder { schema, analyzer }
    }

    /// The query of `filter`.
    pub(crate) fn build(&mut self, filter: &Filter) -> Result<Box<dyn Query>, LogStoreError> {
        let schema = self.schema;
        Ok(match filter {
            Filter::All => Box::new(AllQuery),
            Filter::None => Box::new(EmptyQuery),
            Filter::Id(ids) => Box::new(TermSetQuery::new(ids.iter().map(|id| schema.id_term(id)))),
            Filter::Exact { key, value } if key == TIMESTAMP_KEY => {
                let ms = timestamp_ms(value)?;
                Box::new(RangeQuery::new(
                    Bound::Included(schema.timestamp_term(ms)),
                    Bound::Included(schema.timestamp_term(ms)),
                ))
            }
            Filter::Exact { key, value } => schema.exact_query(key, value),
            Filter::Match {
                key,
                text,
                operator,
            } => {
                let words = self.words(text);
                let occur = match operator {
                    Operator::Or => Occur::Should,
                    Operator::And => Occur::Must,
                };
                one_or_all(
                    words
                        .iter()
                        .map(|word| term_query(schema.text_term(key, word)))
                        .collect(),
                    occur,
                )
            }
            Filter::Phrase { key, text } => {
                let terms: Vec<Term> = self
                    .words(text)
                    .iter()
                    .map(|word| schema.text_term(key, word))
                    .collect();
                match terms.len() {
                    0 => Box::new(EmptyQuery),
                    1 => term_query(terms.into_iter().next().unwrap_or_else(|| unreachable!())),
                    _ => Box::new(PhraseQuery::new(terms)),
                }
            }
            Filter::Wildcard {
                key,
                field_type,
                pattern,
            } => {
                let field = self.field_of(*field_type);
                let regex = format!("{}{}", escape(&json_prefix(field, key)), wildcard(pattern));
                Box::new(RegexQuery::from_pattern(&regex, field).map_err(|e| {
                    LogStoreError::InvalidSearch(format!("wildcard `{pattern}` on `{key}`: {e}"))
                })?)
            }
            Filter::Range { key, lower, upper } => self.range(key, lower, upper)?,
            Filter::Exists { key, field_type } => match field_type {
                FieldType::Text => {
                    let field = schema.text;
                    let regex = format!("{}.*", escape(&json_prefix(field, key)));
                    Box::new(RegexQuery::from_pattern(&regex, field).map_err(|e| {
                        LogStoreError::InvalidSearch(format!("exists on `{key}`: {e}"))
                    })?)
                }
                FieldType::Keyword | FieldType::Boolean => {
                    Box::new(ExistsQuery::new(format!("{FIELD_KEYS}.{key}"), false))
                }
                _ => Box::new(ExistsQuery::new(format!("{FIELD_NUMBERS}.{key}"), false)),
            },
            Filter::Bool {
                must,
                should,
                must_not,
                minimum_should_match,
            } => {
                let mut clauses = Vec::new();
                for filter in must {
                    clauses.push((Occur::Must, self.build(filter)?));
                }
                for filter in must_not {
                    clauses.push((Occur::MustNot, self.build(filter)?));
                }
                let required = *minimum_should_match as usize;
                if required > 0 {
                    let should = should
                        .iter()
                        .map(|filter| Ok((Occur::Should, self.build(filter)?)))
                        .collect::<Result<Vec<_>, LogStoreError>>()?;
                    let should = if required > 1 {
                        BooleanQuery::with_minimum_required_clauses(should, required)
                    } else {
                        BooleanQuery::new(should)
                    };
                    clauses.push((Occur::Must, Box::new(should)));
                }
                if !clauses.iter().any(|(occur, _)| *occur == Occur::Must) {
                    // Only exclusions: tantivy needs something to exclude from.
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Box::new(BooleanQuery::new(clauses))
            }
        })
    }

    fn range(
        &self,
        key: &str,
        lower: &Bound<FieldValue>,
        upper: &Bound<FieldValue>,
    ) -> Result<Box<dyn Query>, LogStoreError> {
        let schema = self.schema;
        let term = |value: &FieldValue| -> Result<Term, LogStoreError> {
            if key == TIMESTAMP_KEY {
                return Ok(schema.timestamp_term(timestamp_ms(value)?));
            }
            Ok(match value {
                FieldValue::Keyword(text) => schema.keyword_term(key, text),
                FieldValue::Long(value) => schema.long_term(key, *value),
                FieldValue::Double(value) => schema.double_term(key, *value),
                FieldValue::Date(ms) => schema.date_term(key, *ms),
                other => {
                    return Err(LogStoreError::InvalidSearch(format!(
                        "a range on `{key}` cannot use {other:?}"
                    )));
                }
            })
        };
        let bound = |bound: &Bound<FieldValue>| -> Result<Bound<Term>, LogStoreError> {
            Ok(match bound {
                Bound::Included(value) => Bound::Included(term(value)?),
                Bound::Excluded(value) => Bound::Excluded(term(value)?),
                Bound::Unbounded => Bound::Unbounded,
            })
        };
        let (lower, upper) = (bound(lower)?, bound(upper)?);
        if matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded)) {
            // `field:[* TO *]` means the field exists.
            return Ok(Box::new(ExistsQuery::new(
                if key == TIMESTAMP_KEY {
                    TIMESTAMP_KEY.to_owned()
                } else {
                    format!("{FIELD_NUMBERS}.{key}")
                },
                false,
            )));
        }
        Ok(Box::new(RangeQuery::new(lower, upper)))
    }

    fn field_of(&self, field_type: FieldType) -> Field {
        match field_type {
            FieldType::Text => self.schema.text,
            _ => self.schema.keys,
        }
    }

    /// The words of `text` as the `default` tokenizer indexes them.
    fn words(&mut self, text: &str) -> Vec<String> {
        let mut stream = self.analyzer.token_stream(text);
        let mut words = Vec::new();
        while let Some(token) = stream.next() {
            words.push(token.text.clone());
        }
        words
    }
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

fn one_or_all(mut queries: Vec<Box<dyn Query>>, occur: Occur) -> Box<dyn Query> {
    match queries.len() {
        0 => Box::new(EmptyQuery),
        1 => queries.pop().unwrap_or_else(|| Box::new(EmptyQuery)),
        _ => Box::new(BooleanQuery::new(
            queries.into_iter().map(|query| (occur, query)).collect(),
        )),
    }
}

fn timestamp_ms(value: &FieldValue) -> Result<i64, LogStoreError> {
    match value {
        FieldValue::Date(ms) => Ok(*ms),
        FieldValue::Long(ms) => Ok(*ms),
        other => Err(LogStoreError::InvalidSearch(format!(
            "`@timestamp` is a date, not {other:?}"
        ))),
    }
}

/// The bytes that start every term of `key` in a JSON field, as text (path segments joined
/// by `\x01`, then `\x00` and the type code of strings): what a regex over the field's term
/// dictionary must begin with.
fn json_prefix(field: Field, key: &str) -> String {
    let mut term = Term::from_field_json_path(field, key, true);
    term.append_type_and_str("");
    String::from_utf8_lossy(term.serialized_value_bytes()).into_owned()
}

/// `text` as a regex matching itself.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        push_literal(&mut out, c);
    }
    out
}

fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:x}}}", c as u32));
    }
}

/// A wildcard pattern (`*` any run, `?` one character, `\` escapes) as a regex.
fn wildcard(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => {
                if let Some(escaped) = chars.next() {
                    push_literal(&mut out, escaped);
                } else {
                    push_literal(&mut out, '\\');
                }
            }
            other => push_literal(&mut out, other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_anchored_regexes() {
        assert_eq!(wildcard("ap*"), "ap.*");
        assert_eq!(wildcard("a?c"), "a.c");
        assert_eq!(wildcard(r"a\*b"), r"a\x{2a}b");
        assert_eq!(wildcard("a.b"), r"a\x{2e}b");
    }
}
