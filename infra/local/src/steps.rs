//! The backtest-step function under a local event source mapping: `alphalab serve` and
//! `bench-arena` poll the steps queue (moto) and run each batch in process, as Lambda would.

use std::sync::Arc;

use alphalab_devstack::sqs::{Invoke, Poller, StepsQueue, create_steps_queue};
use anyhow::Result;
use platform::{Env, FromEnv};

/// The visibility timeout of the local queue: 6x the step function's timeout (DESIGN 5b).
pub(crate) const VISIBILITY_SECS: u32 = 720;

/// Creates the local steps queue and its dead-letter queue (`maxReceiveCount` 5).
pub(crate) async fn create_queue(aws_endpoint: &str, name: &str) -> Result<StepsQueue> {
    let sqs = aws_sdk_sqs::Client::new(&alphalab_devstack::moto::sdk_config(aws_endpoint).await);
    create_steps_queue(&sqs, name, VISIBILITY_SECS, 5).await
}

/// The function's handler as a mapping invokes it.
pub(crate) fn invoke(worker: step_worker::Worker) -> Invoke {
    Arc::new(move |event| {
        let worker = worker.clone();
        Box::pin(async move {
            platform::lambda::sqs::handle_fifo_batch(event, |record| {
                let worker = worker.clone();
                async move { worker.handle(record).await }
            })
            .await
        })
    })
}

/// Builds the step function from `env` and starts polling its queue (`STEPS_QUEUE_URL`).
pub(crate) async fn start(env: &Env<'_>) -> Result<(Poller, step_worker::Worker)> {
    start_with(env, VISIBILITY_SECS as i32).await
}

/// [`start`] receiving with `visibility_secs`.
pub(crate) async fn start_with(
    env: &Env<'_>,
    visibility_secs: i32,
) -> Result<(Poller, step_worker::Worker)> {
    let config = alphalab_backtest_step::Config::from_env(env)?;
    let worker = alphalab_backtest_step::worker(&config).await?;
    let sqs = aws_sdk_sqs::Client::new(&config.steps.aws.sdk_config().await);
    let poller = Poller::start(
        sqs,
        config.steps.queue_url.clone(),
        visibility_secs,
        invoke(worker.clone()),
    );
    Ok((poller, worker))
}
