//! A local stand-in for Binance's spot market-data REST API, in its documented wire format:
//! `GET /api/v3/klines`, `GET /api/v3/time` and `GET /api/v3/ticker/price`.
//!
//! Two markets:
//! - synthetic ([`MockBinance::start`]): hourly candles from [`START_MS`] with a gap the exchange
//!   really had shape (hours [`GAP`] are simply absent), on this machine's clock (every candle is
//!   long closed);
//! - recorded ([`MockBinance::recorded`]): real candles (the bundled data) under a clock the test
//!   moves ([`MockBinance::set_now`], [`MockBinance::advance`]), so a day of market passes in
//!   seconds: candles opening after the clock do not exist yet, and the one the clock is inside
//!   is served as Binance serves it, the last row with partial values.
//!
//! Klines take `startTime` and/or `endTime` (with only `endTime`, the latest `limit` rows up to
//! it) and `limit` (1..1000, 500). Errors on demand ([`MockBinance::fail_next`]): 429 and 418 with
//! `Retry-After`, 5xx, each with Binance's `{"code", "msg"}` body, or a hang
//! ([`MockBinance::hang_next`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// The first candle's open time of the synthetic market (2022-01-01T00:00:00Z).
pub const START_MS: i64 = 1_640_995_200_000;
pub const HOUR_MS: i64 = 3_600_000;
/// Hours 100..105 of the synthetic market are missing, as after an exchange outage.
pub const GAP: std::ops::Range<i64> = 100..105;

/// One candle: open time (ms), open, high, low, close, volume.
pub type Row = (i64, f64, f64, f64, f64, f64);

#[derive(Debug, Clone)]
enum Market {
    Synthetic,
    /// One symbol's candles at one interval, in order.
    Recorded {
        symbol: String,
        interval: String,
        interval_ms: i64,
        candles: Arc<Vec<Row>>,
    },
}

/// What the next request meets instead of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Status(u16),
    Hang,
}

/// A failure planned for the next request of one path (`None`: of any).
type Planned = (Option<&'static str>, Failure);

#[derive(Debug, Clone)]
struct Shared {
    market: Market,
    /// The exchange's clock (ms); `None`: this machine's.
    clock: Option<Arc<AtomicI64>>,
    /// Failures to meet, each on one path or (`None`) on any.
    failures: Arc<Mutex<VecDeque<Planned>>>,
    /// Klines query strings received, in order.
    requests: Arc<Mutex<Vec<String>>>,
    /// Every request's path and query, in order.
    all: Arc<Mutex<Vec<String>>>,
    /// The `Retry-After` (seconds) of a 429 or 418.
    retry_after: Arc<AtomicI64>,
}

impl Shared {
    fn now(&self) -> i64 {
        match &self.clock {
            Some(clock) => clock.load(Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MockBinance {
    /// The value for `BINANCE_BASE_URL`.
    pub base_url: String,
    shared: Shared,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MockBinance {
    /// The synthetic market on this machine's clock.
    pub async fn start() -> Result<Self> {
        Self::serve(Market::Synthetic, None).await
    }

    /// `candles` of `symbol` at `interval` (`1m`..`1d`), recorded; the exchange's clock at `now`.
    pub async fn recorded(
        symbol: &str,
        interval: &str,
        candles: Vec<Row>,
        now: i64,
    ) -> Result<Self> {
        let interval_ms = match interval {
            "1m" => 60_000,
            "5m" => 300_000,
            "15m" => 900_000,
            "1h" => HOUR_MS,
            "4h" => 4 * HOUR_MS,
            "1d" => 24 * HOUR_MS,
            other => anyhow::bail!("interval {other} is not one the product uses"),
        };
        let market = Market::Recorded {
            symbol: symbol.into(),
            interval: interval.into(),
            interval_ms,
            candles: Arc::new(candles),
        };
        Self::serve(market, Some(Arc::new(AtomicI64::new(now)))).await
    }

    async fn serve(market: Market, clock: Option<Arc<AtomicI64>>) -> Result<Self> {
        let shared = Shared {
            market,
            clock,
            failures: Arc::default(),
            requests: Arc::default(),
            all: Arc::default(),
            retry_after: Arc::new(AtomicI64::new(1)),
        };
        let app = Router::new()
            .route("/api/v3/klines", get(klines))
            .route("/api/v3/time", get(server_time))
            .route("/api/v3/ticker/price", get(ticker))
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

    /// Sets the exchange's clock (a recorded market's).
    pub fn set_now(&self, ms: i64) {
        if let Some(clock) = &self.shared.clock {
            clock.store(ms, Ordering::SeqCst);
        }
    }

    /// Moves the exchange's clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        if let Some(clock) = &self.shared.clock {
            clock.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// The exchange's clock.
    pub fn now(&self) -> i64 {
        self.shared.now()
    }

    /// The `Retry-After` of the next 429s and 418s (seconds; 1 until set).
    pub fn set_retry_after(&self, secs: i64) {
        self.shared.retry_after.store(secs, Ordering::SeqCst);
    }

    /// The next klines requests answer these statuses before the data again: 429 and 418 with
    /// `Retry-After` ([`MockBinance::set_retry_after`]), others (500, 503, ...) without.
    pub fn fail_next(&self, statuses: &[u16]) {
        lock(&self.shared.failures).extend(
            statuses
                .iter()
                .map(|s| (Some("/api/v3/klines"), Failure::Status(*s))),
        );
    }

    /// The next requests of any endpoint answer these statuses (as [`MockBinance::fail_next`]).
    pub fn fail_any_next(&self, statuses: &[u16]) {
        lock(&self.shared.failures).extend(statuses.iter().map(|s| (None, Failure::Status(*s))));
    }

    /// The next `n` requests of any endpoint never answer.
    pub fn hang_next(&self, n: usize) {
        lock(&self.shared.failures).extend(std::iter::repeat_n((None, Failure::Hang), n));
    }

    /// The klines query strings received, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).clone()
    }

    /// Every request's path and query, in order.
    pub fn all_requests(&self) -> Vec<String> {
        lock(&self.shared.all).clone()
    }
}

/// The synthetic market's candle at hour `h` (deterministic prices).
pub fn candle(h: i64) -> Row {
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

fn error(status: StatusCode, code: i64, msg: &str) -> Response {
    (status, axum::Json(json!({ "code": code, "msg": msg }))).into_response()
}

/// Records the request; the failure it meets, if any.
async fn intercept(shared: &Shared, uri: &Uri) -> Option<Response> {
    lock(&shared.all).push(uri.to_string());
    let failure = {
        let mut failures = lock(&shared.failures);
        match failures.front() {
            Some((path, _)) if path.is_none_or(|p| p == uri.path()) => failures.pop_front()?.1,
            _ => return None,
        }
    };
    Some(match failure {
        Failure::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            error(StatusCode::GATEWAY_TIMEOUT, -1007, "Timeout waiting for response.")
        }
        Failure::Status(status @ (429 | 418)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            [(
                header::RETRY_AFTER,
                shared.retry_after.load(Ordering::SeqCst).to_string(),
            )],
            axum::Json(json!({"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."})),
        )
            .into_response(),
        Failure::Status(status) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            -1001,
            "Internal error; unable to process your request. Please try again.",
        ),
    })
}

async fn server_time(State(shared): State<Shared>, uri: Uri) -> Response {
    if let Some(failed) = intercept(&shared, &uri).await {
        return failed;
    }
    axum::Json(json!({ "serverTime": shared.now() })).into_response()
}

/// A candle as the exchange shows it at `now`: whole once closed, else partial (the forming
/// candle: what has traded so far, proportionally).
fn as_of(row: Row, interval_ms: i64, now: i64) -> (Row, bool) {
    let (t, o, h, l, c, v) = row;
    if now >= t + interval_ms {
        return (row, true);
    }
    let part = ((now - t) as f64 / interval_ms as f64).clamp(0.0, 1.0);
    let close = o + (c - o) * part;
    (
        (
            t,
            o,
            h.min(o.max(close) + (h - o.max(c)) * part)
                .max(o.max(close)),
            l.max(o.min(close) - (o.min(c) - l) * part)
                .min(o.min(close)),
            close,
            v * part,
        ),
        false,
    )
}

async fn klines(
    State(shared): State<Shared>,
    uri: Uri,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut line: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    line.sort();
    lock(&shared.requests).push(line.join("&"));
    if let Some(failed) = intercept(&shared, &uri).await {
        return failed;
    }
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let limit = num("limit").unwrap_or(500).clamp(1, 1000) as usize;
    let (start, end) = (num("startTime"), num("endTime"));
    if !q.contains_key("symbol") || !q.contains_key("interval") {
        return error(
            StatusCode::BAD_REQUEST,
            -1102,
            "Mandatory parameter was not sent.",
        );
    }
    let (rows, interval_ms): (Vec<Row>, i64) = match &shared.market {
        Market::Synthetic => {
            let (Some(start), Some(end)) = (start, end) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    -1102,
                    "Mandatory parameter was not sent.",
                );
            };
            if q.get("interval").map(String::as_str) != Some("1h") {
                return error(StatusCode::BAD_REQUEST, -1120, "Invalid interval.");
            }
            let first = ((start - START_MS).max(0) + HOUR_MS - 1) / HOUR_MS;
            let rows = (first..)
                .map(candle)
                .take_while(|c| c.0 <= end)
                .filter(|c| !GAP.contains(&((c.0 - START_MS) / HOUR_MS)))
                .take(limit)
                .collect();
            (rows, HOUR_MS)
        }
        Market::Recorded {
            symbol,
            interval,
            interval_ms,
            candles,
        } => {
            if q.get("symbol") != Some(symbol) {
                return error(StatusCode::BAD_REQUEST, -1121, "Invalid symbol.");
            }
            if q.get("interval") != Some(interval) {
                return error(StatusCode::BAD_REQUEST, -1120, "Invalid interval.");
            }
            let now = shared.now();
            // what exists at the exchange's clock: up to the forming candle
            let existing = candles.iter().filter(|c| c.0 <= now);
            let in_range =
                existing.filter(|c| start.is_none_or(|s| c.0 >= s) && end.is_none_or(|e| c.0 <= e));
            let rows: Vec<Row> = if start.is_none() && end.is_some() {
                // only endTime: the latest `limit` up to it
                let all: Vec<Row> = in_range.copied().collect();
                all[all.len().saturating_sub(limit)..].to_vec()
            } else {
                in_range.take(limit).copied().collect()
            };
            let rows = rows
                .into_iter()
                .map(|r| as_of(r, *interval_ms, now).0)
                .collect();
            (rows, *interval_ms)
        }
    };
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(t, o, h, l, c, v)| {
            json!([
                t,
                o.to_string(),
                h.to_string(),
                l.to_string(),
                c.to_string(),
                v.to_string(),
                t + interval_ms - 1,
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

/// `GET /api/v3/ticker/price?symbols=["BTCUSDT",...]`: the last traded price (a recorded
/// market's forming candle's partial close; the synthetic market's last close).
async fn ticker(
    State(shared): State<Shared>,
    uri: Uri,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(failed) = intercept(&shared, &uri).await {
        return failed;
    }
    let Some(symbols) = q
        .get("symbols")
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            -1102,
            "Mandatory parameter was not sent.",
        );
    };
    let now = shared.now();
    let price = |symbol: &str| -> Option<f64> {
        match &shared.market {
            Market::Synthetic => {
                let h = (now - START_MS).div_euclid(HOUR_MS);
                Some(candle(h).4)
            }
            Market::Recorded {
                symbol: ours,
                interval_ms,
                candles,
                ..
            } => (ours == symbol)
                .then(|| candles.iter().rev().find(|c| c.0 <= now))
                .flatten()
                .map(|c| as_of(*c, *interval_ms, now).0.4),
        }
    };
    let mut out = Vec::new();
    for symbol in symbols {
        match price(&symbol) {
            Some(p) => out.push(json!({ "symbol": symbol, "price": p.to_string() })),
            None => return error(StatusCode::BAD_REQUEST, -1121, "Invalid symbol."),
        }
    }
    axum::Json(out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forming_candle_is_partial_and_consistent_and_a_closed_one_whole() {
        let row = (0, 100.0, 130.0, 90.0, 120.0, 50.0);
        assert_eq!(as_of(row, 1000, 1000), (row, true));
        let ((_, o, h, l, c, v), closed) = as_of(row, 1000, 500);
        assert!(!closed);
        assert_eq!((o, c, v), (100.0, 110.0, 25.0));
        assert!(h >= o.max(c) && h <= 130.0, "{h}");
        assert!(l <= o.min(c) && l >= 90.0, "{l}");
    }
}
