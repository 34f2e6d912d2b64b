//! The one error type of the access domain.

/// Why a name, a tenant request or a token request is invalid.
///
/// Every message names the offending field and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenancyError {
    /// A tenant name breaks the DNS label rule.
    #[error("invalid tenant name {name:?}: {rule}")]
    InvalidTenantName { name: String, rule: &'static str },
    /// A field of a request has a value outside its bounds.
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// A scope string is not one of the known scopes.
    #[error("unknown scope {0:?}: expected one of logs:write, logs:read, fleet:read, fleet:write")]
    UnknownScope(String),
}
