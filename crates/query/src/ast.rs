//! The query tree as written: field names as the user typed them, values as text. Both the
//! query-string parser (`lucene.rs`) and the Elasticsearch DSL reader (`es_dsl.rs`) produce
//! it; `resolve.rs` turns it into a [`crate::Filter`] against the schema dictionary.

/// Where a node came from in a query string (byte offsets, for error messages). Queries
/// read from JSON have no span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// How the words of a [`Query::Match`] combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operator {
    /// Any word matches (Elasticsearch's default for `match`).
    #[default]
    Or,
    /// Every word must match.
    And,
}

/// One bound of a [`Query::Range`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeBound {
    /// No bound (`*` in `[* TO 5]`).
    Unbounded,
    /// The value is included (`[`, `>=`, `gte`).
    Included(String),
    /// The value is excluded (`{`, `>`, `gt`).
    Excluded(String),
}

/// A query as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Every document.
    MatchAll,
    /// No document.
    MatchNone,
    /// `field:value`, a bare word (`field: None`: the schema's default fields), or `match`.
    /// Analysed on text keys (words combined by `operator`), exact on the other types after
    /// coercion.
    Match {
        /// The field as written; `None` for the default fields.
        field: Option<String>,
        /// The value as written (unquoted).
        value: String,
        /// How words combine on text keys.
        operator: Operator,
        /// Where it was written.
        span: Span,
    },
    /// `field:"some words"` or `match_phrase`: the words in order on text keys, the whole
    /// string exactly on the other types.
    Phrase {
        /// The field; `None` for the default fields.
        field: Option<String>,
        /// The phrase, unquoted and unescaped.
        text: String,
        /// Where it was written.
        span: Span,
    },
    /// Elasticsearch's `term` / `terms`: exact values, never analysed.
    Term {
        /// The field as written.
        field: String,
        /// Any of these values (one for `term`).
        values: Vec<String>,
        /// Where it was written.
        span: Span,
    },
    /// `field:ab*c?`: `*` is any run of characters, `?` one character. Keywords only.
    Wildcard {
        /// The field; `None` for the default fields.
        field: Option<String>,
        /// The pattern, with `*` and `?` as wildcards (escaped ones already literal are
        /// given as `\*` and `\?`; a literal backslash as `\\`).
        pattern: String,
        /// Where it was written.
        span: Span,
    },
    /// `field:[a TO b]`, `field:>5`, `range`.
    Range {
        /// The field as written.
        field: String,
        /// Lower bound.
        lower: RangeBound,
        /// Upper bound.
        upper: RangeBound,
        /// Where it was written.
        span: Span,
    },
    /// `_exists_:field`, `field:*`, `exists`.
    Exists {
        /// The field as written.
        field: String,
        /// Where it was written.
        span: Span,
    },
    /// `AND` / `OR` / `NOT` / `+` / `-` / parentheses, and Elasticsearch's `bool`.
    Bool(BoolQuery),
}

/// A boolean combination. A document matches when it matches every `must` and `filter`,
/// no `must_not`, and at least `minimum_should_match` of `should` (when `should` is not
/// empty and there is no `must`/`filter`, at least one; otherwise `should` is optional
/// unless `minimum_should_match` says so).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BoolQuery {
    /// All of these.
    pub must: Vec<Query>,
    /// All of these (no scoring difference here: Caravan sorts by time).
    pub filter: Vec<Query>,
    /// Some of these.
    pub should: Vec<Query>,
    /// None of these.
    pub must_not: Vec<Query>,
    /// How many `should` clauses must match, if given.
    pub minimum_should_match: Option<u32>,
}
