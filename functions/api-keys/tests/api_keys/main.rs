//! The api-keys function through real HTTP, a real Postgres, moto for the rate limiter and a
//! local HTTP server speaking OpenRouter's format.

mod encryption;
mod keys;

use alphalab_api_keys::{Config, State, router};
use alphalab_devstack::openrouter::MockOpenRouter;
use alphalab_devstack::{TestApp, TestEnv};
use platform::{Env, FromEnv};

/// One key version 1 (32 bytes of 0x01) and version 2 (0x02), in the `ENCRYPTION_KEYS` format.
pub(crate) const KEY_V1: &str = "v1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub(crate) const KEY_V2: &str = "v2=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// A key OpenRouter accepts (the mock's rules are in `alphalab_devstack::openrouter`).
pub(crate) fn key(kind: &str) -> String {
    format!(
        "sk-or-v1-{kind}0123456789abcdef0123456789abcdef{}",
        &uuid::Uuid::new_v4().simple().to_string()[..4]
    )
}

pub(crate) struct Keys {
    pub(crate) app: TestApp,
    pub(crate) openrouter: MockOpenRouter,
}

pub(crate) async fn start() -> Keys {
    start_with(|_| {}).await
}

/// The function with `ENCRYPTION_KEYS` = v1, a 1 s OpenRouter timeout, and `adjust` applied.
pub(crate) async fn start_with(adjust: impl FnOnce(&mut TestEnv)) -> Keys {
    let openrouter = MockOpenRouter::start().await.expect("mock OpenRouter");
    let mut env = TestEnv::new().await.expect("test environment");
    env.set("ENCRYPTION_KEYS", format!("{KEY_V1};active=v1"));
    env.set("OPENROUTER_BASE_URL", openrouter.base_url.clone());
    env.set("OPENROUTER_TIMEOUT_SECS", "1");
    adjust(&mut env);
    let config = Config::from_env(&Env::from_lookup(env.lookup())).expect("config");
    let state = State::new(&config).await.expect("state");
    let app = TestApp::start_with(env, |_| Ok(router(state)))
        .await
        .expect("api-keys function");
    Keys { app, openrouter }
}
