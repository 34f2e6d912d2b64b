//! The schema registry's requests and answers.

use caravan_tenancy::TenantName;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One `.proto` file of a schema.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaFileBody {
    /// The import name, such as `log_schema.proto` (`caravan/options.proto` is built in).
    pub name: String,
    /// The file's text.
    pub content: String,
}

/// The body of a schema push.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaPush {
    /// The `.proto` files.
    pub files: Vec<SchemaFileBody>,
    /// The root message; default `LogSchema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_message: Option<String>,
}

/// A stored schema version.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchemaVersionView {
    /// The tenant of an extension; `null` for the common schema.
    pub tenant: Option<TenantName>,
    /// 1, 2, ... per schema.
    pub version: u64,
    /// The fully qualified root message.
    pub root_message: String,
    /// When it was pushed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The token that pushed it.
    pub created_by: String,
    /// Number of keys in its dictionary.
    pub keys: usize,
    /// The pushed sources.
    pub files: Vec<SchemaFileBody>,
    /// The compiled field dictionary.
    #[schema(value_type = Object)]
    pub dictionary: serde_json::Value,
}

/// A schema version in a listing.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchemaVersionSummary {
    /// 1, 2, ...
    pub version: u64,
    /// The root message.
    pub root_message: String,
    /// When it was pushed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The token that pushed it.
    pub created_by: String,
}

/// The answer to an accepted push.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchemaPushed {
    /// The tenant of an extension; `null` for the common schema.
    pub tenant: Option<TenantName>,
    /// The new version.
    pub version: u64,
    /// Number of keys in the new dictionary.
    pub keys: usize,
    /// What changed from the previous version, one line per change.
    pub changes: Vec<String>,
}
