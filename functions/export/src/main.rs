//! The export Lambda: read its config once per cold start, build the state, serve the router.

use alphalab_export::{Config, router};
use platform::{ApiState, FromEnv};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let started = std::time::Instant::now();
    let config = Config::from_process_env()?;
    platform::telemetry::init(&config.telemetry);
    let service = router(ApiState::new(&config).await?);
    platform::telemetry::initialised(started);
    lambda_http::run(service).await
}
