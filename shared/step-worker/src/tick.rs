//! `forward-tick` (issue 24): every minute (EventBridge `rate(1 minute)`; locally every
//! `--tick-interval` seconds) it feeds the forward sessions and the price feed. It never calls a
//! model: it fetches and enqueues, and the step worker decides. A tick:
//!
//! 1. does nothing when no forward session is live and nobody subscribes to a price;
//! 2. reads the exchange's clock once (`GET /api/v3/time`);
//! 3. for each asset and timeframe of a running or stopping forward session, caches the candles
//!    closed since the earliest one a session still needs ([`crate::forward::fill`]): one klines
//!    request per asset and timeframe, never one per session, and none when nothing can have
//!    closed;
//! 4. sends one step to each forward session with a candle to decide (or a stop to finalise),
//!    ten per `SendMessageBatch`, deduplicated by session, its chain's version and the latest
//!    cached candle (a repeated or overlapping tick sends nothing twice);
//! 5. asks the ticker once for every asset with price subscribers and pushes `price_update`.
//!
//! An exchange error (a 429 or 418 hold, 5xx, 451, a timeout, an unreadable answer) marks the
//! affected sessions' feed `delayed` with the reason and is retried at the next tick: it never
//! fails, stops or skips anything.

use std::sync::Arc;

use adapters::binance::{Binance, BinanceError};
use engine::Timeframe;
use realtime::Publisher;
use realtime::events::PriceUpdate;
use serde::Serialize;
use sqlx::PgPool;
use tokio::time::Instant;

use crate::candles::SourceError;
use crate::queue::{StepMessage, StepQueue};

/// What one tick did (its log line, and the benchmark's figures).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TickReport {
    /// The exchange's clock (ms), when read.
    pub exchange_time: Option<i64>,
    /// Asset/timeframe groups polled.
    pub groups: usize,
    /// Klines requests sent.
    pub klines_requests: usize,
    /// Candles newly cached.
    pub cached: u64,
    /// Step messages accepted by the queue.
    pub steps_sent: usize,
    /// Price updates pushed (one per asset with subscribers).
    pub prices: usize,
    /// Why some feed is delayed (empty when the exchange answered everything).
    pub delayed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

#[derive(Clone)]
pub struct Ticker {
    pub pool: PgPool,
    pub binance: Binance,
    pub queue: StepQueue,
    pub publisher: Arc<Publisher>,
}

impl Ticker {
    /// One tick, every request ending before `deadline`.
    pub async fn tick(&self, deadline: Instant) -> Result<TickReport, TickError> {
        let mut report = TickReport::default();
        let live = store::forward::any_live(&self.pool).await?;
        let mut priced = Vec::new();
        for asset in store::SUPPORTED_ASSETS {
            match self
                .publisher
                .registry()
                .subscribers(&realtime::registry::price_topic(asset))
                .await
            {
                Ok(connections) if !connections.is_empty() => priced.push(*asset),
                Ok(_) => {}
                Err(e) => tracing::warn!(asset, error = %e, "price subscribers unreadable"),
            }
        }
        if !live && priced.is_empty() {
            return Ok(report);
        }
        let exchange_now = match self.binance.server_time(deadline).await {
            Ok(now) => {
                crate::forward::observe(&self.pool, now).await?;
                Some(now)
            }
            Err(e) => {
                let reason = crate::reasons::exchange(&e);
                tracing::warn!(error = %e, "the exchange's clock could not be read");
                store::forward::delay(&self.pool, None, &reason).await?;
                report.delayed.push(reason);
                None
            }
        };
        report.exchange_time = exchange_now;
        if let Some(now) = exchange_now {
            let mut held: Option<String> = None;
            for group in store::forward::groups(&self.pool).await? {
                report.groups += 1;
                let key = Some((group.asset.as_str(), group.timeframe.as_str()));
                if let Some(reason) = &held {
                    // no request before the hold ends: these sessions wait too
                    store::forward::delay(&self.pool, key, reason).await?;
                    continue;
                }
                let Some(timeframe) = Timeframe::parse(&group.timeframe) else {
                    continue;
                };
                match crate::forward::fill(
                    &self.pool,
                    &self.binance,
                    &group.asset,
                    timeframe,
                    group.after.timestamp_millis(),
                    now,
                    deadline,
                )
                .await
                {
                    Ok(filled) => {
                        report.klines_requests += filled.requests;
                        report.cached += filled.cached;
                        store::forward::feed_ok(&self.pool, &group.asset, &group.timeframe).await?;
                    }
                    Err(SourceError::Database(e)) => return Err(e.into()),
                    Err(SourceError::Upstream(e)) => {
                        let reason = crate::reasons::exchange(&e);
                        tracing::warn!(asset = %group.asset, timeframe = %group.timeframe,
                            error = %e, "candles not fetched; the next tick tries again");
                        store::forward::delay(&self.pool, key, &reason).await?;
                        if matches!(e, BinanceError::BackingOff { .. }) {
                            held = Some(reason.clone());
                        }
                        report.delayed.push(reason);
                    }
                }
            }
            if !priced.is_empty() && held.is_none() {
                self.prices(&priced, now, deadline, &mut report).await;
            }
        }
        report.steps_sent = self.send_steps().await?;
        Ok(report)
    }

    /// One step to every forward session with work, deduplicated by session, version and the
    /// latest cached candle.
    async fn send_steps(&self) -> Result<usize, TickError> {
        // closure by the exchange's clock as last read (this tick's, when it answered)
        let clock = crate::forward::clock(&self.pool).await?;
        let clock = crate::forward::time(clock).unwrap_or_default();
        let messages: Vec<(StepMessage, String)> = store::forward::due(&self.pool, clock)
            .await?
            .into_iter()
            .map(|d| {
                let message = StepMessage {
                    session_id: d.id,
                    user_id: d.user_id,
                    version: d.version,
                };
                let latest = d.latest.map_or(0, |t| t.timestamp_millis());
                let dedup = format!("{}:tick:{latest}", message.dedup_id());
                (message, dedup)
            })
            .collect();
        if messages.is_empty() {
            return Ok(0);
        }
        Ok(self.queue.send_batch(&messages).await?)
    }

    /// The ticker's prices of `assets` (one request), pushed to each asset's subscribers.
    async fn prices(
        &self,
        assets: &[&str],
        exchange_now: i64,
        deadline: Instant,
        report: &mut TickReport,
    ) {
        match self.binance.prices(assets, deadline).await {
            Ok(quotes) => {
                for (asset, price) in quotes {
                    if !assets.contains(&asset.as_str()) {
                        continue;
                    }
                    self.publisher
                        .publish_price(PriceUpdate {
                            asset,
                            price,
                            time: crate::events::rfc3339(exchange_now),
                        })
                        .await;
                    report.prices += 1;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "prices not fetched; the next tick tries again");
                report.delayed.push(crate::reasons::exchange(&e));
            }
        }
    }
}
