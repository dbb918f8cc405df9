//! Per-user rate limiting on every authenticated route (and per client address on the public
//! ones): a fixed-window counter in DynamoDB, one
//! atomic `ADD` per request (no read first) with a TTL so old windows disappear by themselves.
//! Over the limit a request answers 429 with `Retry-After` (seconds to the next window). When
//! DynamoDB cannot be reached the limiter lets the request through and logs a warning:
//! availability beats a counter.
//!
//! Variables: `RATE_LIMIT_PER_MINUTE` (default 120; 0 turns limiting off), `RATE_LIMITS_TABLE`
//! (default `RateLimitsTable`, the local name), `RATE_LIMIT_WINDOW_SECS` (default 60; the tests
//! shorten it), and the [`AwsConfig`] variables.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use uuid::Uuid;

use crate::config::{AwsConfig, ConfigError, Env, FromEnv};
use crate::error::ApiError;

/// The limiter's settings.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub per_window: u64,
    pub window: Duration,
    pub table: String,
    pub aws: AwsConfig,
}

impl FromEnv for RateLimitConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            per_window: env.number("RATE_LIMIT_PER_MINUTE", 120, 0..=1_000_000)?,
            window: Duration::from_secs(env.local_number(
                "RATE_LIMIT_WINDOW_SECS",
                60,
                1..=3600,
            )?),
            table: env
                .get("RATE_LIMITS_TABLE")
                .unwrap_or_else(|| "RateLimitsTable".into()),
            aws: AwsConfig::from_env(env)?,
        })
    }
}

/// The limiter, built once per cold start.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    client: Client,
    config: RateLimitConfig,
}

impl RateLimiter {
    /// Builds the DynamoDB client (no I/O). Calls time out after 1 s and are not retried: a slow
    /// counter must not slow every request down.
    pub async fn new(config: RateLimitConfig) -> Self {
        let sdk = config.aws.sdk_config().await;
        let dynamo = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(1))
                    .build(),
            )
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        Self {
            client: Client::from_conf(dynamo),
            config,
        }
    }

    /// Counts one request of `user_id`; `Err(429)` when the window's budget is spent.
    pub async fn check(&self, user_id: Uuid) -> Result<(), ApiError> {
        self.check_key(&format!("user#{user_id}"), self.config.per_window)
            .await
    }

    /// Counts one request of a client address (the public routes, which have no user): at most
    /// `per_window` per window; 0 turns it off.
    pub async fn check_address(&self, address: &str, per_window: u64) -> Result<(), ApiError> {
        self.check_key(&format!("ip#{address}"), per_window).await
    }

    /// Counts one request under `key` in the current window; `Err(429)` past `per_window`.
    async fn check_key(&self, key: &str, per_window: u64) -> Result<(), ApiError> {
        if per_window == 0 {
            return Ok(());
        }
        let window = self.config.window.as_secs().max(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let start = now - now % window;
        let end = start + window;
        let result = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .key("window_key", AttributeValue::S(format!("{key}#{start}")))
            .update_expression(
                "ADD #count :one SET expires_at = if_not_exists(expires_at, :expires)",
            )
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":expires", AttributeValue::N((end + 60).to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let count = match result {
            Ok(output) => output
                .attributes()
                .and_then(|a| a.get("count"))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0),
            Err(err) => {
                tracing::warn!(
                    error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err),
                    "rate limiter unavailable; letting the request through"
                );
                return Ok(());
            }
        };
        if count > per_window {
            return Err(ApiError::RateLimited {
                retry_after_secs: (end - now).max(1),
            });
        }
        Ok(())
    }
}
