//! The forward-tick function (issue 24, DESIGN sections 3 and 5): an EventBridge schedule
//! (`rate(1 minute)`) runs [`step_worker::Ticker::tick`]: the exchange's clock once, one klines
//! request per asset and timeframe of the live forward sessions, one step per session with a
//! candle to decide, one ticker request for the price subscribers. It never calls a model.
//! `alphalab serve` runs the same [`handle`] every `--tick-interval` seconds.
//!
//! Its invocation ends before the next one starts (the template's timeout is under the
//! schedule's interval, its reserved concurrency 1); every exchange request ends before the
//! invocation's deadline less a reserve.

use std::sync::Arc;
use std::time::Duration;

use adapters::binance::BinanceConfig;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use platform::{ConfigError, DatabaseConfig, Env, FromEnv, TelemetryConfig};
use realtime::{Publisher, RealtimeConfig};
use serde_json::Value;
use step_worker::{StepQueue, StepsConfig, Ticker};
use tokio::time::Instant;

/// The variables this function reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub realtime: RealtimeConfig,
    pub steps: StepsConfig,
    pub binance: BinanceConfig,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_env(env)?,
            realtime: RealtimeConfig::from_env(env)?,
            steps: StepsConfig::from_env(env)?,
            binance: BinanceConfig::from_env(env)?,
            telemetry: TelemetryConfig::from_env(env)?,
        })
    }
}

/// The ticker, built once per cold start (no network I/O until the first tick). Its Binance
/// client obeys the back-off every function shares.
pub async fn ticker(config: &Config) -> Result<Ticker, sqlx::Error> {
    let pool = platform::db::pool(&config.database)?;
    Ok(Ticker {
        binance: step_worker::gate::binance(&config.binance, &pool),
        pool,
        queue: StepQueue::new(&config.steps).await,
        publisher: Arc::new(Publisher::new(&config.realtime).await),
    })
}

/// Why an invocation failed (EventBridge retries it; the next tick does the same work anyway).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

/// The time kept back from the invocation's deadline: the tick's last write and log line.
const RESERVE: Duration = Duration::from_secs(3);

/// One scheduled invocation ending at `deadline`.
pub async fn handle(ticker: &Ticker, event: Value, deadline: Instant) -> Result<Value, Error> {
    let event: EventBridgeEvent =
        serde_json::from_value(event).map_err(|e| Error(format!("a scheduled event: {e}")))?;
    platform::lambda::schedule::handle_tick(event, |_| async {
        let hard = deadline.checked_sub(RESERVE).unwrap_or(deadline);
        let report = ticker.tick(hard).await.map_err(|e| Error(e.to_string()))?;
        tracing::info!(
            exchange_time = ?report.exchange_time,
            groups = report.groups,
            klines_requests = report.klines_requests,
            cached = report.cached,
            steps_sent = report.steps_sent,
            prices = report.prices,
            delayed = ?report.delayed,
            "forward tick"
        );
        Ok::<_, Error>(())
    })
    .await?;
    Ok(Value::Null)
}
