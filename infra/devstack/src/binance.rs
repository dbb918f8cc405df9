//! A local stand-in for Binance's klines endpoint (`GET /api/v3/klines`, and its clock,
//! `GET /api/v3/time`), in its documented wire
//! format: hourly candles from a fixed start with a gap the exchange really had shape (missing
//! hours are simply absent), pages of at most `limit` rows, and rate limiting on demand (429 or 418
//! with `Retry-After`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// The first candle's open time (2022-01-01T00:00:00Z).
pub const START_MS: i64 = 1_640_995_200_000;
pub const HOUR_MS: i64 = 3_600_000;
/// Hours 100..105 are missing, as after an exchange outage.
pub const GAP: std::ops::Range<i64> = 100..105;

#[derive(Debug, Clone, Default)]
struct Shared {
    /// Statuses to answer before serving normally again (429 / 418, each with Retry-After: 1).
    failures: Arc<Mutex<VecDeque<u16>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

#[derive(Debug, Clone)]
pub struct MockBinance {
    /// The value for `BINANCE_BASE_URL`.
    pub base_url: String,
    shared: Shared,
}

impl MockBinance {
    pub async fn start() -> Result<Self> {
        let shared = Shared::default();
        let app = Router::new()
            .route("/api/v3/klines", get(klines))
            .route("/api/v3/time", get(server_time))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the mock Binance")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url, shared })
    }

    /// The next requests answer these statuses (429, 418) before the data again.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.shared
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(statuses);
    }

    /// The query strings received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// `GET /api/v3/time`: the exchange's clock (this machine's: every candle served is long closed).
async fn server_time() -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    axum::Json(json!({ "serverTime": now })).into_response()
}

/// The mock's candle at hour `h` (deterministic prices).
pub fn candle(h: i64) -> (i64, f64, f64, f64, f64, f64) {
    let open = 40_000.0 + (h % 50) as f64 * 10.0;
    (
        START_MS + h * HOUR_MS,
        open,
        open + 25.0,
        open - 20.0,
        open + 5.0,
        10.0 + (h % 7) as f64,
    )
}

async fn klines(
    State(shared): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut line: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    line.sort();
    shared
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(line.join("&"));
    if let Some(status) = shared
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front()
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        return (
            status,
            [(header::RETRY_AFTER, "1")],
            axum::Json(json!({"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."})),
        )
            .into_response();
    }
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(start), Some(end)) = (num("startTime"), num("endTime")) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": -1102, "msg": "Mandatory parameter was not sent."})),
        )
            .into_response();
    };
    if q.get("interval").map(String::as_str) != Some("1h") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": -1120, "msg": "Invalid interval."})),
        )
            .into_response();
    }
    let limit = num("limit").unwrap_or(500).clamp(1, 1000);
    let first = ((start - START_MS).max(0) + HOUR_MS - 1) / HOUR_MS;
    let rows: Vec<serde_json::Value> = (first..)
        .map(candle)
        .take_while(|c| c.0 <= end)
        .filter(|c| !GAP.contains(&((c.0 - START_MS) / HOUR_MS)))
        .take(limit as usize)
        .map(|(t, o, h, l, c, v)| {
            json!([
                t,
                o.to_string(),
                h.to_string(),
                l.to_string(),
                c.to_string(),
                v.to_string(),
                t + HOUR_MS - 1,
                "0",
                100,
                "0",
                "0",
                "0"
            ])
        })
        .collect();
    axum::Json(rows).into_response()
}
