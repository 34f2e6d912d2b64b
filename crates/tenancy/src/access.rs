//! The access rules, in one place.
//!
//! - No valid token: 401 (decided by the server before this module is asked).
//! - A tenant token asking for another tenant's resource: not found, so that existence is not
//!   revealed.
//! - A token lacking the scope (or admin rights) for an action on a resource it may see: forbidden.

use serde::{Deserialize, Serialize};

use crate::{Scope, TenantName, TokenId, TokenKind};

/// Who is calling, once their token has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An admin token.
    Admin {
        /// The token used.
        token: TokenId,
    },
    /// A tenant token.
    Tenant {
        /// The token used.
        token: TokenId,
        /// The tenant it acts for.
        tenant: TenantName,
        /// What it may do there.
        scopes: Vec<Scope>,
    },
}

impl Principal {
    /// The token the principal presented.
    pub fn token(&self) -> &TokenId {
        match self {
            Principal::Admin { token } | Principal::Tenant { token, .. } => token,
        }
    }

    /// The tenant a tenant token is bound to; `None` for admins.
    pub fn tenant(&self) -> Option<&TenantName> {
        match self {
            Principal::Admin { .. } => None,
            Principal::Tenant { tenant, .. } => Some(tenant),
        }
    }

    /// Whether this is an admin.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }
}

/// Who the caller is, as `GET /api/v1/whoami` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The token used.
    pub token: TokenId,
    /// `admin` or `tenant`.
    pub kind: TokenKind,
    /// The tenant of a tenant token.
    pub tenant: Option<TenantName>,
    /// The scopes held (every scope for admins).
    pub scopes: Vec<Scope>,
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Only admins.
    Admin,
    /// Any token that may see the resource.
    Visible,
    /// A token holding this scope.
    Scope(Scope),
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The resource belongs to another tenant: answer as if it did not exist.
    #[error("not found")]
    NotFound,
    /// The resource is visible but the token lacks what the action needs.
    #[error("this token {0}")]
    Forbidden(String),
}

/// Decides whether `principal` may perform an action needing `requirement` on a resource owned by
/// `owner` (`None` for platform-wide resources such as the tenant list or tokens).
pub fn authorize(
    principal: &Principal,
    requirement: Requirement,
    owner: Option<&TenantName>,
) -> Result<(), Denied> {
    let (tenant, scopes) = match principal {
        Principal::Admin { .. } => return Ok(()),
        Principal::Tenant { tenant, scopes, .. } => (tenant, scopes),
    };
    if owner.is_some_and(|owner| owner != tenant) {
        return Err(Denied::NotFound);
    }
    match requirement {
        Requirement::Visible => Ok(()),
        Requirement::Admin => Err(Denied::Forbidden(
            "is a tenant token; this action needs an admin token".to_owned(),
        )),
        Requirement::Scope(scope) if scopes.contains(&scope) => Ok(()),
        Requirement::Scope(scope) => Err(Denied::Forbidden(format!(
            "lacks the scope {scope} for tenant {tenant}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str, scopes: &[Scope]) -> Principal {
        Principal::Tenant {
            token: TokenId::from_string("tok_t".into()),
            tenant: TenantName::new(name).unwrap(),
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn admin_may_do_anything() {
        let admin = Principal::Admin {
            token: TokenId::from_string("tok_a".into()),
        };
        let other = TenantName::new("other").unwrap();
        for requirement in [
            Requirement::Admin,
            Requirement::Visible,
            Requirement::Scope(Scope::FleetWrite),
        ] {
            assert_eq!(authorize(&admin, requirement, Some(&other)), Ok(()));
            assert_eq!(authorize(&admin, requirement, None), Ok(()));
        }
    }

    #[test]
    fn other_tenants_resources_do_not_exist() {
        let payments = tenant("payments", &Scope::ALL);
        let search = TenantName::new("search").unwrap();
        for requirement in [
            Requirement::Admin,
            Requirement::Visible,
            Requirement::Scope(Scope::LogsRead),
        ] {
            assert_eq!(
                authorize(&payments, requirement, Some(&search)),
                Err(Denied::NotFound)
            );
        }
    }

    #[test]
    fn own_resources_need_the_scope() {
        let writer = tenant("payments", &[Scope::LogsWrite]);
        let own = TenantName::new("payments").unwrap();
        assert_eq!(
            authorize(&writer, Requirement::Scope(Scope::LogsWrite), Some(&own)),
            Ok(())
        );
        assert_eq!(authorize(&writer, Requirement::Visible, Some(&own)), Ok(()));
        let err = authorize(&writer, Requirement::Scope(Scope::LogsRead), Some(&own)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "this token lacks the scope logs:read for tenant payments"
        );
        assert!(matches!(
            authorize(&writer, Requirement::Admin, Some(&own)),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            authorize(&writer, Requirement::Admin, None),
            Err(Denied::Forbidden(_))
        ));
    }
}
