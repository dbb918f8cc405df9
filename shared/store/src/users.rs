//! Users and their settings: the types the API speaks, their validation, and the SQL.
//!
//! Every query is scoped by the caller's user id (or, for provisioning, by the verified Clerk id).
//! Each settings field is declared once, in the `settings!` table below: its type, its rule and
//! its documentation; the response, the partial update, the validation and the SQL follow from it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{FieldError, ReadOnly, SUPPORTED_ASSETS, SUPPORTED_TIMEFRAMES};

/// Themes the front end knows.
pub const THEMES: &[&str] = &["dark", "light", "system"];

/// A user's profile.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    /// The Clerk user id.
    pub clerk_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The profile fields a client syncs from Clerk. Absent fields are left unchanged; the read-only
/// fields of [`User`] are accepted and ignored (a client may send back what it read); any other
/// field is refused by name.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// An email address: `local@domain.tld` (a dot after the `@`), no white space (U+0085
    /// included: Unicode counts it, ECMA-262's `\s` does not), at most 254 characters.
    #[schema(
        pattern = "^[^@\\s\\u0085]+@[^.\\s\\u0085][^\\s\\u0085]*\\.[^\\s\\u0085]*$",
        max_length = 254
    )]
    pub email: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// An http(s) URL of at most 2048 characters.
    #[schema(pattern = "^https?://", max_length = 2048)]
    pub avatar_url: Option<String>,
    // read-only fields of `User`
    pub id: Option<ReadOnly>,
    pub clerk_id: Option<ReadOnly>,
    pub plan: Option<ReadOnly>,
    pub created_at: Option<ReadOnly>,
    pub updated_at: Option<ReadOnly>,
}

impl ProfileUpdate {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(email) = &self.email {
            let valid = email.chars().count() <= 254
                && email.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                })
                // U+FEFF too: ECMA-262's `\s`, the schema's pattern, counts it
                && !email.chars().any(|c| c.is_whitespace() || c == '\u{feff}');
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
            && (url.chars().count() > 2048
                || !(url.starts_with("https://") || url.starts_with("http://")))
        {
            errors.push(FieldError::new(
                "avatar_url",
                "must be an http(s) URL of at most 2048 characters",
            ));
        }
        errors
    }
}

// Rules of the settings table: each returns what is wrong with a value, in plain words.
fn one_of(allowed: &'static [&'static str]) -> impl Fn(&String) -> Result<(), String> {
    move |v| {
        if allowed.contains(&v.as_str()) {
            Ok(())
        } else {
            Err(format!("must be one of {}", allowed.join(", ")))
        }
    }
}

/// `min <= v <= max`, or `min < v <= max` when `open_min`.
fn between(min: f64, max: f64, open_min: bool) -> impl Fn(&f64) -> Result<(), String> {
    move |&v| {
        let low_ok = if open_min { v > min } else { v >= min };
        if v.is_finite() && low_ok && v <= max {
            Ok(())
        } else {
            let lower = if open_min { "greater than" } else { "at least" };
            Err(format!("must be {lower} {min} and at most {max}"))
        }
    }
}

fn integer_between(min: i32, max: i32) -> impl Fn(&i32) -> Result<(), String> {
    move |v| {
        if (min..=max).contains(v) {
            Ok(())
        } else {
            Err(format!("must be an integer between {min} and {max}"))
        }
    }
}

fn any<T>(_: &T) -> Result<(), String> {
    Ok(())
}

/// Declares the settings once: `name: type => rule`. Generates [`Settings`] (what the API
/// shows), [`SettingsUpdate`] (a partial update: every field optional), its validation, and the
/// column lists of the SQL.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $(#[schema($($schema:tt)*)])? $(#[serde($($serde:tt)*)])? $name:ident : $ty:ty => $rule:expr ),+ $(,)?) => {
        /// A user's settings.
        #[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
        pub struct Settings {
            $( $(#[doc = $doc])* pub $name: $ty, )+
            pub updated_at: DateTime<Utc>,
        }

        /// A change to the settings. Absent fields are left unchanged; `updated_at`,
        /// `created_at` and `user_id` are read-only (accepted and ignored, so a client can send
        /// back what it read); any other field is refused by name.
        #[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct SettingsUpdate {
            $(
                $(#[doc = $doc])*
                $(#[schema($($schema)*)])?
                $(#[serde($($serde)*)])?
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )+
            #[serde(default, skip_serializing)]
            pub updated_at: Option<ReadOnly>,
            #[serde(default, skip_serializing)]
            pub created_at: Option<ReadOnly>,
            #[serde(default, skip_serializing)]
            pub user_id: Option<ReadOnly>,
        }

        impl SettingsUpdate {
            /// Every invalid field, named.
            pub fn validate(&self) -> Vec<FieldError> {
                let mut errors = Vec::new();
                $(
                    if let Some(value) = &self.$name
                        && let Err(message) = ($rule)(value)
                    {
                        errors.push(FieldError::new(stringify!($name), message));
                    }
                )+
                errors
            }
        }

        const SELECT_SETTINGS: &str = concat!(
            "SELECT ", $(stringify!($name), ", ",)+ "updated_at FROM user_settings WHERE user_id = $1"
        );
        /// The given fields of `$2` (a JSON object) replace the row's; the others stay.
        const UPDATE_SETTINGS: &str = concat!(
            "UPDATE user_settings AS s SET (", $(stringify!($name), ", ",)+ "updated_at) = (SELECT ",
            $("r.", stringify!($name), ", ",)+ "now() FROM jsonb_populate_record(s, $2) AS r) ",
            "WHERE user_id = $1 RETURNING ", $(stringify!($name), ", ",)+ "updated_at"
        );
    };
}

settings! {
    /// `dark`, `light` or `system`.
    #[schema(pattern = "^(dark|light|system)$")]
    theme: String => one_of(THEMES),
    /// Starting capital of a new test, in quote currency (100 .. 1e9).
    #[schema(minimum = 100.0, maximum = 1e9)]
    default_capital: f64 => between(100.0, 1e9, false),
    /// `BTCUSDT` or `ETHUSDT`.
    #[schema(pattern = "^(BTCUSDT|ETHUSDT)$")]
    default_asset: String => one_of(SUPPORTED_ASSETS),
    /// `1m`, `5m`, `15m`, `1h`, `4h` or `1d`.
    #[schema(pattern = "^(1m|5m|15m|1h|4h|1d)$")]
    default_timeframe: String => one_of(SUPPORTED_TIMEFRAMES),
    /// Highest leverage an agent may use (1 .. 5).
    #[schema(minimum = 1, maximum = 5)]
    #[serde(deserialize_with = "crate::whole")]
    max_leverage: i32 => integer_between(1, 5),
    /// Largest position as a percent of equity (0 < x <= 100).
    #[schema(exclusive_minimum = 0.0, maximum = 100.0)]
    max_position_size_pct: f64 => between(0.0, 100.0, true),
    /// Daily loss limit, percent of equity (0 < x <= 100).
    #[schema(exclusive_minimum = 0.0, maximum = 100.0)]
    max_daily_loss_pct: f64 => between(0.0, 100.0, true),
    /// Stop-loss suggested for new agents, percent (0 < x <= 50).
    #[schema(exclusive_minimum = 0.0, maximum = 50.0)]
    default_stop_loss_pct: f64 => between(0.0, 50.0, true),
    notify_email: bool => any,
    notify_test_completed: bool => any,
    notify_test_failed: bool => any,
    notify_certificate_issued: bool => any,
    notify_key_issues: bool => any,
}

/// How often provisioning retries when the row it saw is deleted before it could read it.
const PROVISION_ATTEMPTS: usize = 3;

/// The user id for a verified Clerk id, creating the user and default settings on first use.
///
/// Race-safe: concurrent first requests insert with `ON CONFLICT DO NOTHING`; the losers read
/// the winner's row in a new statement (a new snapshot, so the committed row is visible). When
/// that row is deleted in between (an account deletion racing a first request), it tries again;
/// `Ok(None)` only if that keeps happening.
pub async fn provision(pool: &PgPool, clerk_id: &str) -> Result<Option<Uuid>, sqlx::Error> {
    for _ in 0..PROVISION_ATTEMPTS {
        if let Some(id) = find_id(pool, clerk_id).await? {
            return Ok(Some(id));
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
        if let Some(id) = inserted {
            tracing::info!(user_id = %id, "provisioned a new user");
            return Ok(Some(id));
        }
        if let Some(id) = find_id(pool, clerk_id).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
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
    sqlx::query_as(SELECT_SETTINGS)
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

/// Applies the given fields and records the change in the activity log, in one transaction.
pub async fn update_settings(
    pool: &PgPool,
    user_id: Uuid,
    update: &SettingsUpdate,
) -> Result<Option<Settings>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let settings: Option<Settings> = sqlx::query_as(UPDATE_SETTINGS)
        .bind(user_id)
        .bind(sqlx::types::Json(update))
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
                "default_capital",
                "default_asset",
                "default_timeframe",
                "max_leverage",
                "max_position_size_pct",
                "max_daily_loss_pct",
                "default_stop_loss_pct",
            ]
        );
    }

    #[test]
    fn good_settings_pass_and_only_given_fields_are_sent_to_the_database() {
        let update: SettingsUpdate = serde_json::from_str(
            r#"{"theme": "light", "default_capital": 25000, "max_leverage": 5,
                "updated_at": "2026-01-01T00:00:00Z", "created_at": null, "user_id": "x"}"#,
        )
        .unwrap();
        assert!(update.validate().is_empty());
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            serde_json::json!({"theme": "light", "default_capital": 25000.0, "max_leverage": 5})
        );
    }

    #[test]
    fn a_field_the_settings_do_not_have_is_refused_by_name() {
        let err = serde_json::from_str::<SettingsUpdate>(r#"{"colour": "red"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn the_sql_names_every_field_once() {
        assert!(UPDATE_SETTINGS.contains("r.notify_key_issues, now() FROM jsonb_populate_record"));
        assert_eq!(SELECT_SETTINGS.matches("theme").count(), 1);
    }
}
