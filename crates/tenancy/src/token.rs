//! API tokens: random secrets shown once, stored only as hashes.
//!
//! A secret is `cvn_` followed by 48 hex digits (192 random bits). It is stored as its SHA-256
//! digest. A fast hash is the right tool here: the secret is random and long, so there is nothing
//! to brute-force, and a slow password hash would only add latency to every request.

use std::fmt;

use caravan_fleet::HostName;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{Scope, TenancyError, TenantName};

/// Random bytes in a token secret (192 bits).
pub const TOKEN_SECRET_BYTES: usize = 24;
/// The longest token name, in characters.
pub const TOKEN_NAME_LEN_MAX: usize = 100;
const TOKEN_PREFIX: &str = "cvn_";

/// Whether a token administers the platform, acts for one tenant, or is the agent of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Every scope on every tenant, plus tenant and token management.
    Admin,
    /// The listed scopes on one tenant.
    Tenant,
    /// The agent (and load balancer) of one host: its host's agent calls, log shipping into any
    /// tenant, the service registry; nothing else (see [`crate::authorize`]).
    Agent,
}

impl TokenKind {
    /// The kind's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Tenant => "tenant",
            TokenKind::Agent => "agent",
        }
    }
}

/// A token's public identifier, such as `tok_5f0c2a9e1b7d4c83`; not a secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(String);

impl TokenId {
    /// Builds an identifier from 8 random bytes.
    pub fn from_random_bytes(bytes: [u8; 8]) -> Self {
        Self(format!("tok_{}", hex::encode(bytes)))
    }

    /// Wraps an identifier read back from storage or a URL.
    pub fn from_string(id: String) -> Self {
        Self(id)
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for TokenId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        String::schema()
    }
}

impl utoipa::ToSchema for TokenId {}

/// A token secret. Its `Debug` form is redacted so that it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// Builds a secret from random bytes drawn by the caller.
    pub fn from_random_bytes(bytes: [u8; TOKEN_SECRET_BYTES]) -> Self {
        Self(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
    }

    /// The secret, to be shown once to whoever created the token.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest under which the token is stored.
    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// The hex SHA-256 digest of a presented token, as stored.
pub fn hash_token(presented: &str) -> String {
    hex::encode(Sha256::digest(presented.as_bytes()))
}

/// What the API shows of a token: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Public identifier, used to revoke the token.
    pub id: TokenId,
    /// What the token is for, such as `filebeat on k8s-prod`.
    pub name: String,
    /// Admin, tenant or agent.
    pub kind: TokenKind,
    /// The tenant a tenant token acts for; `null` for admin and agent tokens.
    pub tenant: Option<TenantName>,
    /// The host an agent token is bound to; `null` for admin and tenant tokens.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub host: Option<HostName>,
    /// Scopes of a tenant token; admin tokens hold every scope, agent tokens none.
    pub scopes: Vec<Scope>,
    /// When the token was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the token was revoked; `null` while it is valid.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A token as stored: its public part and the digest of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// What the API shows.
    pub info: TokenInfo,
    /// SHA-256 digest of the secret, see [`hash_token`].
    pub secret_hash: String,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenCreated {
    /// The token's public part.
    pub token: TokenInfo,
    /// The secret to send as `Authorization: Bearer <secret>`; not retrievable later.
    pub secret: String,
}

/// The body of a request creating a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// What the token is for.
    pub name: String,
    /// Admin, tenant or agent.
    pub kind: TokenKind,
    /// The tenant of a tenant token; must be absent for admin and agent tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantName>,
    /// The host of an agent token; must be absent for admin and tenant tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub host: Option<HostName>,
    /// Scopes of a tenant token (at least one); must be absent for admin and agent tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Scope>,
}

impl TokenCreate {
    /// Validates the request and builds the record to store for `secret`.
    pub fn into_record(
        self,
        id: TokenId,
        secret: &TokenSecret,
        now: OffsetDateTime,
    ) -> Result<TokenRecord, TenancyError> {
        let name = self.name.trim().to_owned();
        let invalid = |field, reason: &str| TenancyError::InvalidField {
            field,
            reason: reason.to_owned(),
        };
        if name.is_empty() {
            return Err(invalid("name", "must not be blank"));
        }
        if name.chars().count() > TOKEN_NAME_LEN_MAX || name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                "must be at most 100 characters long, without control characters",
            ));
        }
        let mut scopes = self.scopes;
        scopes.sort();
        scopes.dedup();
        if self.kind != TokenKind::Agent && self.host.is_some() {
            return Err(invalid("host", "is only for an agent token"));
        }
        match (self.kind, &self.tenant) {
            (TokenKind::Admin, Some(_)) => {
                return Err(invalid("tenant", "must be absent for an admin token"));
            }
            (TokenKind::Admin, None) if !scopes.is_empty() => {
                return Err(invalid(
                    "scopes",
                    "must be absent for an admin token, which holds every scope",
                ));
            }
            (TokenKind::Tenant, None) => {
                return Err(invalid("tenant", "is required for a tenant token"));
            }
            (TokenKind::Tenant, Some(_)) if scopes.is_empty() => {
                return Err(invalid(
                    "scopes",
                    "a tenant token needs at least one of logs:write, logs:read, fleet:read, fleet:write",
                ));
            }
            (TokenKind::Agent, Some(_)) => {
                return Err(invalid(
                    "tenant",
                    "must be absent for an agent token, which ships logs into every tenant",
                ));
            }
            (TokenKind::Agent, None) if !scopes.is_empty() => {
                return Err(invalid(
                    "scopes",
                    "must be absent for an agent token, whose rights are fixed",
                ));
            }
            (TokenKind::Agent, None) if self.host.is_none() => {
                return Err(invalid(
                    "host",
                    "is required for an agent token: the host it is the agent of",
                ));
            }
            _ => {}
        }
        Ok(TokenRecord {
            info: TokenInfo {
                id,
                name,
                kind: self.kind,
                tenant: self.tenant,
                host: self.host,
                scopes,
                created_at: now,
                revoked_at: None,
            },
            secret_hash: secret.hash(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    fn record(json: &str) -> Result<TokenRecord, String> {
        let request: TokenCreate = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let secret = TokenSecret::from_random_bytes([7; TOKEN_SECRET_BYTES]);
        request
            .into_record(TokenId::from_random_bytes([1; 8]), &secret, now())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn secret_shape_and_hash() {
        let secret = TokenSecret::from_random_bytes([0xab; TOKEN_SECRET_BYTES]);
        assert!(secret.expose().starts_with("cvn_"));
        assert_eq!(secret.expose().len(), 4 + 2 * TOKEN_SECRET_BYTES);
        assert_eq!(secret.hash(), hash_token(secret.expose()));
        assert_eq!(secret.hash().len(), 64);
        assert_eq!(format!("{secret:?}"), "TokenSecret(<redacted>)");
    }

    #[test]
    fn tenant_token_needs_tenant_and_scopes() {
        let ok = record(r#"{"name":"ci","kind":"tenant","tenant":"payments","scopes":["logs:read","logs:read"]}"#)
            .unwrap();
        assert_eq!(ok.info.scopes, vec![Scope::LogsRead]);
        assert!(
            record(r#"{"name":"ci","kind":"tenant","scopes":["logs:read"]}"#)
                .unwrap_err()
                .contains("tenant: is required")
        );
        assert!(
            record(r#"{"name":"ci","kind":"tenant","tenant":"payments"}"#)
                .unwrap_err()
                .contains("scopes")
        );
        assert!(
            record(r#"{"name":"ci","kind":"tenant","tenant":"payments","scopes":["logs:all"]}"#)
                .unwrap_err()
                .contains("unknown variant `logs:all`")
        );
    }

    #[test]
    fn agent_token_needs_a_host_and_nothing_else() {
        let ok = record(r#"{"name":"agent dc1-h1","kind":"agent","host":"dc1-h1"}"#).unwrap();
        assert_eq!(ok.info.kind, TokenKind::Agent);
        assert_eq!(ok.info.host.as_ref().map(HostName::as_str), Some("dc1-h1"));
        assert_eq!(ok.info.tenant, None);
        assert!(ok.info.scopes.is_empty());
        for (json, field) in [
            (r#"{"name":"a","kind":"agent"}"#, "host: is required"),
            (
                r#"{"name":"a","kind":"agent","host":"dc1-h1","tenant":"payments"}"#,
                "tenant: must be absent",
            ),
            (
                r#"{"name":"a","kind":"agent","host":"dc1-h1","scopes":["logs:write"]}"#,
                "scopes: must be absent",
            ),
            (
                r#"{"name":"a","kind":"admin","host":"dc1-h1"}"#,
                "host: is only for an agent token",
            ),
            (
                r#"{"name":"a","kind":"tenant","tenant":"payments","scopes":["logs:read"],"host":"dc1-h1"}"#,
                "host: is only for an agent token",
            ),
            (r#"{"name":"a","kind":"agent","host":"DC1"}"#, "host"),
        ] {
            let error = record(json).unwrap_err();
            assert!(error.contains(field), "{json}: {error}");
        }
    }

    #[test]
    fn token_info_without_host_still_reads() {
        // What older servers send, and rows written before agent tokens existed.
        let info: TokenInfo = serde_json::from_str(
            r#"{"id":"tok_1","name":"ci","kind":"tenant","tenant":"payments","scopes":["logs:read"],"created_at":"2023-11-14T22:13:20Z","revoked_at":null}"#,
        )
        .unwrap();
        assert_eq!(info.host, None);
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["host"], serde_json::Value::Null);
    }

    #[test]
    fn admin_token_has_no_tenant_or_scopes() {
        assert!(record(r#"{"name":"ops","kind":"admin"}"#).is_ok());
        assert!(
            record(r#"{"name":"ops","kind":"admin","tenant":"payments"}"#)
                .unwrap_err()
                .contains("must be absent")
        );
        assert!(
            record(r#"{"name":" ","kind":"admin"}"#)
                .unwrap_err()
                .contains("name")
        );
    }
}
