//! Clerk webhook deliveries (through Svix): each processed once, by its `svix-id`, in the same
//! transaction as its effect. Users are found by their Clerk id here: the webhook speaks for Clerk,
//! not for a signed-in user.

use sqlx::PgPool;

/// A Clerk user as a `user.created` / `user.updated` event describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClerkProfile {
    pub clerk_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Upsert(ClerkProfile),
    Delete {
        clerk_id: String,
    },
    /// An event type we do not act on: acknowledged and recorded.
    Ignore,
}

/// Applies `effect` unless the delivery `svix_id` was processed before; returns whether it was
/// applied now. Expired delivery records are cleared along the way.
pub async fn apply(
    pool: &PgPool,
    svix_id: &str,
    event_type: &str,
    effect: &Effect,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let fresh = sqlx::query(
        "INSERT INTO webhook_deliveries (svix_id, event_type) VALUES ($1, $2)
         ON CONFLICT (svix_id) DO NOTHING",
    )
    .bind(svix_id)
    .bind(event_type)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(false);
    }
    match effect {
        Effect::Upsert(p) => {
            sqlx::query(
                "WITH upserted AS (
                     INSERT INTO users (clerk_id, email, name, avatar_url) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (clerk_id) DO UPDATE SET
                         email = COALESCE(EXCLUDED.email, users.email),
                         name = COALESCE(EXCLUDED.name, users.name),
                         avatar_url = COALESCE(EXCLUDED.avatar_url, users.avatar_url),
                         updated_at = now()
                     RETURNING id, (xmax = 0) AS created
                 ), settings AS (
                     INSERT INTO user_settings (user_id) SELECT id FROM upserted WHERE created
                 )
                 INSERT INTO activity_log (user_id, action, entity_type, entity_id)
                 SELECT id, 'account_created', 'user', id FROM upserted WHERE created",
            )
            .bind(&p.clerk_id)
            .bind(&p.email)
            .bind(&p.name)
            .bind(&p.avatar_url)
            .execute(&mut *tx)
            .await?;
        }
        Effect::Delete { clerk_id } => {
            sqlx::query("DELETE FROM users WHERE clerk_id = $1")
                .bind(clerk_id)
                .execute(&mut *tx)
                .await?;
        }
        Effect::Ignore => {}
    }
    sqlx::query(
        "DELETE FROM webhook_deliveries WHERE svix_id IN (
             SELECT svix_id FROM webhook_deliveries WHERE expires_at < now() LIMIT 100)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
