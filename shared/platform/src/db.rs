//! The Postgres pool: small (one connection per Lambda execution environment by default, DESIGN
//! section 5b), connected lazily, reused across invocations, and without sqlx's prepared
//! statement cache: behind RDS Proxy a cached statement pins the connection to the client
//! (DESIGN 5b); every query is parsed afresh, in the same round trip.

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseConfig;

/// The migrations of `migrations/`, embedded in every binary that needs them.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Builds the pool without connecting: a cold start never fails because the database is slow, and
/// the first query opens the first connection.
pub fn pool(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options =
        PgConnectOptions::from_str(config.url.expose_secret())?.statement_cache_capacity(0);
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(options))
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Whether the database answers a trivial query within 2 s (the health route).
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    let query = sqlx::query("SELECT 1").execute(pool);
    match tokio::time::timeout(Duration::from_secs(2), query).await {
        Ok(done) => done.map(drop),
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}
