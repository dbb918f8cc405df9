//! The exchange's state every function shares, one row per exchange:
//!
//! - its back-off (`exchange_backoff`): a 429 or 418 holds every request of every function and
//!   invocation until `until` (the answer's `Retry-After`). Read before each request to the
//!   exchange, written by whoever met the refusal; a later hold never shortens an earlier one.
//! - its clock as last read (`exchange_clock`): forward steps decide only the candles closed by
//!   it; it never moves back.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The exchange AlphaLab reads (its rows' key).
pub const BINANCE: &str = "binance";

/// The hold on `exchange`, if one is still on: until when, and why.
pub async fn hold_of(
    pool: &PgPool,
    exchange: &str,
) -> Result<Option<(DateTime<Utc>, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT until, reason FROM exchange_backoff WHERE exchange = $1 AND until > now()",
    )
    .bind(exchange)
    .fetch_optional(pool)
    .await
}

/// Holds every request to `exchange` until `until` (kept when a longer hold is on).
pub async fn hold(
    pool: &PgPool,
    exchange: &str,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO exchange_backoff (exchange, until, reason) VALUES ($1, $2, $3)
         ON CONFLICT (exchange) DO UPDATE SET
             reason = CASE WHEN excluded.until > exchange_backoff.until THEN excluded.reason
                           ELSE exchange_backoff.reason END,
             until = greatest(exchange_backoff.until, excluded.until), updated_at = now()",
    )
    .bind(exchange)
    .bind(until)
    .bind(reason)
    .execute(pool)
    .await
    .map(drop)
}

/// Records `server_time` as `exchange`'s clock (kept when a later time is recorded already).
pub async fn observe_time(
    pool: &PgPool,
    exchange: &str,
    server_time: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO exchange_clock (exchange, server_time) VALUES ($1, $2)
         ON CONFLICT (exchange) DO UPDATE SET
             server_time = greatest(exchange_clock.server_time, excluded.server_time),
             read_at = now()",
    )
    .bind(exchange)
    .bind(server_time)
    .execute(pool)
    .await
    .map(drop)
}

/// `exchange`'s clock as last read.
pub async fn time_of(pool: &PgPool, exchange: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT server_time FROM exchange_clock WHERE exchange = $1")
        .bind(exchange)
        .fetch_optional(pool)
        .await
}
