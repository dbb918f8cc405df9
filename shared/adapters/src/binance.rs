//! Binance spot klines (PLATFORM.md, market data): `GET {BINANCE_BASE_URL}/api/v3/klines` with
//! `symbol`, `interval`, `startTime`, `endTime` (inclusive, ms) and `limit` (at most 1,000);
//! rows are `[openTime, "open", "high", "low", "close", "volume", closeTime, ...]`. A candle is
//! closed when its `closeTime` is earlier than the exchange's clock (`GET /api/v3/time`,
//! `serverTime`), never judged by the local clock: the candle still forming (usually the last
//! row) is dropped, so nobody caches or decides on it. Pages of 1,000
//! until the range is covered; 429 (rate limited) and 418 (banned for ignoring 429s) hold every
//! request for their `Retry-After` (60 s when absent): the hold is written to the client's
//! [`Gate`] (shared by every function and invocation), and a request waits it out only when the
//! wait and the request fit before the caller's deadline, else it is not sent
//! ([`BinanceError::BackingOff`]). Gaps in the exchange's data are kept.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use config::{ConfigError, Env, FromEnv};
use serde_json::Value;

/// One candle: open time (ms), open, high, low, close, volume.
pub type Kline = (i64, f64, f64, f64, f64, f64);

/// Rows per request (Binance's maximum).
pub const PAGE: usize = 1000;
/// Attempts per page when rate limited.
const ATTEMPTS: usize = 5;
/// Longest wait we accept for one `Retry-After`.
const MAX_WAIT: Duration = Duration::from_secs(120);
/// The least time a request is started with.
pub const MIN_REQUEST: Duration = Duration::from_secs(1);
/// The hold after a 429 or 418 without `Retry-After`.
pub const DEFAULT_RETRY_AFTER: u64 = 60;

/// A boxed future of a [`Gate`].
pub type GateFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the exchange's back-off is kept so that every invocation of every function reads it
/// (a Postgres row in AlphaLab: `store::exchange`). Errors of the store are the gate's to log:
/// an unreadable gate lets requests through.
pub trait Gate: Send + Sync {
    /// Epoch milliseconds before which no request may go, if a hold is on.
    fn until(&self) -> GateFuture<'_, Option<i64>>;
    /// Holds every request until `until_ms`, for `reason`.
    fn hold(&self, until_ms: i64, reason: String) -> GateFuture<'_, ()>;
}

/// `symbol` and `interval` go into the query string as they are: letters and digits only.
fn plain_names(symbol: &str, interval: &str) -> Result<(), BinanceError> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if plain(symbol) && plain(interval) {
        return Ok(());
    }
    Err(BinanceError::InvalidBody(format!(
        "symbol {symbol:?} and interval {interval:?} must be letters and digits"
    )))
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// `BINANCE_BASE_URL` (default `https://data-api.binance.vision`, the market-data host) and
/// `BINANCE_TIMEOUT_SECS` (default 10).
#[derive(Debug, Clone)]
pub struct BinanceConfig {
    pub base_url: String,
    pub timeout: Duration,
}

impl FromEnv for BinanceConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let base_url = env
            .get("BINANCE_BASE_URL")
            .unwrap_or_else(|| "https://data-api.binance.vision".into())
            .trim_end_matches('/')
            .to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "BINANCE_BASE_URL",
                reason: "expected an http(s) URL".into(),
            });
        }
        Ok(Self {
            base_url,
            timeout: Duration::from_secs(env.number("BINANCE_TIMEOUT_SECS", 10, 1..=60)?),
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BinanceError {
    #[error("Binance kept rate limiting after {ATTEMPTS} attempts")]
    RateLimited,
    #[error("Binance asked to wait {0} s, longer than we wait")]
    WaitTooLong(u64),
    #[error("Binance answered {status}: {body}")]
    UnexpectedStatus { status: u16, body: String },
    #[error("Binance unreachable: {0}")]
    Network(String),
    #[error("unreadable klines: {0}")]
    InvalidBody(String),
    /// The request, or the wait before it, would not end before the caller's deadline.
    #[error("no time left for another Binance request before the deadline")]
    OutOfTime,
    /// Binance rate limited us (429) or banned us for a while (418): no request goes before
    /// this time (epoch ms).
    #[error("Binance asked us to wait; no request before {until_ms} (epoch ms)")]
    BackingOff { until_ms: i64 },
}

#[derive(Clone)]
pub struct Binance {
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
    gate: Option<Arc<dyn Gate>>,
}

impl std::fmt::Debug for Binance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binance")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("gated", &self.gate.is_some())
            .finish()
    }
}

impl Binance {
    pub fn new(config: &BinanceConfig) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(config.timeout)
                .build()
                .unwrap_or_default(),
            base_url: config.base_url.clone(),
            timeout: config.timeout,
            gate: None,
        }
    }

    /// This client with its back-off kept in `gate` (read before every request, written on a
    /// 429 or 418).
    pub fn with_gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Waits out the gate's hold when it fits before `deadline`; else the hold, as an error.
    async fn pass_gate(&self, deadline: Instant) -> Result<(), BinanceError> {
        let Some(gate) = &self.gate else {
            return Ok(());
        };
        let Some(until_ms) = gate.until().await else {
            return Ok(());
        };
        let wait = Duration::from_millis(until_ms.saturating_sub(epoch_ms()).max(0) as u64);
        if wait.is_zero() {
            return Ok(());
        }
        if wait > MAX_WAIT || Instant::now() + wait + MIN_REQUEST > deadline {
            return Err(BinanceError::BackingOff { until_ms });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// The exchange's clock (`GET /api/v3/time`), epoch milliseconds.
    pub async fn server_time(&self, deadline: Instant) -> Result<i64, BinanceError> {
        let body = self
            .get(&format!("{}/api/v3/time", self.base_url), deadline)
            .await?;
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("serverTime").and_then(Value::as_i64))
            .ok_or_else(|| BinanceError::InvalidBody(body.chars().take(200).collect()))
    }

    /// Every closed candle of `symbol` at `interval` (`1h`, `1d`, ...) whose open time is in
    /// `[start_ms, end_ms)`, in order, page after page, all before `deadline` (the exchange's
    /// clock is read first).
    pub async fn klines(
        &self,
        symbol: &str,
        interval: &str,
        start_ms: i64,
        end_ms: i64,
        deadline: Instant,
    ) -> Result<Vec<Kline>, BinanceError> {
        let now = self.server_time(deadline).await?;
        let mut out: Vec<Kline> = Vec::new();
        let mut from = start_ms;
        while from < end_ms {
            let page = self
                .page(symbol, interval, from, end_ms, now, deadline)
                .await?;
            let Some(&(last, ..)) = page.last() else {
                break;
            };
            let full = page.len() == PAGE;
            out.extend(page);
            if !full {
                break;
            }
            from = last + 1;
        }
        Ok(out)
    }

    /// One page: at most [`PAGE`] candles whose open time is in `[start_ms, end_ms)`, from the
    /// first, closed before the exchange time `closed_before` (ms). A request's timeout ends at `deadline` at the latest (none starts with less than
    /// [`MIN_REQUEST`] left); a `Retry-After` is waited out only when the next request still has
    /// that much time after it.
    pub async fn page(
        &self,
        symbol: &str,
        interval: &str,
        start_ms: i64,
        end_ms: i64,
        closed_before: i64,
        deadline: Instant,
    ) -> Result<Vec<Kline>, BinanceError> {
        plain_names(symbol, interval)?;
        let end = end_ms - 1;
        let body = self
            .get(
                &format!(
                    "{}/api/v3/klines?symbol={symbol}&interval={interval}&startTime={start_ms}&endTime={end}&limit={PAGE}",
                    self.base_url
                ),
                deadline,
            )
            .await?;
        Ok(parse_rows(&body)?
            .into_iter()
            .filter(|(k, close_time)| {
                k.0 >= start_ms && k.0 < end_ms && *close_time < closed_before
            })
            .map(|(k, _)| k)
            .collect())
    }

    /// The latest `limit` (1..1000) candles of `symbol` at `interval` whose open time is at or
    /// before `end_ms` and that closed before the exchange time `closed_before` (a warm-up:
    /// `endTime` and `limit`, no `startTime`), in order.
    pub async fn latest(
        &self,
        symbol: &str,
        interval: &str,
        end_ms: i64,
        limit: usize,
        closed_before: i64,
        deadline: Instant,
    ) -> Result<Vec<Kline>, BinanceError> {
        plain_names(symbol, interval)?;
        let limit = limit.clamp(1, PAGE);
        let body = self
            .get(
                &format!(
                    "{}/api/v3/klines?symbol={symbol}&interval={interval}&endTime={end_ms}&limit={limit}",
                    self.base_url
                ),
                deadline,
            )
            .await?;
        Ok(parse_rows(&body)?
            .into_iter()
            .filter(|(k, close_time)| k.0 <= end_ms && *close_time < closed_before)
            .map(|(k, _)| k)
            .collect())
    }

    /// The last traded price of each of `symbols` (`GET /api/v3/ticker/price?symbols=[...]`, one
    /// request), as the exchange quoted it.
    pub async fn prices(
        &self,
        symbols: &[&str],
        deadline: Instant,
    ) -> Result<Vec<(String, f64)>, BinanceError> {
        if symbols
            .iter()
            .any(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(BinanceError::InvalidBody(
                "symbols must be letters and digits".into(),
            ));
        }
        // the JSON array, URL-encoded: ["A","B"] -> %5B%22A%22,%22B%22%5D
        let list = symbols
            .iter()
            .map(|s| format!("%22{s}%22"))
            .collect::<Vec<_>>()
            .join(",");
        let body = self
            .get(
                &format!("{}/api/v3/ticker/price?symbols=%5B{list}%5D", self.base_url),
                deadline,
            )
            .await?;
        let rows: Vec<Value> = serde_json::from_str(&body)
            .map_err(|_| BinanceError::InvalidBody(body.chars().take(200).collect()))?;
        rows.iter()
            .map(|row| {
                let symbol = row.get("symbol").and_then(Value::as_str);
                let price = row
                    .get("price")
                    .and_then(Value::as_str)
                    .and_then(|p| p.parse::<f64>().ok());
                match (symbol, price) {
                    (Some(s), Some(p)) => Ok((s.to_owned(), p)),
                    _ => Err(BinanceError::InvalidBody(format!("ticker row {row}"))),
                }
            })
            .collect()
    }

    /// The body of a 200 to GET `url`; 429 and 418 waited out (see [`Binance::page`]).
    async fn get(&self, url: &str, deadline: Instant) -> Result<String, BinanceError> {
        for _ in 0..ATTEMPTS {
            self.pass_gate(deadline).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left < MIN_REQUEST {
                return Err(BinanceError::OutOfTime);
            }
            let response = self
                .http
                .get(url)
                .timeout(self.timeout.min(left))
                .send()
                .await
                .map_err(|e| BinanceError::Network(e.without_url().to_string()))?;
            let status = response.status().as_u16();
            if status == 429 || status == 418 {
                let wait =
                    crate::http::retry_after(response.headers()).unwrap_or(DEFAULT_RETRY_AFTER);
                // any Retry-After the exchange sends, however large, is a time (never an overflow)
                let until_ms = epoch_ms()
                    .saturating_add(i64::try_from(wait).unwrap_or(i64::MAX).saturating_mul(1000));
                if let Some(gate) = &self.gate {
                    gate.hold(until_ms, format!("Binance answered {status}"))
                        .await;
                }
                if Duration::from_secs(wait) > MAX_WAIT {
                    return Err(BinanceError::WaitTooLong(wait));
                }
                if Instant::now() + Duration::from_secs(wait) + MIN_REQUEST > deadline {
                    return Err(match self.gate {
                        Some(_) => BinanceError::BackingOff { until_ms },
                        None => BinanceError::OutOfTime,
                    });
                }
                tracing::warn!(status, wait, "Binance rate limit; waiting");
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            let body = response
                .text()
                .await
                .map_err(|e| BinanceError::Network(e.without_url().to_string()))?;
            if status != 200 {
                return Err(BinanceError::UnexpectedStatus {
                    status,
                    body: body.chars().take(200).collect(),
                });
            }
            return Ok(body);
        }
        Err(BinanceError::RateLimited)
    }
}

/// Reads a klines body: numbers as JSON strings (prices, volume) or numbers (times).
pub fn parse(body: &str) -> Result<Vec<Kline>, BinanceError> {
    Ok(parse_rows(body)?.into_iter().map(|(k, _)| k).collect())
}

/// [`parse`], with each row's `closeTime` (field 6).
fn parse_rows(body: &str) -> Result<Vec<(Kline, i64)>, BinanceError> {
    let rows: Vec<Vec<Value>> =
        serde_json::from_str(body).map_err(|e| BinanceError::InvalidBody(e.to_string()))?;
    let number = |v: &Value| match v {
        Value::String(s) => s.parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    rows.iter()
        .map(|row| {
            let bad = || BinanceError::InvalidBody(format!("row {row:?}"));
            let time = row.first().and_then(Value::as_i64).ok_or_else(bad)?;
            let f = |i: usize| row.get(i).and_then(number).ok_or_else(bad);
            let close_time = row.get(6).and_then(Value::as_i64).ok_or_else(bad)?;
            Ok(((time, f(1)?, f(2)?, f(3)?, f(4)?, f(5)?), close_time))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_rows_parse() {
        let body = r#"[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]"#;
        let rows = parse(body).unwrap();
        assert_eq!(
            rows,
            [(
                1499040000000,
                0.0163479,
                0.8,
                0.015758,
                0.015771,
                148976.11427815
            )]
        );
        assert!(parse("[[1, \"x\"]]").is_err());
        assert!(
            parse(r#"[[1,"1","1","1","1","1"]]"#).is_err(),
            "no close time"
        );
        assert!(parse("{}").is_err());
    }
}
