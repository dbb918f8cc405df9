//! The notifications function through real HTTP requests on a real Postgres, in one binary.

mod feed;

use alphalab_devstack::{TestApp, TestEnv};
use alphalab_notifications::{Config, router};
use platform::{ApiState, Env, FromEnv};

/// The notifications function on a fresh database, configured like Lambda through its variables.
pub(crate) async fn start() -> TestApp {
    let env = TestEnv::new().await.expect("test environment");
    let config = Config::from_env(&Env::from_lookup(env.lookup())).expect("config");
    let state = ApiState::new(&config).await.expect("state");
    TestApp::start_with(env, |_| Ok(router(state)))
        .await
        .expect("notifications function")
}
