//! The users function's integration tests, in one binary (link time grows with every binary):
//! real HTTP through the router Lambda serves, a real Postgres, the real Clerk verification code
//! against a local JWKS.

mod auth;
mod logs;
mod ratelimit;
mod users;

use alphalab_devstack::{TestApp, TestEnv};
use alphalab_users::{Config, router};
use platform::{ApiState, Env, FromEnv};

/// The users function on a fresh database, configured like Lambda through its variables.
pub(crate) async fn start() -> TestApp {
    start_with(TestEnv::new().await.expect("test environment")).await
}

pub(crate) async fn start_with(env: TestEnv) -> TestApp {
    let config = Config::from_env(&Env::from_lookup(env.lookup())).expect("config");
    let state = ApiState::new(&config).await.expect("state");
    TestApp::start_with(env, |_| Ok(router(state)))
        .await
        .expect("users function")
}

/// The process's log lines, as JSON (the global subscriber is installed once, for every test of
/// this binary: a test picks its own lines by request or user id).
pub(crate) fn logs() -> &'static alphalab_devstack::LogCapture {
    static CAPTURE: std::sync::OnceLock<alphalab_devstack::LogCapture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = alphalab_devstack::LogCapture::default();
        platform::telemetry::init_with_writer(
            platform::config::LogFormat::Json,
            capture.clone(),
            Some("info"),
        );
        capture
    })
}
