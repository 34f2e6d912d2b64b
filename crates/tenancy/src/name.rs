//! Tenant names: DNS labels, so that they can appear in index names, hostnames and paths.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::TenancyError;

/// The longest tenant name, in characters (the DNS label limit).
pub const TENANT_NAME_LEN_MAX: usize = 63;

/// A validated tenant name: 1 to 63 lowercase letters, digits or '-', starting and ending with a
/// letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

impl TenantName {
    /// Validates `name`, naming the rule it breaks when it is not a tenant name.
    pub fn new(name: impl Into<String>) -> Result<Self, TenancyError> {
        let name = name.into();
        match broken_rule(&name) {
            None => Ok(Self(name)),
            Some(rule) => Err(TenancyError::InvalidTenantName { name, rule }),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn broken_rule(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.len() > TENANT_NAME_LEN_MAX {
        return Some("must be at most 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("may only contain lowercase letters, digits and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or a digit");
    }
    None
}

impl TryFrom<String> for TenantName {
    type Error = TenancyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl std::str::FromStr for TenantName {
    type Err = TenancyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl From<TenantName> for String {
    fn from(value: TenantName) -> Self {
        value.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TenantName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl utoipa::PartialSchema for TenantName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))
            .description(Some("Tenant name: a DNS label."))
            .into()
    }
}

impl utoipa::ToSchema for TenantName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for name in ["a", "payments", "team-42", "0", &"x".repeat(63)] {
            assert!(TenantName::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn names_the_broken_rule() {
        let cases = [
            ("", "must not be empty"),
            ("Payments", "lowercase letters"),
            ("pay_ments", "lowercase letters"),
            ("-pay", "start and end"),
            ("pay-", "start and end"),
        ];
        for (name, rule) in cases {
            let err = TenantName::new(name).unwrap_err().to_string();
            assert!(err.contains(rule), "{name:?}: {err}");
        }
        let err = TenantName::new("x".repeat(64)).unwrap_err().to_string();
        assert!(err.contains("at most 63"), "{err}");
    }

    #[test]
    fn deserialisation_validates() {
        let err = serde_json::from_str::<TenantName>("\"Bad\"").unwrap_err();
        assert!(err.to_string().contains("invalid tenant name"));
    }

    proptest::proptest! {
        #[test]
        fn valid_names_round_trip(name in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
            let parsed = TenantName::new(name.clone()).unwrap();
            proptest::prop_assert_eq!(parsed.as_str(), name.as_str());
        }
    }
}
