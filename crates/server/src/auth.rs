//! Authentication: from the `Authorization` header to a [`Principal`]; and the bootstrap admin
//! token written on first start.
//!
//! Accepted forms: `Bearer <token>`, and HTTP basic auth with the token as password and any user
//! name (what log shippers send). Tokens are looked up by their SHA-256 digest on every request,
//! so a revocation takes effect at once. Secrets are never logged.

use std::io::Write;
use std::path::Path;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use caravan_store::{ControlStore, StoreError};
use caravan_tenancy::{
    Principal, TOKEN_SECRET_BYTES, TokenCreate, TokenId, TokenKind, TokenSecret, WhoAmI, hash_token,
};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::{ADMIN_TOKEN_FILE, AppState, ServerError};

/// The verified caller of a request. Extracting it answers 401 when the token is missing,
/// unknown or revoked.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = presented_token(parts)?;
        let secret_hash = hash_token(&presented);
        let record = state
            .store(move |store| store.token_by_hash(&secret_hash))
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid token"))?;
        if record.info.revoked_at.is_some() {
            return Err(ApiError::unauthorized(format!(
                "token {} has been revoked",
                record.info.id
            )));
        }
        let info = record.info;
        let principal = match (info.kind, info.tenant, info.host) {
            (TokenKind::Admin, _, _) => Principal::Admin { token: info.id },
            (TokenKind::Tenant, Some(tenant), _) => Principal::Tenant {
                token: info.id,
                tenant,
                scopes: info.scopes,
            },
            (TokenKind::Agent, _, Some(host)) => Principal::Agent {
                token: info.id,
                host,
            },
            (TokenKind::Tenant, None, _) => {
                return Err(ApiError::internal(format!(
                    "tenant token {} has no tenant",
                    info.id
                )));
            }
            (TokenKind::Agent, _, None) => {
                return Err(ApiError::internal(format!(
                    "agent token {} has no host",
                    info.id
                )));
            }
        };
        Ok(Caller(principal))
    }
}

fn presented_token(parts: &Parts) -> Result<String, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "missing credentials: send `Authorization: Bearer <token>`, or basic auth with the token as password",
        )
    })?;
    let header = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !value.is_empty() {
        return Ok(value.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| ApiError::unauthorized("malformed basic credentials"))?;
        let (_user, password) = decoded
            .split_once(':')
            .ok_or_else(|| ApiError::unauthorized("malformed basic credentials: no ':'"))?;
        return Ok(password.to_owned());
    }
    Err(ApiError::unauthorized(
        "unsupported Authorization scheme: use Bearer or Basic",
    ))
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// A fresh token identifier and secret.
pub(crate) fn new_token() -> Result<(TokenId, TokenSecret), getrandom::Error> {
    Ok((
        TokenId::from_random_bytes(random_bytes::<8>()?),
        TokenSecret::from_random_bytes(random_bytes::<TOKEN_SECRET_BYTES>()?),
    ))
}

/// On first start (no admin token in the store), creates one, writes it to
/// `<data_dir>/admin.token` with mode 0600 and prints it once on standard output.
pub(crate) fn bootstrap_admin_token(
    store: &dyn ControlStore,
    data_dir: &Path,
) -> Result<(), ServerError> {
    if store.admin_token_exists()? {
        return Ok(());
    }
    let (id, secret) = new_token().map_err(|e| ServerError::Serve(std::io::Error::other(e)))?;
    let request = TokenCreate {
        name: "bootstrap admin".to_owned(),
        kind: TokenKind::Admin,
        tenant: None,
        host: None,
        scopes: Vec::new(),
    };
    let record = request
        .into_record(id, &secret, OffsetDateTime::now_utc())
        .map_err(StoreError::from)?;
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_secret_file(&path, secret.expose()).map_err(|source| ServerError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    store.insert_token(&record)?;
    println!(
        "admin token (shown once; also saved in {}): {}",
        path.display(),
        secret.expose()
    );
    tracing::info!(token = %record.info.id, path = %path.display(), "created the bootstrap admin token");
    Ok(())
}

fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Describes the calling token.
#[utoipa::path(get, path = "/whoami", tag = "access",
    responses((status = 200, body = WhoAmI), (status = 401, body = crate::ErrorBody)))]
pub(crate) async fn whoami(Caller(principal): Caller) -> Json<WhoAmI> {
    Json(principal.whoami())
}

/// The installation's identifier, created on first start in `<data_dir>/cluster.uuid`.
pub(crate) fn cluster_uuid(data_dir: &Path) -> Result<String, ServerError> {
    let path = data_dir.join(CLUSTER_UUID_FILE);
    let io_error = |source| ServerError::DataDir {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(uuid) => Ok(uuid.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let bytes = random_bytes::<16>().map_err(|e| io_error(std::io::Error::other(e)))?;
            let uuid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            std::fs::write(&path, &uuid).map_err(io_error)?;
            Ok(uuid)
        }
        Err(error) => Err(io_error(error)),
    }
}

const CLUSTER_UUID_FILE: &str = "cluster.uuid";
