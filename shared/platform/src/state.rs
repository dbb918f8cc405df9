//! The state every HTTP function shares, built once per cold start.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::config::Config;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub auth: Arc<Authenticator>,
}

impl AppState {
    /// Builds the state from configuration. Performs no I/O: the pool connects and the JWKS is
    /// fetched on first use.
    pub fn from_config(config: &Config) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pool: crate::db::pool(config)?,
            auth: Arc::new(Authenticator::new(config.clerk.clone())),
        })
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
