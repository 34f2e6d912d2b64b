//! Validated names and numeric identifiers.
//!
//! Every named thing in the fleet (zones, data centers, hosts, templates, services, tenants) has
//! a DNS-label-like name, validated once when it enters the crate, so the rest of the code can
//! take a `&HostName` and never re-check. Names are cheap to clone (`Arc<str>`) because the
//! placement indexes hold many copies of them.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FleetError;

/// Longest accepted name, in bytes (the DNS label limit).
pub const NAME_LEN_MAX: usize = 63;

/// Checks the naming rule shared by every name in the fleet and says which part is broken.
///
/// The rule: 1 to 63 characters; lowercase ASCII letters, digits, `-` and `_`; starts with a
/// letter; ends with a letter or a digit. (`_` is accepted because operators name templates like
/// `infra_dc1_prod`.)
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), FleetError> {
    let broken = |rule: String| FleetError::InvalidName {
        kind,
        name: name.to_owned(),
        rule,
    };
    let Some(first) = name.chars().next() else {
        return Err(broken("must not be empty".to_owned()));
    };
    if name.len() > NAME_LEN_MAX {
        return Err(broken(format!(
            "must be at most {NAME_LEN_MAX} characters long (it has {})",
            name.len()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(broken(format!(
            "may only contain lowercase letters (a-z), digits, '-' and '_' (found {bad:?})"
        )));
    }
    if !first.is_ascii_lowercase() {
        return Err(broken(
            "must start with a lowercase letter (a-z)".to_owned(),
        ));
    }
    if name.ends_with('-') || name.ends_with('_') {
        return Err(broken("must end with a letter or a digit".to_owned()));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(Arc<str>);

        impl $ty {
            /// What this name names, as used in error messages.
            pub const KIND: &'static str = $kind;

            /// Validates `name` (see [`validate_name`]).
            pub fn new(name: &str) -> Result<Self, FleetError> {
                validate_name($kind, name)?;
                Ok(Self(Arc::from(name)))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl FromStr for $ty {
            type Err = FleetError;
            fn from_str(name: &str) -> Result<Self, FleetError> {
                Self::new(name)
            }
        }

        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = String::deserialize(deserializer)?;
                Self::new(&name).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// Name of a zone (an environment such as `production` or `staging`).
    ZoneName,
    "zone"
);
name_type!(
    /// Name of a data center.
    DcName,
    "data center"
);
name_type!(
    /// Name of a host.
    HostName,
    "host"
);
impl HostName {
    /// A name greater than every valid host name (`{` sorts after `z`), for range bounds.
    pub(crate) fn above_all() -> &'static HostName {
        static ABOVE_ALL: std::sync::OnceLock<HostName> = std::sync::OnceLock::new();
        ABOVE_ALL.get_or_init(|| HostName(Arc::from("{")))
    }
}

name_type!(
    /// Name of a template.
    TemplateName,
    "template"
);
name_type!(
    /// Name of a service.
    ServiceName,
    "service"
);
name_type!(
    /// Name of the tenant that owns services (quotas are per tenant).
    TenantName,
    "tenant"
);

macro_rules! id_type {
    ($(#[$doc:meta])* $ty:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $ty(pub u64);

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

id_type!(
    /// Identifier of one instance incarnation, from a counter kept in the fleet state.
    ///
    /// An instance that changes host (rescheduled, moved) gets a new id: the id names "this
    /// process on this host", which is what an agent starts and stops.
    InstanceId,
    "i-"
);
id_type!(
    /// Identifier of one move (drain or migration), from a counter kept in the fleet state.
    MoveId,
    "m-"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(name: &str) -> String {
        match HostName::new(name) {
            Err(FleetError::InvalidName { rule, .. }) => rule,
            other => panic!("expected an invalid name, got {other:?}"),
        }
    }

    #[test]
    fn accepts_dns_like_names() {
        for name in ["a", "dc1", "dc1-h3", "web_dc2", "infra_dc1_prod", "a0"] {
            assert!(HostName::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn says_which_rule_is_broken() {
        assert_eq!(rule_of(""), "must not be empty");
        assert!(rule_of(&"a".repeat(64)).starts_with("must be at most 63 characters"));
        assert!(rule_of("Web").contains("found 'W'"));
        assert!(rule_of("web.1").contains("found '.'"));
        assert_eq!(rule_of("1web"), "must start with a lowercase letter (a-z)");
        assert_eq!(rule_of("web-"), "must end with a letter or a digit");
        let message = HostName::new("web-").unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid host name \"web-\": must end with a letter or a digit"
        );
    }

    #[test]
    fn serde_validates() {
        let name: ServiceName = serde_json::from_str("\"web\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"web\"");
        assert!(serde_json::from_str::<ServiceName>("\"Web\"").is_err());
        assert_eq!(InstanceId(7).to_string(), "i-7");
    }
}
