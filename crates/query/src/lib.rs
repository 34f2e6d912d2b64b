//! `caravan-query`: the log query language, pure and I/O-free.
//!
//! ```text
//! query string ──lucene::parse──┐
//!                               ├─> ast::Query ──resolve(dictionary)──> Filter ──> the log store
//! ES query DSL ──es_dsl::parse──┘
//! ```
//!
//! - [`parse_query_string`]: Lucene / Kibana syntax (`level:ERROR AND http.status:>=500`),
//!   errors with the byte position.
//! - [`parse_es_query`]: the Elasticsearch query DSL subset (`bool`, `term`, `range`, ...);
//!   anything else is an error naming the unsupported part.
//! - [`resolve`]: field names through the schema dictionary (aliases, unknown keys with
//!   suggestions), values coerced with ingest's rules.

#![warn(missing_docs)]

pub mod ast;
mod error;
mod es_dsl;
mod filter;
mod lucene;
mod resolve;
mod time;

pub use ast::{BoolQuery, Operator, Query, RangeBound, Span};
pub use error::QueryError;
pub use es_dsl::parse as parse_es_query;
pub use filter::{Filter, ID_KEY, TIMESTAMP_KEY};
pub use lucene::parse as parse_query_string;
pub use lucene::parse_with as parse_query_string_with;
pub use resolve::resolve;
pub use time::{auto_interval, parse_duration, parse_time};
