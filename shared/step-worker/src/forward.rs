//! Forward sessions' candles (issue 24): the same step chain and driver as a backtest, on
//! candles that close after the session began. Closure is judged by the exchange's clock only.
//!
//! - [`begin`]: the first step reads the exchange's clock and sets the anchor (the latest candle
//!   closed then); the warm-up is the `warmup_candles` closed candles up to and including it,
//!   from the cache when it holds them, else one klines request (`endTime` and `limit`).
//! - [`fill`]: what `forward-tick` fetches for an asset and timeframe: every candle closed since
//!   the earliest one a live session still needs, less what is cached or known missing, page by
//!   page (usually one request). The exchange's gaps are recorded only where a later candle
//!   proves them; the newest missing candles are asked again at the next tick.
//! - [`decidable`]: a cached candle is decided only when every interval before it, back to the
//!   last decided candle, is cached or a recorded gap: a hole another fetch left is waited out,
//!   never taken for a gap.

use adapters::binance::{Binance, PAGE};
use chrono::{DateTime, Utc};
use engine::{Candle, Timeframe};
use serde_json::{Value, json};
use sqlx::PgPool;
use store::market_data;
use tokio::time::Instant;

use crate::candles::{SourceError, candle};
use crate::events::rfc3339;

/// The open time a forward session's range query ends before (a forward session has no end).
pub const OPEN_END_MS: i64 = 253_402_300_799_000; // 9999-12-31T23:59:59Z

/// The open time of the latest candle of `step_ms` closed at exchange time `now_ms` (its close
/// time, open + step - 1 ms, is earlier than `now_ms`).
pub fn latest_closed(now_ms: i64, step_ms: i64) -> i64 {
    (now_ms - step_ms).div_euclid(step_ms) * step_ms
}

/// What a forward session's first step found.
#[derive(Debug, Clone)]
pub struct Begun {
    /// The exchange time read.
    pub exchange_now: i64,
    /// Open time of the latest candle closed at `exchange_now`.
    pub anchor: i64,
    /// The warm-up candles, in order (at most `warmup_candles`, ending at the anchor at the latest).
    pub warmup: Vec<Candle>,
}

/// A warm-up as sessions and `session_initialized` show it: `{"candles", "first", "last"}`
/// (open times, RFC 3339).
pub fn summary(warmup: &[Candle]) -> Value {
    json!({
        "candles": warmup.len(),
        "first": warmup.first().map(|c| rfc3339(c.time)),
        "last": warmup.last().map(|c| rfc3339(c.time)),
    })
}

/// The first step of a forward session: the anchor and the warm-up.
pub async fn begin(
    pool: &PgPool,
    binance: &Binance,
    asset: &str,
    timeframe: Timeframe,
    warmup_candles: u32,
    deadline: Instant,
) -> Result<Begun, SourceError> {
    let step = timeframe.millis();
    let tf = timeframe.as_str();
    let exchange_now = binance.server_time(deadline).await?;
    observe(pool, exchange_now).await?;
    let anchor = latest_closed(exchange_now, step);
    let count = i64::from(warmup_candles);
    if count > 0 {
        let first = anchor - (count - 1) * step;
        let absent =
            market_data::missing(pool, asset, tf, first, anchor + step, step, exchange_now).await?;
        if !absent.is_empty() {
            let rows = binance
                .latest(
                    asset,
                    tf,
                    anchor,
                    (count as usize).min(PAGE),
                    exchange_now,
                    deadline,
                )
                .await?;
            market_data::insert(pool, asset, tf, "binance", &rows).await?;
            // the intervals between the candles received are the exchange's gaps
            if let (Some(lo), Some(hi)) = (rows.first(), rows.last()) {
                crate::candles::remember_gaps(pool, asset, tf, lo.0, hi.0, step).await?;
            }
        }
    }
    let warmup = market_data::window(pool, asset, tf, count, anchor + step, anchor + step, 0)
        .await?
        .into_iter()
        .map(candle)
        .collect();
    Ok(Begun {
        exchange_now,
        anchor,
        warmup,
    })
}

/// Records the exchange's clock as read now (`store::exchange`).
pub async fn observe(pool: &PgPool, exchange_now: i64) -> Result<(), sqlx::Error> {
    match time(exchange_now) {
        Some(t) => store::exchange::observe_time(pool, store::exchange::BINANCE, t).await,
        None => Ok(()),
    }
}

/// The exchange's clock as last read (ms; 0 when never read).
pub async fn clock(pool: &PgPool) -> Result<i64, sqlx::Error> {
    Ok(store::exchange::time_of(pool, store::exchange::BINANCE)
        .await?
        .map_or(0, |t| t.timestamp_millis()))
}

/// What a tick's fetch did for one asset and timeframe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filled {
    /// Klines requests sent.
    pub requests: usize,
    /// Candles newly cached.
    pub cached: u64,
}

/// Caches every candle of `asset` at `timeframe` opening after `after_ms` and closed at exchange
/// time `exchange_now`, that is neither cached nor a known gap (`startTime` requests, pages of
/// 1,000). A missing interval becomes a recorded gap only when a later candle is cached.
pub async fn fill(
    pool: &PgPool,
    binance: &Binance,
    asset: &str,
    timeframe: Timeframe,
    after_ms: i64,
    exchange_now: i64,
    deadline: Instant,
) -> Result<Filled, SourceError> {
    let step = timeframe.millis();
    let tf = timeframe.as_str();
    let mut done = Filled::default();
    let stretches = market_data::missing(
        pool,
        asset,
        tf,
        after_ms + step,
        OPEN_END_MS,
        step,
        exchange_now,
    )
    .await?;
    for (first, last) in stretches {
        let mut from = first;
        while from <= last {
            let page = binance
                .page(asset, tf, from, last + step, exchange_now, deadline)
                .await?;
            done.requests += 1;
            done.cached += market_data::insert(pool, asset, tf, "binance", &page).await?;
            let full = page.len() == PAGE;
            // proven missing: up to the last candle received, or the whole stretch when a later
            // candle is cached already
            let latest = store::forward::latest_cached(pool, asset, tf)
                .await?
                .map_or(i64::MIN, |t| t.timestamp_millis());
            let proven_to = if latest > last {
                last
            } else {
                page.last().map_or(i64::MIN, |k| k.0)
            };
            if proven_to >= from {
                crate::candles::remember_gaps(pool, asset, tf, from, proven_to, step).await?;
            }
            match (full, page.last()) {
                (true, Some(k)) => from = k.0 + step,
                _ => break,
            }
        }
    }
    Ok(done)
}

/// The cached candles after `last_ms` (the last decided candle, or the anchor) closed by the
/// exchange's clock as last read, at most `limit`, each preceded only by cached candles or
/// recorded gaps; stops at the first hole.
pub async fn decidable(
    pool: &PgPool,
    asset: &str,
    timeframe: Timeframe,
    last_ms: i64,
    limit: i64,
) -> Result<Vec<Candle>, sqlx::Error> {
    let step = timeframe.millis();
    let tf = timeframe.as_str();
    let (closed_by, rows) = store::forward::closed_after(pool, asset, tf, last_ms, limit).await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut last = last_ms;
    for row in rows {
        if row.0 + step > closed_by {
            break;
        }
        let missing = (row.0 - last) / step - 1;
        if missing > 0 {
            let known = store::forward::known_gaps(pool, asset, tf, last + step, row.0).await?;
            if known < missing {
                break;
            }
        }
        out.push(candle(row));
        last = row.0;
    }
    Ok(out)
}

/// A gap as a session's `gaps` lists it: the first and last missing open time, and how many.
pub fn gap(last_ms: i64, next_ms: i64, step_ms: i64) -> Value {
    json!({
        "from": rfc3339(last_ms + step_ms),
        "to": rfc3339(next_ms - step_ms),
        "missing": (next_ms - last_ms) / step_ms - 1,
    })
}

/// `ms` as a time.
pub fn time(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}
