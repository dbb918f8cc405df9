//! The users Lambda: build the state once per cold start, then serve the router.

use platform::{AppState, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env()?;
    platform::telemetry::init(config.log_format);
    let state = AppState::from_config(&config)?;
    lambda_http::run(alphalab_users::router(state)).await
}
