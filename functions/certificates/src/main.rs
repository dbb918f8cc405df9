//! The certificates Lambda: read its config once per cold start, build the state, serve the router.

use alphalab_certificates::{Config, State, router};
use platform::FromEnv;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let started = std::time::Instant::now();
    let config = Config::from_process_env()?;
    platform::telemetry::init(&config.api.telemetry);
    let service = router(State::new(&config).await?);
    platform::telemetry::initialised(started);
    lambda_http::run(service).await
}
