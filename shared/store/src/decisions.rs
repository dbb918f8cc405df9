//! The decision cache across runs (`decision_cache`): every model answer a user paid for, under
//! the SHA-256 of its full request, one row per paying session. Writing an answer also adds the
//! billed requests and their cost to the paying session's totals, in the same statement, the
//! moment the answer returns: a crash never loses what was paid, and a replay of that session
//! finds its own answer whatever other sessions wrote since. Another session of the same user
//! takes the newest usable answer to the same request (unless it asks for fresh decisions).

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// One stored answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Cached {
    pub request_hash: String,
    /// The session that paid for it.
    pub session_id: Uuid,
    pub content: String,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub cost_usd: Option<f64>,
    pub latency_ms: Option<i32>,
    /// Why a billed answer could not be used (an empty 200): such an answer is a failed
    /// decision of its own session, and never served to another.
    pub error: Option<String>,
}

/// The stored answers of `hashes` for `user_id`, one per hash: `session_id`'s own answer when
/// it has one, else (unless `only_own`: `fresh_decisions`) the newest usable answer any of the
/// user's sessions paid for.
pub async fn lookup(
    pool: &PgPool,
    user_id: Uuid,
    hashes: &[String],
    session_id: Uuid,
    only_own: bool,
) -> Result<Vec<Cached>, sqlx::Error> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT DISTINCT ON (request_hash) request_hash, session_id, content, prompt_tokens,
                completion_tokens, cost_usd, latency_ms, error
         FROM decision_cache
         WHERE user_id = $1 AND request_hash = ANY($2)
           AND (session_id = $3 OR (NOT $4 AND error IS NULL))
         ORDER BY request_hash, session_id = $3 DESC, created_at DESC",
    )
    .bind(user_id)
    .bind(hashes)
    .bind(session_id)
    .bind(only_own)
    .fetch_all(pool)
    .await
}

/// Stores an answer its session paid for (`requests` billed 200s, the unusable ones included)
/// and adds them and the cost to the session's `model_calls` and `model_cost_usd`.
pub async fn put(
    pool: &PgPool,
    user_id: Uuid,
    model: &str,
    answer: &Cached,
    requests: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH stored AS (
             INSERT INTO decision_cache (user_id, request_hash, session_id, model, content,
                 prompt_tokens, completion_tokens, cost_usd, latency_ms, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (user_id, request_hash, session_id) DO UPDATE SET
                 content = EXCLUDED.content, prompt_tokens = EXCLUDED.prompt_tokens,
                 completion_tokens = EXCLUDED.completion_tokens, cost_usd = EXCLUDED.cost_usd,
                 latency_ms = EXCLUDED.latency_ms, error = EXCLUDED.error, created_at = now()
             RETURNING 1)
         UPDATE test_sessions SET
             model_calls = model_calls + $11,
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
    .bind(&answer.error)
    .bind(i64::from(requests.max(1)))
    .execute(pool)
    .await
    .map(drop)
}

/// Adds a call that brought no answer to the session: a failed call (its last error, nothing
/// billed: one call), or billed requests that were cut short (an empty 200 with no time left to
/// ask again): `requests` and their `cost`.
pub async fn count_call(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    requests: u32,
    cost_usd: Option<f64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE test_sessions SET model_calls = model_calls + $3,
             model_cost_usd = model_cost_usd + coalesce($4, 0)
         WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(i64::from(requests))
    .bind(cost_usd)
    .execute(pool)
    .await
    .map(drop)
}
