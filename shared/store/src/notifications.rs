//! The notifications feed of a user (`notifications`): read, marked read, deleted by its owner.
//! Rows are written where their events happen (the step worker, the keys), each honouring its
//! `notify_*` setting.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::Cursor;

/// A notification as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    /// `test_completed`, `test_stopped`, `test_failed`, `certificate_issued`, `key_invalid`,
    /// `key_no_credits` or `system`.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub title: String,
    pub message: String,
    /// The ids the event concerns (`session_id`, `result_id`, ...).
    #[schema(value_type = Object)]
    pub data: Value,
    /// `null` while unread.
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, type, title, message, data, read_at, created_at";

/// The caller's notifications, newest first (ties by id), after `cursor`; only unread ones
/// with `unread = Some(true)`, only read ones with `Some(false)`; the next page's cursor.
pub async fn list(
    pool: &PgPool,
    user_id: Uuid,
    unread: Option<bool>,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<Notification>, Option<Cursor>), sqlx::Error> {
    let mut rows: Vec<Notification> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM notifications
         WHERE user_id = $1
           AND ($2::boolean IS NULL OR (read_at IS NULL) = $2)
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
         ORDER BY created_at DESC, id DESC LIMIT $5"
    )))
    .bind(user_id)
    .bind(unread)
    .bind(cursor.map(|c| c.created_at))
    .bind(cursor.map(|c| c.id).unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next = crate::page::cut(&mut rows, limit, |n| crate::Cursor {
        created_at: n.created_at,
        id: n.id,
    });
    Ok((rows, next))
}

/// How many of the caller's notifications are unread.
pub async fn unread_count(pool: &PgPool, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
        .bind(user_id)
        .fetch_one(pool)
        .await
}

/// Marks the caller's notification `id` read (the first `read_at` is kept); `None` when it is
/// not theirs or not there.
pub async fn mark_read(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<Notification>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE notifications SET read_at = coalesce(read_at, now())
         WHERE user_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Marks every unread notification of the caller read; how many were.
pub async fn mark_all_read(pool: &PgPool, user_id: Uuid) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL",
    )
    .bind(user_id)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes the caller's notification `id`; whether there was one.
pub async fn delete(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM notifications WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}
