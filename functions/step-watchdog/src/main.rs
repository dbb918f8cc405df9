//! The step-watchdog Lambda: read its config once per cold start, build the watchdog, serve the
//! schedule's ticks and the dead-letter queue's records.
// the runtime's service around the handler's future is deeper than the default limit
#![recursion_limit = "256"]

use alphalab_step_watchdog::{Config, handle, watchdog};
use lambda_runtime::{LambdaEvent, service_fn};
use platform::FromEnv;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    let config = Config::from_process_env()?;
    platform::telemetry::init(&config.telemetry);
    let watchdog = watchdog(&config).await?;
    platform::telemetry::initialised(started);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let watchdog = watchdog.clone();
        async move {
            handle(&watchdog, event.payload)
                .await
                .map_err(|e| Box::new(e) as lambda_runtime::Error)
        }
    }))
    .await
}
