//! The one error type of the HTTP layer and its one mapping to a response.
//!
//! Every failure answers the JSON body of DESIGN section 7:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`. Internal failures answer a
//! generic message; their cause (with its source chain) is logged, never sent. Database errors
//! keep their source; violations of the schema's named constraints become 409/422 naming the
//! field ([`CONSTRAINTS`]); transient database failures answer 503 with `Retry-After`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

pub use store::FieldError;

pub type ApiResult<T> = Result<T, ApiError>;

/// Seconds a client should wait before retrying after a transient failure.
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read (malformed JSON, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid credentials. The message says what was wrong, never key material.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: nothing here, or it belongs to someone else.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405: the route exists, not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 409: conflicts with existing state; `field` names the field when one is to blame.
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    /// 409 with a code of its own: a per-user limit is reached (`session_limit_reached`,
    /// `forward_limit_reached`), or the action does not apply (`not_supported`).
    #[error("{message}")]
    LimitReached { code: &'static str, message: String },
    /// 413: the body is larger than the route accepts.
    #[error("request body too large: at most {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    /// 422: well-formed but invalid; each field is named.
    #[error("{}", describe(.0))]
    Validation(Vec<FieldError>),
    /// 422: the body does not match the expected shape (unknown field, wrong type).
    #[error("{0}")]
    InvalidBody(String),
    /// 429: slow down.
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// 503: a dependency (Clerk's keys, ...) is unavailable right now; the cause is logged.
    #[error("service temporarily unavailable")]
    Unavailable(String),
    /// 503 when transient (connections exhausted, serialization failure, shutdown, network),
    /// else 500. The source is logged, never returned.
    #[error("{}", if is_transient(.0) { "service temporarily unavailable" } else { "internal error" })]
    Database(#[source] sqlx::Error),
    /// 500: a bug or an unexpected failure. The cause is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

fn describe(fields: &[FieldError]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect();
    format!("invalid request: {}", parts.join("; "))
}

/// A named constraint of the schema that a request can violate, and what the client is told.
#[derive(Debug, Clone, Copy)]
pub struct Constraint {
    pub name: &'static str,
    /// 409 (conflict with another row) or 422 (an invalid reference or value).
    pub status: StatusCode,
    pub field: &'static str,
    pub message: &'static str,
}

const fn conflict(name: &'static str, field: &'static str, message: &'static str) -> Constraint {
    Constraint {
        name,
        status: StatusCode::CONFLICT,
        field,
        message,
    }
}

const fn invalid(name: &'static str, field: &'static str, message: &'static str) -> Constraint {
    Constraint {
        name,
        status: StatusCode::UNPROCESSABLE_ENTITY,
        field,
        message,
    }
}

/// Every constraint a request can run into, by name (the schema test checks that each exists).
/// A foreign key to another user's row fails exactly like one to a missing row: "not found".
pub const CONSTRAINTS: &[Constraint] = &[
    conflict(
        "agents_user_id_name_key",
        "name",
        "you already have an agent with this name",
    ),
    conflict(
        "api_keys_one_default_per_user",
        "is_default",
        "another key is already your default",
    ),
    invalid(
        "agents_temperature_check",
        "temperature",
        "must be between 0 and 2",
    ),
    invalid(
        "agents_api_key_owner_fkey",
        "api_key_id",
        "API key not found",
    ),
    invalid(
        "test_sessions_agent_owner_fkey",
        "agent_id",
        "agent not found",
    ),
    invalid(
        "test_results_agent_owner_fkey",
        "agent_id",
        "agent not found",
    ),
    invalid(
        "trades_session_owner_fkey",
        "session_id",
        "session not found",
    ),
    invalid(
        "ai_thoughts_session_owner_fkey",
        "session_id",
        "session not found",
    ),
    invalid(
        "test_results_session_owner_fkey",
        "session_id",
        "session not found",
    ),
    invalid(
        "certificates_result_owner_fkey",
        "result_id",
        "result not found",
    ),
    conflict(
        "test_results_session_key",
        "session_id",
        "this session already has a result",
    ),
    conflict(
        "certificates_result_key",
        "result_id",
        "this result already has a certificate",
    ),
];

/// The client-facing error for a violation of one of [`CONSTRAINTS`], if `err` is one.
pub fn constraint_error(err: &sqlx::Error) -> Option<ApiError> {
    let name = err.as_database_error()?.constraint()?;
    let c = CONSTRAINTS.iter().find(|c| c.name == name)?;
    Some(if c.status == StatusCode::CONFLICT {
        ApiError::Conflict {
            field: Some(c.field),
            message: c.message.to_owned(),
        }
    } else {
        ApiError::field(c.field, c.message)
    })
}

/// Postgres error classes that pass on their own: retry later.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                // serialization_failure, deadlock_detected, too_many_connections,
                // admin_shutdown, crash_shutdown, cannot_connect_now, connection exceptions
                Some("40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03")
            ) || db.code().is_some_and(|c| c.starts_with("08"))
        }
        _ => false,
    }
}

impl ApiError {
    /// A 422 naming one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// `Ok` when `errors` is empty, else a 422 naming every invalid field.
    pub fn check(errors: Vec<FieldError>) -> Result<(), Self> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Self::Validation(errors))
        }
    }

    /// Wraps an unexpected failure; `cause` is logged when the response is built.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } | Self::LimitReached { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) | Self::InvalidBody(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if is_transient(e) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict { .. } => "conflict",
            Self::LimitReached { code, .. } => code,
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Validation(_) => "validation_failed",
            Self::InvalidBody(_) => "invalid_body",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Database(e) if is_transient(e) => "unavailable",
            Self::Database(_) | Self::Internal(_) => "internal",
        }
    }

    /// Seconds to wait before retrying, for 429 and 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER_SECS),
            _ => None,
        }
    }

    fn details(&self) -> Value {
        match self {
            Self::Validation(fields) => json!({ "fields": fields }),
            Self::Conflict {
                field: Some(field),
                message,
            } => json!({ "fields": [FieldError::new(*field, message.clone())] }),
            Self::PayloadTooLarge { limit_bytes } => json!({ "limit_bytes": limit_bytes }),
            _ => match self.retry_after() {
                Some(secs) => json!({ "retry_after": secs }),
                None => Value::Null,
            },
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        constraint_error(&err).unwrap_or(Self::Database(err))
    }
}

/// The error body of DESIGN section 7, for the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`validation_failed`, `not_found`, ...).
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// `{"fields": [{"field", "message"}]}` for 409/422 naming fields, `{"retry_after"}` for
    /// 429/503, else null.
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

/// The error's cause chain, for the log.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(cause) | Self::Unavailable(cause) => {
                tracing::error!(code = self.code(), cause = %cause, "request failed");
            }
            Self::Database(err) => {
                tracing::error!(code = self.code(), cause = %chain(err), "request failed");
            }
            _ => tracing::info!(code = self.code(), message = %self, "request rejected"),
        }
        let body = json!({
            "error": { "code": self.code(), "message": self.to_string(), "details": self.details() }
        });
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let err = ApiError::internal("relation \"users\" does not exist at 10.0.0.5");
        assert_eq!(err.to_string(), "internal error");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn validation_names_every_field() {
        let err = ApiError::Validation(vec![
            FieldError::new("theme", "must be one of dark, light, system"),
            FieldError::new("max_leverage", "must be between 1 and 5"),
        ]);
        assert_eq!(
            err.to_string(),
            "invalid request: theme: must be one of dark, light, system; max_leverage: must be between 1 and 5"
        );
        assert_eq!(err.details()["fields"][1]["field"], "max_leverage");
    }

    #[test]
    fn a_lost_connection_is_a_503_that_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let err = ApiError::from(sqlx::Error::Io(io));
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.retry_after(), Some(RETRY_AFTER_SECS));
        assert_eq!(err.to_string(), "service temporarily unavailable");
        let source = std::error::Error::source(&err).expect("the database error is the source");
        assert!(chain(source).contains("reset by peer"));
        let response = err.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn other_database_errors_are_500s() {
        let err = ApiError::from(sqlx::Error::RowNotFound);
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.to_string(), "internal error");
        assert_eq!(err.retry_after(), None);
    }
}
