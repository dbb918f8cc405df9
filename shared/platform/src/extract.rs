//! Extractors whose rejection is [`ApiError`], so malformed input gets the same JSON error body
//! as everything else, never axum's plain-text rejections.

use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A JSON body. Unknown fields and wrong types answer 422 naming the field; unreadable JSON 400.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; a malformed id answers 404 (the resource cannot exist).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query parameters; a malformed query answers 400 naming the problem.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// axum prefixes serde's message with its own sentence; keep only serde's part, which names the
/// field (`max_leverage: invalid type: ...`, ``unknown field `foo` ``).
fn serde_message(text: &str) -> String {
    text.split_once(": ")
        .map(|(_, rest)| rest)
        .unwrap_or(text)
        .to_owned()
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => Self::InvalidBody(serde_message(&e.body_text())),
            JsonRejection::JsonSyntaxError(e) => {
                Self::BadRequest(format!("malformed JSON: {}", serde_message(&e.body_text())))
            }
            JsonRejection::MissingJsonContentType(_) => {
                Self::BadRequest("expected a JSON body with content-type application/json".into())
            }
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        Self::NotFound("resource")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(serde_message(&rejection.body_text()))
    }
}
