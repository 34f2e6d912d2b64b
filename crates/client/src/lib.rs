//! A client of Caravan's native API.
//!
//! [`Client`] sends authenticated requests and turns error responses
//! (`{"error": {"type", "reason"}}`) into [`ClientError::Api`] carrying the server's message, so
//! that callers can show it as is.

mod fleet;

use std::time::Duration;

use caravan_api::{
    DayUsage, LogPurge, LogSearch, LogSearchResult, PurgedPartition, SchemaPush, SchemaPushed,
    SchemaVersionSummary, SchemaVersionView,
};
use caravan_tenancy::{
    Tenant, TenantCreate, TenantName, TenantUpdate, TokenCreate, TokenCreated, TokenInfo, WhoAmI,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use fleet::{DesiredAnswer, EventQuery};

/// How long one request may take before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{reason} (HTTP {status}, {kind})")]
    Api {
        status: u16,
        kind: String,
        reason: String,
    },
    /// The server could not be reached or the connection failed.
    #[error("cannot reach the server at {url}: {message}")]
    Transport { url: String, message: String },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

/// A client bound to one server and one token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `base_url` (such as `http://127.0.0.1:9200`), authenticating
    /// with `token` when given.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Transport {
                url: base_url.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ClientError> {
        let response = request.send().await.map_err(|e| ClientError::Transport {
            url: self.base_url.clone(),
            message: e.to_string(),
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| ClientError::Transport {
            url: self.base_url.clone(),
            message: e.to_string(),
        })?;
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        let body = if body.is_empty() {
            &b"null"[..]
        } else {
            &body[..]
        };
        serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET path`, decoding the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, path)).await
    }

    /// `method path` with a JSON body, decoding the JSON answer.
    pub async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.request(method, path).json(body)).await
    }

    /// `POST /_bulk` with an NDJSON body (the Elasticsearch-compatible ingestion), returning
    /// the per-item answer.
    pub async fn bulk(&self, ndjson: Vec<u8>) -> Result<serde_json::Value, ClientError> {
        let request = self
            .request(Method::POST, "/_bulk")
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(ndjson);
        self.send(request).await
    }

    /// `DELETE path`, decoding the JSON answer (`()` for 204).
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Who the token is.
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.get("/api/v1/whoami").await
    }

    /// Tenants visible to the token.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, ClientError> {
        self.get("/api/v1/tenants").await
    }

    /// One tenant.
    pub async fn tenant(&self, name: &TenantName) -> Result<Tenant, ClientError> {
        self.get(&format!("/api/v1/tenants/{name}")).await
    }

    /// Creates a tenant.
    pub async fn create_tenant(&self, request: &TenantCreate) -> Result<Tenant, ClientError> {
        self.send_json(Method::POST, "/api/v1/tenants", request)
            .await
    }

    /// Changes a tenant.
    pub async fn update_tenant(
        &self,
        name: &TenantName,
        update: &TenantUpdate,
    ) -> Result<Tenant, ClientError> {
        self.send_json(Method::PATCH, &format!("/api/v1/tenants/{name}"), update)
            .await
    }

    /// Deletes a tenant; `force` also deletes what it owns.
    pub async fn delete_tenant(&self, name: &TenantName, force: bool) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/tenants/{name}?force={force}"))
            .await
    }

    /// Tokens, optionally one tenant's.
    pub async fn tokens(&self, tenant: Option<&TenantName>) -> Result<Vec<TokenInfo>, ClientError> {
        match tenant {
            Some(tenant) => self.get(&format!("/api/v1/tokens?tenant={tenant}")).await,
            None => self.get("/api/v1/tokens").await,
        }
    }

    /// Creates a token; the answer holds its secret, shown once.
    pub async fn create_token(&self, request: &TokenCreate) -> Result<TokenCreated, ClientError> {
        self.send_json(Method::POST, "/api/v1/tokens", request)
            .await
    }

    /// Revokes a token.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenInfo, ClientError> {
        self.delete(&format!("/api/v1/tokens/{id}")).await
    }
}

impl Client {
    fn schema_path(tenant: Option<&TenantName>) -> String {
        match tenant {
            Some(tenant) => format!("/api/v1/tenants/{tenant}/schema"),
            None => "/api/v1/schema".to_owned(),
        }
    }

    /// Pushes a new version of the common schema, or of a tenant's extension.
    pub async fn push_schema(
        &self,
        tenant: Option<&TenantName>,
        push: &SchemaPush,
    ) -> Result<SchemaPushed, ClientError> {
        self.send_json(Method::POST, &Self::schema_path(tenant), push)
            .await
    }

    /// A version (default the latest) of the common schema or of a tenant's extension.
    pub async fn schema(
        &self,
        tenant: Option<&TenantName>,
        version: Option<u64>,
    ) -> Result<SchemaVersionView, ClientError> {
        let path = Self::schema_path(tenant);
        match version {
            Some(version) => self.get(&format!("{path}?version={version}")).await,
            None => self.get(&path).await,
        }
    }

    /// The versions of the common schema or of a tenant's extension.
    pub async fn schema_versions(
        &self,
        tenant: Option<&TenantName>,
    ) -> Result<Vec<SchemaVersionSummary>, ClientError> {
        self.get(&format!("{}/versions", Self::schema_path(tenant)))
            .await
    }

    /// The dictionary in force for a tenant (common schema plus its extension), as JSON.
    pub async fn tenant_dictionary(
        &self,
        tenant: &TenantName,
    ) -> Result<serde_json::Value, ClientError> {
        self.get(&format!("/api/v1/tenants/{tenant}/schema/dictionary"))
            .await
    }

    /// An Elasticsearch index template for a tenant, as JSON.
    pub async fn tenant_template(
        &self,
        tenant: &TenantName,
        format: &str,
    ) -> Result<serde_json::Value, ClientError> {
        self.get(&format!(
            "/api/v1/tenants/{tenant}/schema/template?format={format}"
        ))
        .await
    }
}

impl Client {
    /// A tenant's log usage per day, the most recent first.
    pub async fn log_usage(
        &self,
        tenant: &TenantName,
        days: u32,
    ) -> Result<Vec<DayUsage>, ClientError> {
        self.get(&format!("/api/v1/tenants/{tenant}/logs/usage?days={days}"))
            .await
    }

    /// Searches logs (`POST /api/v1/logs/search`).
    pub async fn search_logs(&self, request: &LogSearch) -> Result<LogSearchResult, ClientError> {
        self.send_json(Method::POST, "/api/v1/logs/search", request)
            .await
    }

    /// Drops a day, or every day before a date, of a tenant's logs.
    pub async fn purge_logs(
        &self,
        tenant: &TenantName,
        request: &LogPurge,
    ) -> Result<Vec<PurgedPartition>, ClientError> {
        self.send_json(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/logs/purge"),
            request,
        )
        .await
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        #[serde(rename = "type")]
        kind: String,
        reason: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { error }) => ClientError::Api {
            status: status.as_u16(),
            kind: error.kind,
            reason: error.reason,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            kind: "http".to_owned(),
            reason: String::from_utf8_lossy(body).chars().take(500).collect(),
        },
    }
}
