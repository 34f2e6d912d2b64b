//! Stored log schemas: the common schema and tenants' extensions, each a list of versions.
//!
//! The store keeps what was pushed (the `.proto` sources) and what it compiled to (the field
//! dictionary, as opaque JSON): compiling is the schema crate's business, not the store's.

use caravan_tenancy::{TenantName, TokenId};
use time::OffsetDateTime;

/// Whose schema: the common one, or a tenant's extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SchemaScope {
    /// The schema every tenant shares.
    Common,
    /// A tenant's extension, adding tenant-only keys.
    Tenant(TenantName),
}

/// One `.proto` source file of a schema version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchemaFile {
    /// The import name, such as `log_schema.proto`.
    pub name: String,
    /// The file's text.
    pub content: String,
}

/// A schema version, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRecord {
    /// Common or a tenant's.
    pub scope: SchemaScope,
    /// 1, 2, ... per scope.
    pub version: u64,
    /// The root message the sources were compiled from.
    pub root_message: String,
    /// The pushed sources.
    pub files: Vec<SchemaFile>,
    /// The compiled field dictionary, as JSON.
    pub dictionary_json: String,
    /// When it was pushed.
    pub created_at: OffsetDateTime,
    /// The token that pushed it.
    pub created_by: TokenId,
}

/// A schema version without its sources and dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersionInfo {
    /// 1, 2, ... per scope.
    pub version: u64,
    /// The root message.
    pub root_message: String,
    /// When it was pushed.
    pub created_at: OffsetDateTime,
    /// The token that pushed it.
    pub created_by: TokenId,
}

impl SchemaScope {
    /// The scope as stored: empty for the common schema, else the tenant name.
    pub(crate) fn key(&self) -> &str {
        match self {
            SchemaScope::Common => "",
            SchemaScope::Tenant(tenant) => tenant.as_str(),
        }
    }
}
