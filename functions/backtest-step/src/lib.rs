//! The backtest-step function (DESIGN section 5): one SQS FIFO record is one step of one
//! session (the event source mapping's `BatchSize` is 1: a record owns its invocation and its
//! deadline). [`handle`] is what Lambda runs and what the local event source mapping of
//! `alphalab serve` and the tests runs; the step itself is `step_worker::Worker`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tokio::time::Instant;

use adapters::binance::BinanceConfig;
use adapters::crypto::Keyring;
use adapters::openrouter::{OpenRouter, OpenRouterConfig, RetryPolicy};
use platform::{ConfigError, DatabaseConfig, Env, FromEnv, TelemetryConfig};
use realtime::{Publisher, RealtimeConfig};
use step_worker::{StepQueue, StepsConfig, Worker, WorkerConfig};

/// The variables this function reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub realtime: RealtimeConfig,
    pub steps: StepsConfig,
    pub keys: Keyring,
    pub openrouter: OpenRouterConfig,
    pub binance: BinanceConfig,
    pub worker: WorkerConfig,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_env(env)?,
            realtime: RealtimeConfig::from_env(env)?,
            steps: StepsConfig::from_env(env)?,
            keys: Keyring::from_env(env)?,
            openrouter: OpenRouterConfig::from_env(env)?,
            binance: BinanceConfig::from_env(env)?,
            worker: WorkerConfig::from_env(env)?,
            telemetry: TelemetryConfig::from_env(env)?,
        })
    }
}

/// The worker, built once per cold start (no network I/O until the first step).
pub async fn worker(config: &Config) -> Result<Worker, sqlx::Error> {
    let pool = platform::db::pool(&config.database)?;
    Ok(Worker {
        binance: step_worker::gate::binance(&config.binance, &pool),
        pool,
        publisher: Arc::new(Publisher::new(&config.realtime).await),
        queue: StepQueue::new(&config.steps).await,
        keys: Arc::new(config.keys.clone()),
        openrouter: OpenRouter::new(config.openrouter.clone()),
        config: config.worker.clone(),
        retry: RetryPolicy::default(),
        faults: Arc::default(),
    })
}

/// One invocation: the records of `event` (one with the template's `BatchSize`), in order, each
/// step ending before `deadline`; a failed record is reported for redelivery.
pub async fn handle(worker: &Worker, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    platform::lambda::sqs::handle_fifo_batch(event, deadline, |record, deadline| {
        worker.handle(record, deadline)
    })
    .await
}
