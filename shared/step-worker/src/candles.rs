//! Where a session's candles come from. The step reads them from `market_data_cache`; the first
//! step of a session makes sure every candle of the range is there before the run uses it:
//! it finds every missing stretch (not just the ends), fetches each from Binance's klines page
//! by page (each page cached as it comes, so a step cut short by its deadline leaves its
//! progress to the next delivery), and remembers the candles the exchange itself does not have
//! (`market_data_gaps`: an outage's missing hours) so they are not asked again on every run. It
//! then fixes the session's candles as those cached at that moment: later fills of the cache
//! never change a running session's count. Never within an HTTP request; gaps stay gaps.

use adapters::binance::{Binance, BinanceError, PAGE};
use chrono::{DateTime, Utc};
use engine::{Candle, Timeframe};
use sqlx::PgPool;
use store::market_data;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("market data: {0}")]
    Upstream(#[from] BinanceError),
    #[error("market data cache: {0}")]
    Database(#[from] sqlx::Error),
}

/// Records the candles the exchange does not have between `from` and `to` (open times it was
/// asked for and answered without), so nobody asks for them again; logs how many.
pub async fn remember_gaps(
    pool: &PgPool,
    asset: &str,
    tf: &str,
    from: i64,
    to: i64,
    step: i64,
) -> Result<u64, sqlx::Error> {
    let gaps = market_data::record_gaps(pool, asset, tf, from, to, step).await?;
    if gaps > 0 {
        tracing::info!(
            asset,
            timeframe = tf,
            gaps,
            "the exchange has no candles there; remembered"
        );
    }
    Ok(gaps)
}

/// A cached row as the engine's candle.
pub fn candle((time, open, high, low, close, volume): market_data::CandleRow) -> Candle {
    Candle {
        time,
        open,
        high,
        low,
        close,
        volume,
    }
}

/// The candles of a session's range once the cache holds them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// How many candles the range holds (gaps of the exchange left out).
    pub total: i64,
    /// The session reads only candles cached by then.
    pub as_of: DateTime<Utc>,
}

/// Makes sure every candle of `[start_ms, end_ms)` that has closed is cached (or known missing
/// at the exchange), fetching what is not from `binance` before `deadline`, and fixes the set.
pub async fn ensure_cached(
    pool: &PgPool,
    binance: &Binance,
    asset: &str,
    timeframe: Timeframe,
    start_ms: i64,
    end_ms: i64,
    deadline: Instant,
) -> Result<Fixed, SourceError> {
    let tf = timeframe.as_str();
    let step = timeframe.millis();
    // closure is judged by the exchange's clock; a candle is asked for only when it may have
    // closed even on a clock an interval ahead of ours, and then the exchange's clock decides
    let guess = Utc::now().timestamp_millis() + step;
    let mut stretches =
        market_data::missing(pool, asset, tf, start_ms, end_ms, step, guess).await?;
    let exchange_now = if stretches.is_empty() {
        guess
    } else {
        let now = binance.server_time(deadline).await?;
        stretches = market_data::missing(pool, asset, tf, start_ms, end_ms, step, now).await?;
        now
    };
    for (first, last) in stretches {
        let mut from = first;
        while from <= last {
            let page = binance
                .page(asset, tf, from, last + step, exchange_now, deadline)
                .await?;
            let rows: Vec<market_data::CandleRow> = page.to_vec();
            market_data::insert(pool, asset, tf, "binance", &rows).await?;
            let full = page.len() == PAGE;
            let next = page.last().map(|k| k.0 + step);
            // what the exchange was asked for up to here and does not have stays a gap
            let asked_to = match (full, next) {
                (true, Some(next)) => next - step,
                _ => last,
            };
            remember_gaps(pool, asset, tf, from, asked_to, step).await?;
            match (full, next) {
                (true, Some(next)) => from = next,
                _ => break,
            }
        }
    }
    let as_of = market_data::now(pool).await?;
    let total = market_data::count_range(pool, asset, tf, start_ms, end_ms, Some(as_of)).await?;
    Ok(Fixed { total, as_of })
}

/// The `count` cached candles before `start_ms` that warm a session's indicators, fetched first
/// when the cache lacks them (never before the asset's first candle). An outage of the exchange
/// in those intervals leaves fewer: gaps stay gaps.
pub async fn warmup(
    pool: &PgPool,
    binance: &Binance,
    asset: &str,
    timeframe: Timeframe,
    start_ms: i64,
    count: u32,
    deadline: Instant,
) -> Result<Vec<Candle>, SourceError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let first =
        crate::plan::first_candle(asset, timeframe).map_or(i64::MIN, |t| t.timestamp_millis());
    let from = (start_ms - i64::from(count) * timeframe.millis()).max(first);
    if from < start_ms {
        ensure_cached(pool, binance, asset, timeframe, from, start_ms, deadline).await?;
    }
    let rows = market_data::window(
        pool,
        asset,
        timeframe.as_str(),
        i64::from(count),
        start_ms,
        start_ms,
        0,
    )
    .await?;
    Ok(rows.into_iter().map(candle).collect())
}
