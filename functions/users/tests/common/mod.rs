//! Helpers shared by this crate's integration tests.
#![allow(dead_code, unreachable_pub)]

use alphalab_devstack::{TestEnv, TestServer};
use platform::{AppState, Config};
use sqlx::PgPool;

/// A running users function on a fresh database, configured like Lambda through its
/// environment variables.
pub struct App {
    pub env: TestEnv,
    pub server: TestServer,
    pub pool: PgPool,
}

impl App {
    pub async fn start() -> App {
        Self::start_with(TestEnv::new().await.expect("test environment")).await
    }

    pub async fn start_with(env: TestEnv) -> App {
        let config = Config::from_lookup(env.lookup()).expect("config");
        let state = AppState::from_config(&config).expect("state");
        let pool = state.pool.clone();
        let server = TestServer::serve(alphalab_users::router(state))
            .await
            .expect("server");
        App { env, server, pool }
    }

    pub fn token(&self, sub: &str) -> String {
        self.env.token(sub)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        self.server
            .call(reqwest::Method::GET, path, token, None)
            .await
            .expect("request")
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.server
            .call(method, path, token, Some(body))
            .await
            .expect("request")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

/// Asserts the JSON error body of DESIGN section 7 with `code`.
pub fn assert_error(body: &serde_json::Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    assert!(body["error"].get("details").is_some(), "body: {body}");
}
