//! Wire types of Caravan's native API that are not a domain crate's own: the server serialises
//! them, the client deserialises them, and the OpenAPI document describes them. Tenants and tokens
//! are `caravan-tenancy`'s types.

pub mod fleet;
mod logs;
mod schema;

pub use logs::{
    DayUsage, LogAggregation, LogAggregationResult, LogHit, LogOrder, LogPurge, LogSearch,
    LogSearchResult, PurgedPartition, TimeBucket, ValueBucket,
};
pub use schema::{
    SchemaFileBody, SchemaPush, SchemaPushed, SchemaVersionSummary, SchemaVersionView,
};
