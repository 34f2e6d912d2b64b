//! The one error type of the HTTP layer, and the JSON shape of every error response:
//! `{"error": {"type": "...", "reason": "..."}}`, plus `"position": {"start", "end"}` when the
//! error is at a place in a query string.
//!
//! User errors keep their status and message. Internal errors become a 500 whose details are
//! logged, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use caravan_store::StoreError;
use caravan_tenancy::{Denied, TenancyError};
use serde::{Deserialize, Serialize};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    reason: String,
    position: Option<ErrorPosition>,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
    /// The HTTP status, repeated (as Elasticsearch does).
    #[serde(default)]
    pub status: u16,
}

/// What went wrong: a stable machine-readable type and a human-readable reason.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable error type, such as `not_found` or `invalid_request`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What is wrong and where.
    pub reason: String,
    /// The same type and reason, as Elasticsearch's clients read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_cause: Vec<ErrorCause>,
    /// Where the problem is in the request's query string, when it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<ErrorPosition>,
}

/// A place in a query string, as UTF-8 byte offsets: `start..end` is the part at fault (a
/// clause: `usrId:42`); `start == end` points between two characters (a syntax error: the
/// first character that does not fit, or the end of the query).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorPosition {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// One cause of an error (Elasticsearch's `root_cause` entries).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorCause {
    /// Stable error type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What is wrong and where.
    pub reason: String,
}

impl ApiError {
    /// An error with an explicit status, type and reason.
    pub fn new(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            reason: reason.into(),
            position: None,
        }
    }

    /// The same error, at a place in the request's query string.
    pub fn at(mut self, position: ErrorPosition) -> Self {
        self.position = Some(position);
        self
    }

    /// 400: the request is malformed or a value is invalid.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", reason)
    }

    /// 401: no valid token.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", reason)
    }

    /// 404: the thing does not exist (or belongs to another tenant).
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    /// 503: the server is not ready or is shutting down.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
    }

    /// 500: logs the cause, returns a generic reason.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind.to_owned(),
                root_cause: vec![ErrorCause {
                    kind: self.kind.to_owned(),
                    reason: self.reason.clone(),
                }],
                reason: self.reason,
                position: self.position,
            },
            status: self.status.as_u16(),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => Self::not_found(error.to_string()),
            StoreError::AlreadyExists { .. } => {
                Self::new(StatusCode::CONFLICT, "already_exists", error.to_string())
            }
            StoreError::InUse { .. } => {
                Self::new(StatusCode::CONFLICT, "in_use", error.to_string())
            }
            StoreError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            StoreError::Invalid(error) => error.into(),
            StoreError::Backend(_) => Self::internal(error),
        }
    }
}

impl From<TenancyError> for ApiError {
    fn from(error: TenancyError) -> Self {
        Self::invalid(error.to_string())
    }
}

impl ApiError {
    /// Maps an access refusal; `what` names the resource for the not-found message.
    pub fn denied(denied: Denied, what: impl std::fmt::Display) -> Self {
        match denied {
            Denied::NotFound => Self::not_found(format!("{what} not found")),
            Denied::Forbidden(_) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", denied.to_string())
            }
        }
    }
}
