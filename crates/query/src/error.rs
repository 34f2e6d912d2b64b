//! What can be wrong with a query.

use crate::ast::Span;

/// A query that cannot run, with what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query string does not parse. `position` is a byte offset into the query string.
    #[error("query syntax error at position {position}: {message}")]
    Syntax {
        /// Byte offset of the problem.
        position: usize,
        /// What is wrong and, when useful, what was expected.
        message: String,
    },
    /// The Elasticsearch query DSL is malformed (`path` is the JSON path of the problem,
    /// e.g. `query.bool.must[1].range`).
    #[error("malformed query at {path}: {message}")]
    Malformed {
        /// JSON path of the problem.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A field the tenant's schema does not have.
    #[error("unknown field `{field}`{}{}", at(*span), suggest(suggestions))]
    UnknownField {
        /// The field as written.
        field: String,
        /// Where it was written in the query string (the whole clause), if it was.
        span: Option<Span>,
        /// The closest keys of the schema, best first.
        suggestions: Vec<String>,
    },
    /// A field that exists but cannot be searched (`index: false`, bytes, objects).
    #[error("field `{field}`{} cannot be searched: {reason}", at(*span))]
    NotSearchable {
        /// The field as written.
        field: String,
        /// Where it was written in the query string (the whole clause), if it was.
        span: Option<Span>,
        /// Why (its type, or `index: false`).
        reason: String,
    },
    /// A value that does not fit its field's type, or an operation the type does not have.
    #[error("invalid value for `{field}`{}: {reason}", at(*span))]
    InvalidValue {
        /// The field (the dictionary key).
        field: String,
        /// Where it was written in the query string (the whole clause), if it was.
        span: Option<Span>,
        /// What is wrong.
        reason: String,
    },
    /// A bare word, but the schema names no default field.
    #[error(
        "`{word}`{} names no field and the schema has no default fields: write `field:{word}`",
        at(*span)
    )]
    NoDefaultFields {
        /// The bare word.
        word: String,
        /// Where it was written in the query string (the whole clause), if it was.
        span: Option<Span>,
    },
    /// A valid Elasticsearch query that Caravan does not support.
    #[error("unsupported query at {path}: {message}")]
    Unsupported {
        /// JSON path of the unsupported part.
        path: String,
        /// What is not supported.
        message: String,
    },
}

impl QueryError {
    /// Where the problem is in the query string, as byte offsets: the clause for errors
    /// about a field or a value, an empty span (`start == end`) at the offending character
    /// for syntax errors. `None` for queries read from JSON.
    pub fn span(&self) -> Option<Span> {
        match self {
            Self::Syntax { position, .. } => Some(Span {
                start: *position,
                end: *position,
            }),
            Self::UnknownField { span, .. }
            | Self::NotSearchable { span, .. }
            | Self::InvalidValue { span, .. }
            | Self::NoDefaultFields { span, .. } => *span,
            Self::Malformed { .. } | Self::Unsupported { .. } => None,
        }
    }
}

fn at(span: Option<Span>) -> String {
    span.map(|span| format!(" (at position {})", span.start))
        .unwrap_or_default()
}

fn suggest(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!(
            "; did you mean one of {}?",
            many.iter()
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
