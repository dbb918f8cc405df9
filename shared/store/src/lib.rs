//! AlphaLab's Postgres repositories: one module per aggregate. Every query that reads or writes a
//! user's rows takes the caller's user id and scopes the SQL with it; the schema backs that up
//! with composite foreign keys (a row can only point at rows of its own user).
//!
//! Repositories return `sqlx::Error`; the HTTP layer maps it once (constraint names to 409/422,
//! transient failures to 503). The request and response types live beside the queries that read
//! and write them, with their validation, so each field is defined once.

pub mod activity;
pub mod agents;
pub mod api_keys;
pub mod market_data;
pub mod sessions;
pub mod users;
pub mod webhooks;

/// One invalid field of a request: its name and what is wrong, in plain words.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Assets the product supports (the bundled market data).
pub const SUPPORTED_ASSETS: &[&str] = &["BTCUSDT", "ETHUSDT"];
/// Candle timeframes the product supports (the schema's CHECK constraints say the same).
pub const SUPPORTED_TIMEFRAMES: &[&str] = &["1m", "5m", "15m", "1h", "4h", "1d"];
