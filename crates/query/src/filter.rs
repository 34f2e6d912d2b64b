//! The resolved query: keys of the dictionary, typed values. What the log store executes.

use std::ops::Bound;

use caravan_normalize::TypedValue;
use caravan_schema::FieldType;

use crate::ast::Operator;

/// The key of the event time: every document has one, kept in its own field by the store.
pub const TIMESTAMP_KEY: &str = "@timestamp";
/// The key of the document id.
pub const ID_KEY: &str = "_id";

/// A query resolved against a tenant's dictionary: every key exists and is indexed, every
/// value has the key's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every document.
    All,
    /// No document.
    None,
    /// Documents with one of these `_id`s.
    Id(Vec<String>),
    /// `key` holds exactly `value`. For a text key, `value` is one token (Elasticsearch's
    /// `term` on a text field); for `@timestamp`, a date.
    Exact {
        /// The dictionary key.
        key: String,
        /// The value, of the key's type.
        value: TypedValue,
    },
    /// A text key holds the words of `text` (analysed like at ingest), combined by `operator`.
    Match {
        /// The dictionary key (a text key).
        key: String,
        /// The text as written.
        text: String,
        /// Any word or every word.
        operator: Operator,
    },
    /// A text key holds the words of `text` in this order.
    Phrase {
        /// The dictionary key (a text key).
        key: String,
        /// The phrase as written.
        text: String,
    },
    /// A keyword (or a word of a text key) matches `pattern`: `*` any run, `?` one character,
    /// `\` escapes the next character.
    Wildcard {
        /// The dictionary key.
        key: String,
        /// [`FieldType::Keyword`] or [`FieldType::Text`].
        field_type: FieldType,
        /// The pattern (lowercased for text keys, like their words).
        pattern: String,
    },
    /// `key`'s value is within the bounds (long, double, date or keyword; `@timestamp` too).
    Range {
        /// The dictionary key.
        key: String,
        /// Lower bound.
        lower: Bound<TypedValue>,
        /// Upper bound.
        upper: Bound<TypedValue>,
    },
    /// The document has a value for `key`.
    Exists {
        /// The dictionary key.
        key: String,
        /// Its type (which decides where the store looks).
        field_type: FieldType,
    },
    /// A boolean combination: all of `must`, none of `must_not`, and at least
    /// `minimum_should_match` of `should`.
    Bool {
        /// All of these.
        must: Vec<Filter>,
        /// At least `minimum_should_match` of these.
        should: Vec<Filter>,
        /// None of these.
        must_not: Vec<Filter>,
        /// How many `should` must match (0: `should` only ranks, which changes nothing here).
        minimum_should_match: u32,
    },
}

impl Filter {
    /// The `@timestamp` range every match lies in, as `[from, to)` epoch milliseconds, from
    /// the ranges and exact times this filter requires (in `must`, recursively): what decides
    /// which daily partitions a search opens. `(i64::MIN, i64::MAX)` when time is free.
    pub fn timestamp_bounds(&self) -> (i64, i64) {
        let mut bounds = (i64::MIN, i64::MAX);
        self.narrow_time(&mut bounds);
        bounds
    }

    fn narrow_time(&self, bounds: &mut (i64, i64)) {
        let millis = |value: &TypedValue| match value {
            TypedValue::Date(ms) | TypedValue::Long(ms) => Some(*ms),
            _ => None,
        };
        match self {
            Filter::Range { key, lower, upper } if key == TIMESTAMP_KEY => {
                match lower {
                    Bound::Included(value) => {
                        if let Some(ms) = millis(value) {
                            bounds.0 = bounds.0.max(ms);
                        }
                    }
                    Bound::Excluded(value) => {
                        if let Some(ms) = millis(value) {
                            bounds.0 = bounds.0.max(ms.saturating_add(1));
                        }
                    }
                    Bound::Unbounded => {}
                }
                match upper {
                    Bound::Included(value) => {
                        if let Some(ms) = millis(value) {
                            bounds.1 = bounds.1.min(ms.saturating_add(1));
                        }
                    }
                    Bound::Excluded(value) => {
                        if let Some(ms) = millis(value) {
                            bounds.1 = bounds.1.min(ms);
                        }
                    }
                    Bound::Unbounded => {}
                }
            }
            Filter::Exact { key, value } if key == TIMESTAMP_KEY => {
                if let Some(ms) = millis(value) {
                    bounds.0 = bounds.0.max(ms);
                    bounds.1 = bounds.1.min(ms.saturating_add(1));
                }
            }
            Filter::Bool { must, .. } => must.iter().for_each(|filter| filter.narrow_time(bounds)),
            _ => {}
        }
    }

    /// Documents matching any of `filters` (`None` for none).
    pub fn any(mut filters: Vec<Filter>) -> Filter {
        filters.retain(|filter| *filter != Filter::None);
        match filters.len() {
            0 => Filter::None,
            1 => filters.pop().unwrap_or(Filter::None),
            _ if filters.contains(&Filter::All) => Filter::All,
            _ => Filter::Bool {
                must: Vec::new(),
                should: filters,
                must_not: Vec::new(),
                minimum_should_match: 1,
            },
        }
    }

    /// Documents matching all of `filters` (`All` for none).
    pub fn all(mut filters: Vec<Filter>) -> Filter {
        filters.retain(|filter| *filter != Filter::All);
        match filters.len() {
            0 => Filter::All,
            1 => filters.pop().unwrap_or(Filter::All),
            _ if filters.contains(&Filter::None) => Filter::None,
            _ => Filter::Bool {
                must: filters,
                should: Vec::new(),
                must_not: Vec::new(),
                minimum_should_match: 0,
            },
        }
    }
}
