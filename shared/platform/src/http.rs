//! What every HTTP function's router gets around its routes: request ids, a tracing span per
//! request, a body limit (413), panics turned into the JSON error body (the payload is logged,
//! never returned), and JSON 404/405 answers.

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::ApiError;

/// Largest request body any route accepts (1 MiB); larger answers 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// A 201 answer: `body`, and `Location` naming where what was created is read (the OpenAPI
/// document links each create to that read).
pub fn created(location: String, body: impl IntoResponse) -> impl IntoResponse {
    (
        axum::http::StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        body,
    )
}

/// Finishes routes into the service Lambda (and the local tool, and the tests) serve, with the
/// state they need. The local tool merges several functions' routes (each already given its
/// own state) and finishes them once, with `()`.
pub fn service<S>(routes: Router<S>, state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
{
    routes
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                // one access line per request, inside its span (request id, user id, status)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

fn make_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        user_id = tracing::field::Empty,
    )
}

/// The panic's message goes to the log (inside the request's span); the client gets the
/// generic 500 body.
fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = %message, "handler panicked");
    ApiError::internal("handler panicked").into_response()
}
