//! Tenants, tokens and who may do what.
//!
//! This crate is Caravan's access domain. It is pure: it validates names and requests, computes
//! token hashes and decides whether a principal may act on a resource. It does no I/O; the store
//! persists what it produces and the server asks it for decisions.
//!
//! - [`TenantName`], [`Tenant`], [`TenantCreate`], [`TenantUpdate`]: a team and its settings.
//! - [`Scope`], [`TokenKind`], [`TokenInfo`], [`TokenCreate`], [`TokenSecret`]: credentials.
//! - [`Principal`], [`Requirement`], [`authorize`]: the access rules, in one place, for admin,
//!   tenant and agent tokens.

mod access;
mod error;
mod name;
mod scope;
mod tenant;
mod token;

pub use access::{Denied, Principal, Requirement, WhoAmI, authorize};
/// The host name an agent token is bound to (the fleet's, so that both validate alike).
pub use caravan_fleet::HostName;
pub use error::TenancyError;
pub use name::{TENANT_NAME_LEN_MAX, TenantName};
pub use scope::Scope;
pub use tenant::{
    DISPLAY_NAME_LEN_MAX, RETENTION_DAYS_DEFAULT, RETENTION_DAYS_MAX, Tenant, TenantCreate,
    TenantUpdate,
};
pub use token::{
    TOKEN_NAME_LEN_MAX, TOKEN_SECRET_BYTES, TokenCreate, TokenCreated, TokenId, TokenInfo,
    TokenKind, TokenRecord, TokenSecret, hash_token,
};
