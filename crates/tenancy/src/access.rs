//! The access rules, in one place.
//!
//! - No valid token: 401 (decided by the server before this module is asked).
//! - A tenant token asking for another tenant's resource: not found, so that existence is not
//!   revealed.
//! - A token lacking the scope (or admin rights) for an action on a resource it may see: forbidden.
//! - An agent token (bound to one host) may act as that host's agent (register it, heartbeat,
//!   read its desired instances, report the instances placed on it), ship logs into any tenant
//!   and read the service registry; anything else is forbidden, with a message naming the token.
//!   Another host's calls are forbidden too (403, not 404: host names are not secret to an agent,
//!   the registry it reads shows them).

use caravan_fleet::HostName;
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
    /// An agent token: the agent and load balancer of one host.
    Agent {
        /// The token used.
        token: TokenId,
        /// The host it is the agent of.
        host: HostName,
    },
}

impl Principal {
    /// The token the principal presented.
    pub fn token(&self) -> &TokenId {
        match self {
            Principal::Admin { token }
            | Principal::Tenant { token, .. }
            | Principal::Agent { token, .. } => token,
        }
    }

    /// The tenant a tenant token is bound to; `None` for admins and agents. `None` does not mean
    /// "every tenant": ask [`authorize`] (agents read no tenant's data).
    pub fn tenant(&self) -> Option<&TenantName> {
        match self {
            Principal::Tenant { tenant, .. } => Some(tenant),
            Principal::Admin { .. } | Principal::Agent { .. } => None,
        }
    }

    /// The host an agent token is bound to; `None` for admins and tenant tokens.
    pub fn host(&self) -> Option<&HostName> {
        match self {
            Principal::Agent { host, .. } => Some(host),
            Principal::Admin { .. } | Principal::Tenant { .. } => None,
        }
    }

    /// Whether this is an admin.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }

    /// The token's kind.
    pub fn kind(&self) -> TokenKind {
        match self {
            Principal::Admin { .. } => TokenKind::Admin,
            Principal::Tenant { .. } => TokenKind::Tenant,
            Principal::Agent { .. } => TokenKind::Agent,
        }
    }

    /// Who the caller is, as `GET /api/v1/whoami` answers.
    pub fn whoami(&self) -> WhoAmI {
        WhoAmI {
            token: self.token().clone(),
            kind: self.kind(),
            tenant: self.tenant().cloned(),
            host: self.host().cloned(),
            scopes: match self {
                Principal::Admin { .. } => Scope::ALL.to_vec(),
                Principal::Tenant { scopes, .. } => scopes.clone(),
                Principal::Agent { .. } => Vec::new(),
            },
        }
    }
}

/// Who the caller is, as `GET /api/v1/whoami` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The token used.
    pub token: TokenId,
    /// `admin`, `tenant` or `agent`.
    pub kind: TokenKind,
    /// The tenant of a tenant token.
    pub tenant: Option<TenantName>,
    /// The host of an agent token.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub host: Option<HostName>,
    /// The scopes held (every scope for admins, none for agents).
    pub scopes: Vec<Scope>,
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement<'a> {
    /// Only admins.
    Admin,
    /// Any token that may see the resource (admins, its tenant's tokens; not agents).
    Visible,
    /// A token holding this scope. Agents hold `logs:write` on every tenant (to ship the output
    /// of any tenant's instances), and nothing else.
    Scope(Scope),
    /// Changing a tenant's configuration that `scope` governs (its schema extension under
    /// `logs:write`): as [`Requirement::Scope`], but never an agent.
    Manage(Scope),
    /// Reading some tenants' data, which ones to be decided next (lists, searches over patterns):
    /// admins and tenant tokens; agents read no tenant's data.
    TenantData,
    /// Reading the service registry (endpoints): admins, agents (load balancers route to every
    /// service), and tenant tokens with `fleet:read` on the owner.
    Registry,
    /// An agent call on whichever host (the host is checked next, with [`Requirement::Host`]):
    /// admins and agents.
    AgentCall,
    /// Acting as this host's agent (register, heartbeat, desired instances, instance reports):
    /// admins and this host's agent token.
    Host(&'a HostName),
    /// Reading this host: admins, tenant tokens with `fleet:read`, this host's agent token.
    HostRead(&'a HostName),
}

impl From<Scope> for Requirement<'_> {
    fn from(scope: Scope) -> Self {
        Requirement::Scope(scope)
    }
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
/// `owner` (`None` for platform-wide resources such as the tenant list, tokens or hosts).
pub fn authorize(
    principal: &Principal,
    requirement: Requirement<'_>,
    owner: Option<&TenantName>,
) -> Result<(), Denied> {
    match principal {
        Principal::Admin { .. } => Ok(()),
        Principal::Tenant { tenant, scopes, .. } => {
            authorize_tenant(tenant, scopes, requirement, owner)
        }
        Principal::Agent { host, .. } => authorize_agent(host, requirement, owner),
    }
}

fn authorize_tenant(
    tenant: &TenantName,
    scopes: &[Scope],
    requirement: Requirement<'_>,
    owner: Option<&TenantName>,
) -> Result<(), Denied> {
    if owner.is_some_and(|owner| owner != tenant) {
        return Err(Denied::NotFound);
    }
    let scope = match requirement {
        Requirement::Visible | Requirement::TenantData => return Ok(()),
        Requirement::Admin => {
            return Err(Denied::Forbidden(
                "is a tenant token; this action needs an admin token".to_owned(),
            ));
        }
        Requirement::AgentCall | Requirement::Host(_) => {
            let which = match requirement {
                Requirement::Host(host) => format!("host {host}'s agent token"),
                _ => "an agent token".to_owned(),
            };
            return Err(Denied::Forbidden(format!(
                "is a tenant token; this action needs an admin token or {which}"
            )));
        }
        Requirement::Scope(scope) | Requirement::Manage(scope) => scope,
        Requirement::Registry | Requirement::HostRead(_) => Scope::FleetRead,
    };
    if scopes.contains(&scope) {
        Ok(())
    } else {
        Err(Denied::Forbidden(format!(
            "lacks the scope {scope} for tenant {tenant}"
        )))
    }
}

fn authorize_agent(
    own: &HostName,
    requirement: Requirement<'_>,
    owner: Option<&TenantName>,
) -> Result<(), Denied> {
    match requirement {
        Requirement::Registry | Requirement::AgentCall => Ok(()),
        Requirement::Scope(Scope::LogsWrite) if owner.is_some() => Ok(()),
        Requirement::Host(host) | Requirement::HostRead(host) if host == own => Ok(()),
        Requirement::Host(host) | Requirement::HostRead(host) => Err(Denied::Forbidden(format!(
            "is the agent token of host {own}, not of host {host}"
        ))),
        Requirement::Admin
        | Requirement::Visible
        | Requirement::Scope(_)
        | Requirement::Manage(_)
        | Requirement::TenantData => Err(Denied::Forbidden(format!(
            "is the agent token of host {own}: it may only act as that host's agent, ship logs \
             and read the service registry"
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

    fn agent(host: &str) -> Principal {
        Principal::Agent {
            token: TokenId::from_string("tok_g".into()),
            host: HostName::new(host).unwrap(),
        }
    }

    #[test]
    fn agent_acts_for_its_own_host_only() {
        let dc1 = HostName::new("dc1-h1").unwrap();
        let dc2 = HostName::new("dc2-h1").unwrap();
        let agent = agent("dc1-h1");
        assert_eq!(authorize(&agent, Requirement::Host(&dc1), None), Ok(()));
        assert_eq!(authorize(&agent, Requirement::HostRead(&dc1), None), Ok(()));
        assert_eq!(authorize(&agent, Requirement::AgentCall, None), Ok(()));
        for requirement in [Requirement::Host(&dc2), Requirement::HostRead(&dc2)] {
            let error = authorize(&agent, requirement, None).unwrap_err();
            assert_eq!(
                error.to_string(),
                "this token is the agent token of host dc1-h1, not of host dc2-h1"
            );
        }
        // Admins may make any host's agent calls; tenant tokens none, whatever their scopes.
        let admin = Principal::Admin {
            token: TokenId::from_string("tok_a".into()),
        };
        assert_eq!(authorize(&admin, Requirement::Host(&dc2), None), Ok(()));
        let tenant = tenant("payments", &Scope::ALL);
        let error = authorize(&tenant, Requirement::Host(&dc1), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "this token is a tenant token; this action needs an admin token or host dc1-h1's agent token"
        );
        assert!(matches!(
            authorize(&tenant, Requirement::AgentCall, None),
            Err(Denied::Forbidden(_))
        ));
        // Reading a host is fleet:read for tenant tokens.
        assert_eq!(
            authorize(&tenant, Requirement::HostRead(&dc1), None),
            Ok(())
        );
        let writer = self::tenant("payments", &[Scope::LogsWrite]);
        assert!(authorize(&writer, Requirement::HostRead(&dc1), None).is_err());
    }

    #[test]
    fn agent_ships_into_any_tenant_and_reads_the_registry_only() {
        let agent = agent("dc1-h1");
        let payments = TenantName::new("payments").unwrap();
        let search = TenantName::new("search").unwrap();
        for owner in [&payments, &search] {
            assert_eq!(
                authorize(&agent, Requirement::Scope(Scope::LogsWrite), Some(owner)),
                Ok(())
            );
            assert_eq!(
                authorize(&agent, Requirement::Registry, Some(owner)),
                Ok(())
            );
        }
        assert_eq!(authorize(&agent, Requirement::Registry, None), Ok(()));
        let refused = [
            (Requirement::Admin, None),
            (Requirement::Visible, Some(&payments)),
            (Requirement::TenantData, None),
            (Requirement::Scope(Scope::LogsRead), Some(&payments)),
            (Requirement::Scope(Scope::FleetRead), None),
            (Requirement::Scope(Scope::FleetRead), Some(&payments)),
            (Requirement::Scope(Scope::FleetWrite), Some(&payments)),
            // logs:write on no tenant in particular (templates, refresh) is configuration.
            (Requirement::Scope(Scope::LogsWrite), None),
            (Requirement::Manage(Scope::LogsWrite), Some(&payments)),
        ];
        for (requirement, owner) in refused {
            let error = authorize(&agent, requirement, owner).unwrap_err();
            assert_eq!(
                error.to_string(),
                "this token is the agent token of host dc1-h1: it may only act as that host's \
                 agent, ship logs and read the service registry",
                "{requirement:?}"
            );
        }
    }

    #[test]
    fn tenant_tokens_read_the_registry_and_data_as_before() {
        let reader = tenant("payments", &[Scope::FleetRead]);
        let own = TenantName::new("payments").unwrap();
        let other = TenantName::new("search").unwrap();
        assert_eq!(
            authorize(&reader, Requirement::Registry, Some(&own)),
            Ok(())
        );
        assert_eq!(
            authorize(&reader, Requirement::Registry, Some(&other)),
            Err(Denied::NotFound)
        );
        assert_eq!(authorize(&reader, Requirement::TenantData, None), Ok(()));
        assert!(authorize(&reader, Requirement::Manage(Scope::LogsWrite), Some(&own)).is_err());
        let writer = tenant("payments", &[Scope::LogsWrite]);
        assert_eq!(
            authorize(&writer, Requirement::Manage(Scope::LogsWrite), Some(&own)),
            Ok(())
        );
        assert!(authorize(&writer, Requirement::Registry, Some(&own)).is_err());
    }

    #[test]
    fn whoami_names_kind_and_host() {
        let whoami = agent("dc1-h1").whoami();
        assert_eq!(whoami.kind, TokenKind::Agent);
        assert_eq!(whoami.host.as_ref().map(HostName::as_str), Some("dc1-h1"));
        assert_eq!(whoami.tenant, None);
        assert!(whoami.scopes.is_empty());
        let json = serde_json::to_value(&whoami).unwrap();
        assert_eq!(json["kind"], "agent");
        assert_eq!(json["host"], "dc1-h1");
        let whoami = tenant("payments", &[Scope::LogsRead]).whoami();
        assert_eq!(whoami.host, None);
        assert_eq!(whoami.scopes, vec![Scope::LogsRead]);
    }
}
