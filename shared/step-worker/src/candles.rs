//! Where a session's candles come from. The step reads them from `market_data_cache`; the first
//! step of a session makes sure the range is there, fetching what is missing from the upstream
//! source (Binance's klines) and caching it; never within an HTTP request. Gaps in the data stay
//! gaps: a missing hour is not invented.

use std::future::Future;

use adapters::binance::{Binance, BinanceError};
use engine::Candle;
use sqlx::PgPool;
use store::market_data;

/// A source of candles for an asset and timeframe, open times in `[start_ms, end_ms)`.
pub trait CandleSource {
    fn candles(
        &self,
        asset: &str,
        timeframe: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> impl Future<Output = Result<Vec<Candle>, SourceError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("market data: {0}")]
    Upstream(#[from] BinanceError),
    #[error("market data cache: {0}")]
    Database(#[from] sqlx::Error),
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

/// The cache (the bundled data, loaded by `alphalab serve` / `load-data`, and whatever earlier
/// sessions fetched).
#[derive(Debug, Clone)]
pub struct Cache(pub PgPool);

impl CandleSource for Cache {
    async fn candles(
        &self,
        asset: &str,
        timeframe: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Candle>, SourceError> {
        Ok(
            market_data::range(&self.0, asset, timeframe, start_ms, end_ms)
                .await?
                .into_iter()
                .map(candle)
                .collect(),
        )
    }
}

/// Binance klines (`BINANCE_BASE_URL`).
impl CandleSource for Binance {
    async fn candles(
        &self,
        asset: &str,
        timeframe: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Candle>, SourceError> {
        Ok(self
            .klines(asset, timeframe, start_ms, end_ms)
            .await?
            .into_iter()
            .map(candle)
            .collect())
    }
}

/// Makes sure `[start_ms, end_ms)` is cached: when the cache holds no candle in the range's
/// first or last timeframe-long stretch, the whole range is fetched from `upstream` and stored
/// (rows already cached are kept). Returns how many candles the range holds.
pub async fn ensure_cached(
    pool: &PgPool,
    upstream: &impl CandleSource,
    asset: &str,
    timeframe: engine::Timeframe,
    start_ms: i64,
    end_ms: i64,
) -> Result<i64, SourceError> {
    let tf = timeframe.as_str();
    let step = timeframe.millis();
    let has_start =
        market_data::count_range(pool, asset, tf, start_ms, (start_ms + step).min(end_ms)).await?
            > 0;
    let has_end =
        market_data::count_range(pool, asset, tf, (end_ms - step).max(start_ms), end_ms).await? > 0;
    if !(has_start && has_end) {
        let fetched = upstream.candles(asset, tf, start_ms, end_ms).await?;
        let rows: Vec<market_data::CandleRow> = fetched
            .iter()
            .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
            .collect();
        market_data::insert(pool, asset, tf, "binance", &rows).await?;
    }
    Ok(market_data::count_range(pool, asset, tf, start_ms, end_ms).await?)
}
