//! Extractors whose rejection is [`ApiError`], so malformed input gets the same JSON error body
//! as everything else, never axum's plain-text rejections, and in plain words.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::http::BODY_LIMIT_BYTES;

/// A JSON object body. Malformed JSON answers 400; anything but an object, an unknown field or
/// a wrong type answers 422 naming the field in plain words; a body over the limit answers 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::BadRequest(
                "expected a JSON body with content-type application/json".into(),
            ));
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::InvalidBody(format!(
                "the body must be a JSON object, not {}",
                kind(&value)
            )));
        }
        if let Some(path) = nul_at(&value, String::new()) {
            // Postgres text cannot hold it: refused here, named, rather than failing the query
            return Err(ApiError::InvalidBody(format!(
                "{path}: text must not contain the NUL character (U+0000)"
            )));
        }
        serde_path_to_error::deserialize(value)
            .map(Json)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = plain_words(&e.into_inner().to_string());
                ApiError::InvalidBody(if path == "." || path.is_empty() {
                    message
                } else {
                    format!("{path}: {message}")
                })
            })
    }
}

/// The path (`.a.b[2]`) of the first string (or key) holding U+0000, if any.
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => {
            Some(if path.is_empty() { ".".into() } else { path })
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_at(v, here)
            }
        }),
        _ => None,
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// serde's messages with Rust type names replaced by what a client understands
/// (`invalid type: string "x", expected i32` -> `... expected an integer`).
pub fn plain_words(message: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("expected i8", "expected an integer"),
        ("expected i16", "expected an integer"),
        ("expected i32", "expected an integer"),
        ("expected i64", "expected an integer"),
        ("expected u8", "expected a whole number"),
        ("expected u16", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a borrowed string", "expected a string"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("expected unit", "expected null"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: object"),
        ("invalid type: floating point", "invalid type: number"),
        ("invalid type: integer", "invalid type: number"),
    ];
    let mut out = message.to_owned();
    for (rust, plain) in NAMES {
        // whole words only: `expected i32` but not `expected i3`
        let mut from = 0;
        while let Some(at) = out[from..].find(rust).map(|i| i + from) {
            let end = at + rust.len();
            let boundary = out[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_ascii_alphanumeric());
            if boundary {
                out.replace_range(at..end, plain);
                from = at + plain.len();
            } else {
                from = end;
            }
        }
    }
    // `expected struct SettingsUpdate` names a Rust type: the client sent something else
    if let Some(at) = out.find("expected struct ") {
        out.replace_range(at.., "expected an object");
    }
    out
}

/// The raw body (for signature checks over the exact bytes); over the limit answers 413.
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit_bytes: BODY_LIMIT_BYTES,
                    }
                } else {
                    ApiError::BadRequest("the request body could not be read".into())
                }
            })
    }
}

/// Path parameters; a malformed id answers 404 (the resource cannot exist).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query parameters; a malformed query answers 400 naming the problem.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        Self::NotFound("resource")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        // axum prefixes serde's message with its own sentence; keep serde's part
        let text = rejection.body_text();
        let message = text.split_once(": ").map(|(_, m)| m).unwrap_or(&text);
        Self::BadRequest(plain_words(message))
    }
}

/// A list's `limit` (1..100, default 20) and `cursor` (one this API gave out), read once for
/// every list route; a bad one is a 400 naming the parameter.
pub fn page(
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<(i64, Option<store::Cursor>), ApiError> {
    let limit = limit.unwrap_or(store::page::DEFAULT_PAGE);
    if !(1..=store::page::MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: must be between 1 and {}",
            store::page::MAX_PAGE
        )));
    }
    let cursor = match cursor {
        None | Some("") => None,
        Some(text) => Some(store::Cursor::decode(text).ok_or_else(|| {
            ApiError::BadRequest("cursor: not a cursor this API gave out".into())
        })?),
    };
    Ok((limit, cursor))
}

#[cfg(test)]
mod tests {
    use super::plain_words;

    #[test]
    fn rust_type_names_become_plain_words() {
        assert_eq!(
            plain_words("invalid type: string \"5\", expected i32"),
            "invalid type: string \"5\", expected an integer"
        );
        assert_eq!(
            plain_words("invalid type: integer `5`, expected f64"),
            "invalid type: number `5`, expected a number"
        );
        assert_eq!(
            plain_words("invalid type: sequence, expected struct SettingsUpdate"),
            "invalid type: array, expected an object"
        );
        assert_eq!(
            plain_words("expected u8 or more"),
            "expected a whole number or more"
        );
    }
}

/// The client's address, as API Gateway saw it (`requestContext.http.sourceIp`); where no gateway
/// stands in front (the local server, the tests), the TCP peer's address, which is what API
/// Gateway reports. For per-address limits of the public routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        use lambda_http::request::RequestContext;
        if let Some(RequestContext::ApiGatewayV2(context)) =
            parts.extensions.get::<RequestContext>()
            && let Some(ip) = &context.http.source_ip
        {
            return Ok(Self(ip.clone()));
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|axum::extract::ConnectInfo(addr)| addr.ip().to_string());
        Ok(Self(peer.unwrap_or_else(|| "unknown".into())))
    }
}
