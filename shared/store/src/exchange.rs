//! The exchange's back-off, one row per exchange (`exchange_backoff`): a 429 or 418 holds every
//! request of every function and invocation until `until` (the answer's `Retry-After`). Read
//! before each request to the exchange, written by whoever met the refusal; a later hold never
//! shortens an earlier one.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

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
