//! The ws Lambda: read its config once per cold start, build the handler, serve the events.
// the runtime's service around the handler's future is deeper than the default limit
#![recursion_limit = "256"]

use alphalab_ws::{Config, Ws};
use platform::FromEnv;

#[tokio::main]
async fn main() -> Result<(), platform::lambda::Error> {
    let config = Config::from_process_env()?;
    platform::telemetry::init(config.telemetry.log_format);
    platform::lambda::ws::serve(Ws::new(&config).await?).await
}
