//! The certificates Lambda: read its config once per cold start, build the state, serve the router.

use alphalab_certificates::{Config, State, router};
use platform::FromEnv;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_process_env()?;
    platform::telemetry::init(config.api.telemetry.log_format);
    lambda_http::run(router(State::new(&config).await?)).await
}
