//! Users' OpenRouter keys. The key itself is stored only encrypted (the caller seals it); what
//! the API shows is [`ApiKey`], whose `masked_key` keeps the prefix and the last four characters.
//! Exactly one default key per user while the user has keys: the first becomes the default,
//! switching is one transaction, deleting the default promotes the most recent other key.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::activity;

/// A key as the API shows it: never the key itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// The key's prefix, `…` and its last four characters (`sk-or-v1-…3f9a`).
    pub masked_key: String,
    /// `pending`, `valid`, `invalid`, `no_credits` or `error` (the last check failed for a
    /// transient reason: the key stays usable; `status_reason` says why).
    pub status: String,
    /// Why the last check said what it said.
    pub status_reason: Option<String>,
    pub is_default: bool,
    /// OpenRouter's label for the key.
    pub label: Option<String>,
    /// OpenRouter credit limit in USD (`null`: unlimited).
    pub credit_limit: Option<f64>,
    /// OpenRouter credits used, USD.
    pub usage: Option<f64>,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

macro_rules! key_columns {
    () => {
        "id, name, masked_key, status, status_reason, is_default, label, credit_limit, usage, \
         last_validated_at, created_at"
    };
}

/// What decrypting a key needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub encrypted_key: Vec<u8>,
    pub key_version: i32,
}

/// The masked form of `key`: a known prefix (`sk-or-v1-`, else up to the last `-` within the
/// first 12 characters), `…`, the last four characters.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let head: String = chars.iter().take(12).collect();
    let prefix_len = head
        .rfind('-')
        .map(|i| head[..=i].chars().count())
        .unwrap_or(0);
    let prefix: String = chars.iter().take(prefix_len).collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("{prefix}…{tail}")
}

pub async fn list(pool: &PgPool, user_id: Uuid) -> Result<Vec<ApiKey>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await
}

pub async fn find(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<ApiKey>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE user_id = $1 AND id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The encrypted key of the caller's key `id`.
pub async fn stored(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<StoredKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, encrypted_key, key_version FROM api_keys WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A new key row (already sealed by the caller for this id and user).
#[derive(Debug)]
pub struct NewKey<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub masked_key: &'a str,
    pub encrypted_key: &'a [u8],
    pub key_version: i32,
}

/// Inserts the key, as the default when the user has none; records `key_added`.
pub async fn insert(pool: &PgPool, user_id: Uuid, key: &NewKey<'_>) -> Result<ApiKey, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // serialise the user's key changes: the "first key is the default" rule reads, then writes
    lock_user(&mut tx, user_id).await?;
    let created: ApiKey = sqlx::query_as(concat!(
        "INSERT INTO api_keys (id, user_id, name, encrypted_key, key_version, masked_key, is_default)
         VALUES ($1, $2, $3, $4, $5, $6,
                 NOT EXISTS (SELECT 1 FROM api_keys WHERE user_id = $2 AND is_default))
         RETURNING ",
        key_columns!()
    ))
    .bind(key.id)
    .bind(user_id)
    .bind(key.name)
    .bind(key.encrypted_key)
    .bind(key.key_version)
    .bind(key.masked_key)
    .fetch_one(&mut *tx)
    .await?;
    activity::record(
        &mut tx,
        user_id,
        "key_added",
        "api_key",
        created.id,
        serde_json::json!({ "name": created.name, "masked_key": created.masked_key }),
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// Locks the user's row: changes to one user's keys run one at a time.
async fn lock_user(conn: &mut sqlx::PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(conn)
        .await
        .map(drop)
}

/// The outcome of a validation, as recorded.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub status: &'static str,
    pub reason: Option<String>,
    /// Only on an answer from OpenRouter: label, limit and usage (left as they were otherwise).
    pub details: Option<(Option<String>, Option<f64>, Option<f64>)>,
}

/// Records a validation of the caller's key `id` (and `key_validated`); a key that turns
/// `invalid` or `no_credits` notifies the user (per `notify_key_issues`).
pub async fn record_check(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
    check: &CheckResult,
) -> Result<Option<ApiKey>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let previous: Option<String> =
        sqlx::query_scalar("SELECT status FROM api_keys WHERE user_id = $1 AND id = $2 FOR UPDATE")
            .bind(user_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(previous) = previous else {
        return Ok(None);
    };
    let (answered, label, limit, usage) = match &check.details {
        Some((label, limit, usage)) => (true, label.clone(), *limit, *usage),
        None => (false, None, None, None),
    };
    let key: ApiKey = sqlx::query_as(concat!(
        "UPDATE api_keys SET status = $3, status_reason = $4,
             label = CASE WHEN $5 THEN $6 ELSE label END,
             credit_limit = CASE WHEN $5 THEN $7 ELSE credit_limit END,
             usage = CASE WHEN $5 THEN $8 ELSE usage END,
             last_validated_at = now(), updated_at = now()
         WHERE user_id = $1 AND id = $2 RETURNING ",
        key_columns!()
    ))
    .bind(user_id)
    .bind(id)
    .bind(check.status)
    .bind(&check.reason)
    .bind(answered)
    .bind(label)
    .bind(limit)
    .bind(usage)
    .fetch_one(&mut *tx)
    .await?;
    activity::record(
        &mut tx,
        user_id,
        "key_validated",
        "api_key",
        id,
        serde_json::json!({ "status": key.status, "reason": key.status_reason }),
    )
    .await?;
    let issue = match check.status {
        "invalid" => Some(("key_invalid", "API key rejected")),
        "no_credits" => Some(("key_no_credits", "API key out of credits")),
        _ => None,
    };
    if let Some((kind, title)) = issue
        && previous != check.status
    {
        let message = format!(
            "Your key \"{}\" ({}) {}: {}",
            key.name,
            key.masked_key,
            if kind == "key_invalid" {
                "was rejected by OpenRouter"
            } else {
                "has no credits left"
            },
            key.status_reason.as_deref().unwrap_or("")
        );
        activity::notify_key_issue(
            &mut tx,
            user_id,
            kind,
            title,
            &message,
            serde_json::json!({ "api_key_id": id }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(key))
}

/// Makes the caller's key `id` the default, atomically: one transaction holding the user's lock
/// clears the old default and sets the new one, so nobody ever sees two or none.
pub async fn set_default(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<ApiKey>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, user_id).await?;
    let exists: Option<bool> =
        sqlx::query_scalar("SELECT is_default FROM api_keys WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(was_default) = exists else {
        return Ok(None);
    };
    if !was_default {
        sqlx::query("UPDATE api_keys SET is_default = false, updated_at = now() WHERE user_id = $1 AND is_default")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE api_keys SET is_default = true, updated_at = now() WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        activity::record(
            &mut tx,
            user_id,
            "key_default_changed",
            "api_key",
            id,
            serde_json::json!({}),
        )
        .await?;
    }
    let key = sqlx::query_as(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE user_id = $1 AND id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(key))
}

/// What deleting a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    NotFound,
    /// Live agents use it: their names.
    InUse(Vec<String>),
}

/// Deletes the caller's key `id` unless live agents use it; a deleted default is replaced by
/// the most recent other key. Records `key_removed`.
pub async fn delete(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Deleted, sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, user_id).await?;
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM agents WHERE user_id = $1 AND api_key_id = $2 AND archived_at IS NULL
         ORDER BY name",
    )
    .bind(user_id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    if !users.is_empty() {
        return Ok(Deleted::InUse(users));
    }
    let removed: Option<(bool, String)> = sqlx::query_as(
        "DELETE FROM api_keys WHERE user_id = $1 AND id = $2 RETURNING is_default, masked_key",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((was_default, masked)) = removed else {
        return Ok(Deleted::NotFound);
    };
    if was_default {
        sqlx::query(
            "UPDATE api_keys SET is_default = true, updated_at = now() WHERE id = (
                 SELECT id FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    }
    activity::record(
        &mut tx,
        user_id,
        "key_removed",
        "api_key",
        id,
        serde_json::json!({ "masked_key": masked }),
    )
    .await?;
    tx.commit().await?;
    Ok(Deleted::Deleted)
}

/// Key rotation (an operator's job across all users, not a user request): keys not sealed with
/// `active_version`, a batch at a time.
pub async fn needing_rotation(
    pool: &PgPool,
    active_version: i32,
    batch: i64,
) -> Result<Vec<StoredKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, encrypted_key, key_version FROM api_keys
         WHERE key_version <> $1 ORDER BY id LIMIT $2",
    )
    .bind(active_version)
    .bind(batch)
    .fetch_all(pool)
    .await
}

/// Stores a re-encrypted key, only if the row still has the version it was read with.
pub async fn store_rotated(
    pool: &PgPool,
    key: &StoredKey,
    encrypted_key: &[u8],
    key_version: i32,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_keys SET encrypted_key = $4, key_version = $5
         WHERE id = $1 AND user_id = $2 AND key_version = $3",
    )
    .bind(key.id)
    .bind(key.user_id)
    .bind(key.key_version)
    .bind(encrypted_key)
    .bind(key_version)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn the_mask_keeps_the_prefix_and_the_last_four_characters_only() {
        assert_eq!(
            mask("sk-or-v1-0123456789abcdef0123456789abcdef3f9a"),
            "sk-or-v1-…3f9a"
        );
        assert_eq!(mask("abcdefghijklmnopqrstuvwxyz"), "…wxyz");
        assert_eq!(mask("sk-0123456789abcdef"), "sk-…cdef");
    }
}

/// A key as a session uses it: the sealed key and its last known status.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionKey {
    #[sqlx(flatten)]
    pub key: StoredKey,
    pub status: String,
    pub status_reason: Option<String>,
}

/// The key a session uses: `id` when given, else the user's default.
pub async fn for_session(
    pool: &PgPool,
    user_id: Uuid,
    id: Option<Uuid>,
) -> Result<Option<SessionKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, encrypted_key, key_version, status, status_reason FROM api_keys
         WHERE user_id = $1 AND (id = $2 OR ($2 IS NULL AND is_default))",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}
