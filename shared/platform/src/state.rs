//! The pieces every authenticated HTTP function needs, built once per cold start: the database
//! pool, the Clerk verifier and the rate limiter. A function's own state holds an [`ApiState`]
//! (`#[derive(Clone, FromRef)]` gives the extractors their part) next to what only it needs.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::config::{ClerkConfig, ConfigError, DatabaseConfig, Env, FromEnv, TelemetryConfig};
use crate::ratelimit::{RateLimitConfig, RateLimiter};

/// The variables of an authenticated HTTP function: database, Clerk, rate limit, telemetry.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub database: DatabaseConfig,
    pub clerk: ClerkConfig,
    pub rate_limit: RateLimitConfig,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for ApiConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_env(env)?,
            clerk: ClerkConfig::from_env(env)?,
            rate_limit: RateLimitConfig::from_env(env)?,
            telemetry: TelemetryConfig::from_env(env)?,
        })
    }
}

/// Pool, verifier, limiter.
#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub auth: Arc<Authenticator>,
    pub limiter: Arc<RateLimiter>,
}

impl ApiState {
    /// Performs no network I/O: the pool connects, the JWKS is fetched and DynamoDB is called on
    /// first use.
    pub async fn new(config: &ApiConfig) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pool: crate::db::pool(&config.database)?,
            auth: Arc::new(Authenticator::new(config.clerk.clone())),
            limiter: Arc::new(RateLimiter::new(config.rate_limit.clone()).await),
        })
    }
}
