//! The step-watchdog function (DESIGN sections 3 and 5): two triggers, one handler.
//!
//! - An EventBridge schedule (every minute): re-sends the step of every session that has work
//!   left and has not advanced for `STEP_STALL_SECS` (`step_worker::Watchdog::tick`).
//! - The steps dead-letter queue (an SQS event source, one record per invocation): a message
//!   that is still its session's current one ends the session `failed` with a reason for people
//!   (`step_worker::Watchdog::dead_letter`).
//!
//! [`handle`] tells the two events apart by their shape (an SQS event has `Records`); Lambda and
//! `alphalab serve` run the same function.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use platform::{ConfigError, DatabaseConfig, Env, FromEnv, TelemetryConfig};
use realtime::{Publisher, RealtimeConfig};
use serde_json::Value;
use step_worker::{StepQueue, StepsConfig, Watchdog, WatchdogConfig};

/// The variables this function reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub realtime: RealtimeConfig,
    pub steps: StepsConfig,
    pub watchdog: WatchdogConfig,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_env(env)?,
            realtime: RealtimeConfig::from_env(env)?,
            steps: StepsConfig::from_env(env)?,
            watchdog: WatchdogConfig::from_env(env)?,
            telemetry: TelemetryConfig::from_env(env)?,
        })
    }
}

/// The watchdog, built once per cold start (no network I/O until the first event).
pub async fn watchdog(config: &Config) -> Result<Watchdog, sqlx::Error> {
    Ok(Watchdog {
        pool: platform::db::pool(&config.database)?,
        queue: StepQueue::new(&config.steps).await,
        publisher: Arc::new(Publisher::new(&config.realtime).await),
        config: config.watchdog,
    })
}

/// Why an invocation failed (the schedule retries it; a dead letter is redelivered).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

/// One invocation: a scheduled tick, or a batch of dead letters (each failed record reported).
pub async fn handle(watchdog: &Watchdog, event: Value) -> Result<Value, Error> {
    if event.get("Records").is_some() {
        let event: SqsEvent =
            serde_json::from_value(event).map_err(|e| Error(format!("an SQS event: {e}")))?;
        let response = dead_letters(watchdog, event).await;
        return serde_json::to_value(response).map_err(|e| Error(e.to_string()));
    }
    let event: EventBridgeEvent =
        serde_json::from_value(event).map_err(|e| Error(format!("a scheduled event: {e}")))?;
    platform::lambda::schedule::handle_tick(event, |_| async {
        let sent = watchdog.tick().await.map_err(|e| Error(e.to_string()))?;
        tracing::info!(sent, "watchdog run");
        Ok::<_, Error>(())
    })
    .await?;
    Ok(Value::Null)
}

/// The dead letters of `event`, in order (a failed one and every later one reported).
pub async fn dead_letters(watchdog: &Watchdog, event: SqsEvent) -> SqsBatchResponse {
    // the records' deadline is the invocation's; a dead letter does little work
    let deadline = tokio::time::Instant::now();
    platform::lambda::sqs::handle_fifo_batch(event, deadline, |record, _| {
        watchdog.dead_letter(record)
    })
    .await
}
