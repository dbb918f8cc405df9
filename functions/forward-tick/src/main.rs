//! The forward-tick Lambda: read its config once per cold start, build the ticker, run each
//! scheduled tick before the invocation's deadline.
// the runtime's service around the handler's future is deeper than the default limit
#![recursion_limit = "256"]

use alphalab_forward_tick::{Config, handle, ticker};
use lambda_runtime::{LambdaEvent, service_fn};
use platform::FromEnv;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    let config = Config::from_process_env()?;
    platform::telemetry::init(&config.telemetry);
    let ticker = ticker(&config).await?;
    platform::telemetry::initialised(started);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let ticker = ticker.clone();
        let deadline = platform::lambda::sqs::deadline_of(event.context.deadline);
        async move {
            handle(&ticker, event.payload, deadline)
                .await
                .map_err(|e| Box::new(e) as lambda_runtime::Error)
        }
    }))
    .await
}
