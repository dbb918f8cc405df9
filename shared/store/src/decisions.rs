//! The decision cache across runs (`decision_cache`): every model answer a user paid for, under
//! the SHA-256 of its full request. Writing an answer also adds the call and its cost to the
//! paying session's totals, in the same statement, the moment the answer returns: a crash
//! never loses what was paid, and a replay finds it here.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// One stored answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Cached {
    pub request_hash: String,
    /// The session that paid for it.
    pub session_id: Option<Uuid>,
    pub content: String,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub cost_usd: Option<f64>,
    pub latency_ms: Option<i32>,
}

/// The stored answers of `hashes` for `user_id`; with `only_session`, only those that session
/// paid for (`fresh_decisions`: a session reads back its own answers, nobody else's).
pub async fn lookup(
    pool: &PgPool,
    user_id: Uuid,
    hashes: &[String],
    only_session: Option<Uuid>,
) -> Result<Vec<Cached>, sqlx::Error> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT request_hash, session_id, content, prompt_tokens, completion_tokens, cost_usd,
                latency_ms
         FROM decision_cache
         WHERE user_id = $1 AND request_hash = ANY($2)
           AND ($3::uuid IS NULL OR session_id = $3)",
    )
    .bind(user_id)
    .bind(hashes)
    .bind(only_session)
    .fetch_all(pool)
    .await
}

/// Stores an answer `session_id` paid for (the newest answer of a request wins) and adds the
/// call to the session's `model_calls` and `model_cost_usd`.
pub async fn put(
    pool: &PgPool,
    user_id: Uuid,
    model: &str,
    answer: &Cached,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH stored AS (
             INSERT INTO decision_cache (user_id, request_hash, session_id, model, content,
                 prompt_tokens, completion_tokens, cost_usd, latency_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (user_id, request_hash) DO UPDATE SET
                 session_id = EXCLUDED.session_id, content = EXCLUDED.content,
                 prompt_tokens = EXCLUDED.prompt_tokens,
                 completion_tokens = EXCLUDED.completion_tokens, cost_usd = EXCLUDED.cost_usd,
                 latency_ms = EXCLUDED.latency_ms, created_at = now()
             RETURNING 1)
         UPDATE test_sessions SET
             model_calls = model_calls + 1,
             model_cost_usd = model_cost_usd + coalesce($8, 0)
         WHERE user_id = $1 AND id = $3 AND EXISTS (SELECT 1 FROM stored)",
    )
    .bind(user_id)
    .bind(&answer.request_hash)
    .bind(answer.session_id)
    .bind(model)
    .bind(&answer.content)
    .bind(answer.prompt_tokens)
    .bind(answer.completion_tokens)
    .bind(answer.cost_usd)
    .bind(answer.latency_ms)
    .execute(pool)
    .await
    .map(drop)
}

/// Adds a failed call (no answer, nothing cached) to the session's `model_calls`.
pub async fn count_failed_call(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE test_sessions SET model_calls = model_calls + 1 WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(session_id)
    .execute(pool)
    .await
    .map(drop)
}
