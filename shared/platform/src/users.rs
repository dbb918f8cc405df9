//! Users and their settings: the types the API speaks, their validation, and the SQL.
//!
//! Every query is scoped by the caller's user id (or, for provisioning, by the verified Clerk id).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::FieldError;

/// Assets the product supports (the bundled market data).
pub const SUPPORTED_ASSETS: &[&str] = &["BTCUSDT", "ETHUSDT"];
/// Candle timeframes the product supports (the CHECK constraints of the schema say the same).
pub const SUPPORTED_TIMEFRAMES: &[&str] = &["1m", "5m", "15m", "1h", "4h", "1d"];
/// Themes the front end knows.
pub const THEMES: &[&str] = &["dark", "light", "system"];

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub clerk_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Settings {
    pub theme: String,
    pub default_capital: f64,
    pub default_asset: String,
    pub default_timeframe: String,
    pub max_leverage: i32,
    pub max_position_size_pct: f64,
    pub max_daily_loss_pct: f64,
    pub default_stop_loss_pct: f64,
    pub notify_email: bool,
    pub notify_test_completed: bool,
    pub notify_test_failed: bool,
    pub notify_certificate_issued: bool,
    pub notify_key_issues: bool,
    pub updated_at: DateTime<Utc>,
}

/// The profile fields a client syncs from Clerk. Absent fields are left unchanged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    pub email: Option<String>,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

impl ProfileUpdate {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(email) = &self.email {
            let valid = email.len() <= 254
                && email.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                })
                && !email.chars().any(char::is_whitespace);
            if !valid {
                errors.push(FieldError::new("email", "must be an email address"));
            }
        }
        if let Some(name) = &self.name
            && name.chars().count() > 200
        {
            errors.push(FieldError::new("name", "must be at most 200 characters"));
        }
        if let Some(url) = &self.avatar_url
            && (url.len() > 2048 || !(url.starts_with("https://") || url.starts_with("http://")))
        {
            errors.push(FieldError::new(
                "avatar_url",
                "must be an http(s) URL of at most 2048 characters",
            ));
        }
        errors
    }
}

/// A change to the settings. Absent fields are left unchanged; unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    pub theme: Option<String>,
    pub default_capital: Option<f64>,
    pub default_asset: Option<String>,
    pub default_timeframe: Option<String>,
    pub max_leverage: Option<i32>,
    pub max_position_size_pct: Option<f64>,
    pub max_daily_loss_pct: Option<f64>,
    pub default_stop_loss_pct: Option<f64>,
    pub notify_email: Option<bool>,
    pub notify_test_completed: Option<bool>,
    pub notify_test_failed: Option<bool>,
    pub notify_certificate_issued: Option<bool>,
    pub notify_key_issues: Option<bool>,
}

impl SettingsUpdate {
    /// Every invalid field, named.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut one_of = |field: &str, value: &Option<String>, allowed: &[&str]| {
            if let Some(v) = value
                && !allowed.contains(&v.as_str())
            {
                errors.push(FieldError::new(
                    field,
                    format!("must be one of {}", allowed.join(", ")),
                ));
            }
        };
        one_of("theme", &self.theme, THEMES);
        one_of("default_asset", &self.default_asset, SUPPORTED_ASSETS);
        one_of(
            "default_timeframe",
            &self.default_timeframe,
            SUPPORTED_TIMEFRAMES,
        );
        let mut range = |field: &str, value: Option<f64>, min: f64, max: f64, open_min: bool| {
            if let Some(v) = value {
                let ok = v.is_finite() && (if open_min { v > min } else { v >= min }) && v <= max;
                if !ok {
                    let lower = if open_min { "greater than" } else { "at least" };
                    errors.push(FieldError::new(
                        field,
                        format!("must be {lower} {min} and at most {max}"),
                    ));
                }
            }
        };
        range("default_capital", self.default_capital, 100.0, 1e9, false);
        range(
            "max_position_size_pct",
            self.max_position_size_pct,
            0.0,
            100.0,
            true,
        );
        range(
            "max_daily_loss_pct",
            self.max_daily_loss_pct,
            0.0,
            100.0,
            true,
        );
        range(
            "default_stop_loss_pct",
            self.default_stop_loss_pct,
            0.0,
            50.0,
            true,
        );
        if let Some(l) = self.max_leverage
            && !(1..=5).contains(&l)
        {
            errors.push(FieldError::new(
                "max_leverage",
                "must be an integer between 1 and 5",
            ));
        }
        errors
    }
}

/// The user id for a verified Clerk id, creating the user and default settings on first use.
///
/// Race-safe: concurrent first requests insert with `ON CONFLICT DO NOTHING`; the losers read
/// the winner's row in a new statement (a new snapshot, so the committed row is visible).
pub async fn provision(pool: &PgPool, clerk_id: &str) -> Result<Uuid, sqlx::Error> {
    if let Some(id) = find_id(pool, clerk_id).await? {
        return Ok(id);
    }
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "WITH inserted AS (
             INSERT INTO users (clerk_id) VALUES ($1)
             ON CONFLICT (clerk_id) DO NOTHING
             RETURNING id
         ), settings AS (
             INSERT INTO user_settings (user_id) SELECT id FROM inserted
         ), activity AS (
             INSERT INTO activity_log (user_id, action, entity_type, entity_id)
             SELECT id, 'account_created', 'user', id FROM inserted
         )
         SELECT id FROM inserted",
    )
    .bind(clerk_id)
    .fetch_optional(pool)
    .await?;
    match inserted {
        Some(id) => {
            tracing::info!(user_id = %id, "provisioned a new user");
            Ok(id)
        }
        None => find_id(pool, clerk_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound),
    }
}

async fn find_id(pool: &PgPool, clerk_id: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM users WHERE clerk_id = $1")
        .bind(clerk_id)
        .fetch_optional(pool)
        .await
}

// Column lists as macros so that every query stays a `&'static str` (sqlx refuses dynamic SQL).
macro_rules! user_columns {
    () => {
        "id, clerk_id, email, name, avatar_url, plan, created_at, updated_at"
    };
}
macro_rules! settings_columns {
    () => {
        "theme, default_capital, default_asset, default_timeframe, max_leverage, \
         max_position_size_pct, max_daily_loss_pct, default_stop_loss_pct, notify_email, \
         notify_test_completed, notify_test_failed, notify_certificate_issued, notify_key_issues, \
         updated_at"
    };
}

pub async fn find(pool: &PgPool, user_id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

pub async fn update_profile(
    pool: &PgPool,
    user_id: Uuid,
    update: &ProfileUpdate,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE users SET email = COALESCE($2, email), name = COALESCE($3, name),
             avatar_url = COALESCE($4, avatar_url), updated_at = now()
         WHERE id = $1 RETURNING ",
        user_columns!()
    ))
    .bind(user_id)
    .bind(update.email.as_deref().map(str::trim))
    .bind(update.name.as_deref().map(str::trim))
    .bind(update.avatar_url.as_deref())
    .fetch_optional(pool)
    .await
}

pub async fn settings(pool: &PgPool, user_id: Uuid) -> Result<Option<Settings>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        settings_columns!(),
        " FROM user_settings WHERE user_id = $1"
    ))
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

pub async fn update_settings(
    pool: &PgPool,
    user_id: Uuid,
    u: &SettingsUpdate,
) -> Result<Option<Settings>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let settings = sqlx::query_as(concat!(
        "UPDATE user_settings SET
             theme = COALESCE($2, theme),
             default_capital = COALESCE($3, default_capital),
             default_asset = COALESCE($4, default_asset),
             default_timeframe = COALESCE($5, default_timeframe),
             max_leverage = COALESCE($6, max_leverage),
             max_position_size_pct = COALESCE($7, max_position_size_pct),
             max_daily_loss_pct = COALESCE($8, max_daily_loss_pct),
             default_stop_loss_pct = COALESCE($9, default_stop_loss_pct),
             notify_email = COALESCE($10, notify_email),
             notify_test_completed = COALESCE($11, notify_test_completed),
             notify_test_failed = COALESCE($12, notify_test_failed),
             notify_certificate_issued = COALESCE($13, notify_certificate_issued),
             notify_key_issues = COALESCE($14, notify_key_issues),
             updated_at = now()
         WHERE user_id = $1 RETURNING ",
        settings_columns!()
    ))
    .bind(user_id)
    .bind(&u.theme)
    .bind(u.default_capital)
    .bind(&u.default_asset)
    .bind(&u.default_timeframe)
    .bind(u.max_leverage)
    .bind(u.max_position_size_pct)
    .bind(u.max_daily_loss_pct)
    .bind(u.default_stop_loss_pct)
    .bind(u.notify_email)
    .bind(u.notify_test_completed)
    .bind(u.notify_test_failed)
    .bind(u.notify_certificate_issued)
    .bind(u.notify_key_issues)
    .fetch_optional(&mut *tx)
    .await?;
    if settings.is_some() {
        sqlx::query(
            "INSERT INTO activity_log (user_id, action, entity_type, entity_id)
             VALUES ($1, 'settings_updated', 'user', $1)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(settings)
}

/// Deletes the account and, by cascade, everything it owns. Returns whether it existed.
pub async fn delete(pool: &PgPool, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_setting_is_named() {
        let update = SettingsUpdate {
            theme: Some("neon".into()),
            default_capital: Some(f64::NAN),
            default_asset: Some("DOGEUSDT".into()),
            default_timeframe: Some("2h".into()),
            max_leverage: Some(6),
            max_position_size_pct: Some(0.0),
            max_daily_loss_pct: Some(101.0),
            default_stop_loss_pct: Some(-1.0),
            ..Default::default()
        };
        let fields: Vec<String> = update.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "theme",
                "default_asset",
                "default_timeframe",
                "default_capital",
                "max_position_size_pct",
                "max_daily_loss_pct",
                "default_stop_loss_pct",
                "max_leverage"
            ]
        );
    }

    #[test]
    fn good_settings_pass() {
        let update = SettingsUpdate {
            theme: Some("light".into()),
            default_capital: Some(25_000.0),
            max_leverage: Some(5),
            default_timeframe: Some("4h".into()),
            ..Default::default()
        };
        assert!(update.validate().is_empty());
    }
}
