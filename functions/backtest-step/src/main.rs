//! The backtest-step Lambda: read its config once per cold start, build the worker, serve the
//! FIFO batches (`ReportBatchItemFailures`).
// the runtime's service around the step's future is deeper than the default limit
#![recursion_limit = "256"]

use alphalab_backtest_step::{Config, handle, worker};
use platform::FromEnv;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    let config = Config::from_process_env()?;
    platform::telemetry::init(&config.telemetry);
    let worker = worker(&config).await?;
    platform::telemetry::initialised(started);
    platform::lambda::sqs::serve(move |event, deadline| {
        let worker = worker.clone();
        async move { handle(&worker, event, deadline).await }
    })
    .await
}
