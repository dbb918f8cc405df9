//! A local stand-in for OpenRouter: a real HTTP server on 127.0.0.1 speaking OpenRouter's
//! documented wire format (PLATFORM.md, OpenRouter), including its error responses and slow
//! answers. What it answers to `GET /api/v1/key` depends on the key it is sent:
//!
//! | key contains | answer |
//! |---|---|
//! | `spent` | 200, a limit of 10 with 0 remaining |
//! | `reject` | 401 `{"error": {"code": 401, "message": "No auth credentials found"}}` |
//! | `forbid` | 403 |
//! | `broke` | 402 `{"error": {"code": 402, "message": "Insufficient credits"}}` |
//! | `busy` | 429 with `Retry-After: 30` |
//! | `down` | 500 |
//! | `slow` | 200 after 30 s (longer than any client timeout) |
//! | anything else | 200 `{"data": {"label", "limit": 25, "limit_remaining": 20.5, "usage": 4.5, ...}}` |
//!
//! Every request's bearer token is recorded, so a test can check what was sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// A running mock; its server lives as long as the test's runtime.
#[derive(Debug, Clone)]
pub struct MockOpenRouter {
    /// The value for `OPENROUTER_BASE_URL`.
    pub base_url: String,
    shared: Shared,
}

#[derive(Debug, Clone, Default)]
struct Shared {
    seen: Arc<Mutex<Vec<String>>>,
    fail_with: Arc<Mutex<Option<u16>>>,
}

impl MockOpenRouter {
    /// Serves on a free port of 127.0.0.1 on the current runtime.
    pub async fn start() -> Result<Self> {
        let shared = Shared::default();
        let app = Router::new()
            .route("/api/v1/key", get(key))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the mock OpenRouter")?;
        let base_url = format!("http://{}/api/v1", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url, shared })
    }

    /// The bearer tokens received so far, in order.
    pub fn keys_seen(&self) -> Vec<String> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// From now on every request answers `status` (401, 402, 429, 500...), or normally again
    /// with `None`.
    pub fn fail_with(&self, status: Option<u16>) {
        *self
            .shared
            .fail_with
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = status;
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": status.as_u16(), "message": message } })),
    )
        .into_response()
}

async fn key(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let Some(key) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
    else {
        return error(StatusCode::UNAUTHORIZED, "No auth credentials found");
    };
    shared
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(key.clone());
    let forced = *shared.fail_with.lock().unwrap_or_else(|p| p.into_inner());
    let key = match forced {
        Some(401) => "reject".to_owned(),
        Some(402) => "broke".to_owned(),
        Some(429) => "busy".to_owned(),
        Some(_) => "down".to_owned(),
        None => key,
    };
    let label = format!(
        "{}...{}",
        &key[..key.len().min(10)],
        &key[key.len().saturating_sub(3)..]
    );
    if key.contains("reject") {
        return error(StatusCode::UNAUTHORIZED, "No auth credentials found");
    }
    if key.contains("forbid") {
        return error(StatusCode::FORBIDDEN, "Key disabled");
    }
    if key.contains("broke") {
        return error(StatusCode::PAYMENT_REQUIRED, "Insufficient credits");
    }
    if key.contains("busy") {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
        return response;
    }
    if key.contains("down") {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    if key.contains("slow") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let (limit, remaining, usage) = if key.contains("spent") {
        (10.0, 0.0, 10.0)
    } else {
        (25.0, 20.5, 4.5)
    };
    axum::Json(json!({
        "data": {
            "label": label,
            "limit": limit,
            "limit_remaining": remaining,
            "limit_reset": null,
            "usage": usage,
            "usage_daily": 0.5,
            "usage_weekly": 1.5,
            "usage_monthly": 4.5,
            "is_free_tier": false,
            "is_provisioning_key": false,
        }
    }))
    .into_response()
}
