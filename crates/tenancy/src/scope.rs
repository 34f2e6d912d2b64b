//! What a tenant token may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::TenancyError;

/// A permission carried by a tenant token. Admin tokens hold every scope and may also manage
/// tenants and tokens.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    /// Ship logs into the tenant.
    #[serde(rename = "logs:write")]
    LogsWrite,
    /// Search the tenant's logs.
    #[serde(rename = "logs:read")]
    LogsRead,
    /// See the tenant's services and the fleet they run on.
    #[serde(rename = "fleet:read")]
    FleetRead,
    /// Create, scale and move the tenant's services.
    #[serde(rename = "fleet:write")]
    FleetWrite,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 4] = [
        Scope::LogsWrite,
        Scope::LogsRead,
        Scope::FleetRead,
        Scope::FleetWrite,
    ];

    /// The scope's wire name, such as `logs:write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::LogsWrite => "logs:write",
            Scope::LogsRead => "logs:read",
            Scope::FleetRead => "fleet:read",
            Scope::FleetWrite => "fleet:write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = TenancyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| TenancyError::UnknownScope(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
        }
        assert!("logs:delete".parse::<Scope>().is_err());
    }
}
