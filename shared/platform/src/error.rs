//! The one error type of the HTTP layer and its one mapping to a response.
//!
//! Every failure answers the JSON body of DESIGN section 7:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`. Internal failures answer a
//! generic message; their cause is logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

pub type ApiResult<T> = Result<T, ApiError>;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read (malformed JSON, bad path or query).
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
    /// 409: conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// 422: well-formed but invalid; each field is named.
    #[error("{}", describe(.0))]
    Validation(Vec<FieldError>),
    /// 422: the body does not match the expected shape (unknown field, wrong type).
    #[error("{0}")]
    InvalidBody(String),
    /// 429: slow down.
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// 503: a dependency (database, Clerk) is unavailable right now.
    #[error("service temporarily unavailable")]
    Unavailable(String),
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
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Validation(_) | Self::InvalidBody(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::Validation(_) => "validation_failed",
            Self::InvalidBody(_) => "invalid_body",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn details(&self) -> Value {
        match self {
            Self::Validation(fields) => json!({ "fields": fields }),
            Self::RateLimited { retry_after_secs } => json!({ "retry_after": retry_after_secs }),
            _ => Value::Null,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable(format!("database: {err}"))
            }
            _ => Self::Internal(format!("database: {err}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) | Self::Unavailable(cause) => {
                tracing::error!(code = self.code(), cause = %cause, "request failed");
            }
            _ => tracing::info!(code = self.code(), message = %self, "request rejected"),
        }
        let status = self.status();
        let body = json!({
            "error": { "code": self.code(), "message": self.to_string(), "details": self.details() }
        });
        let mut response = (status, Json(body)).into_response();
        if let Self::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
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
}
