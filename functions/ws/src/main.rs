//! The ws Lambda: read its config once per cold start, build the handler, serve the events.
// the runtime's service around the handler's future is deeper than the default limit
#![recursion_limit = "256"]

use alphalab_ws::{Config, Ws};
use platform::FromEnv;

#[tokio::main]
async fn main() -> Result<(), platform::lambda::Error> {
    let started = std::time::Instant::now();
    let config = Config::from_process_env()?;
    platform::telemetry::init(&config.telemetry);
    let ws = Ws::new(&config).await?;
    platform::telemetry::initialised(started);
    platform::lambda::ws::serve(ws).await
}
