//! The activity log and the notifications feed: rows written inside the transaction of the
//! change they describe.

use sqlx::PgConnection;
use uuid::Uuid;

/// Records `action` on an entity of the user.
pub async fn record(
    conn: &mut PgConnection,
    user_id: Uuid,
    action: &'static str,
    entity_type: &'static str,
    entity_id: Uuid,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO activity_log (user_id, action, entity_type, entity_id, details)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(action)
    .bind(entity_type)
    .bind(entity_id)
    .bind(details)
    .execute(conn)
    .await
    .map(drop)
}

/// A notification that a key turned `key_invalid` or `key_no_credits`, unless the user turned
/// `notify_key_issues` off. Returns whether one was written.
pub async fn notify_key_issue(
    conn: &mut PgConnection,
    user_id: Uuid,
    kind: &'static str,
    title: &str,
    message: &str,
    data: serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO notifications (user_id, type, title, message, data)
         SELECT $1, $2, $3, $4, $5 FROM user_settings
         WHERE user_id = $1 AND notify_key_issues",
    )
    .bind(user_id)
    .bind(kind)
    .bind(title)
    .bind(message)
    .bind(data)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
