//! The dashboard (issue 23): a user's figures at a glance and their activity feed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::Cursor;

/// The agent of the best completed result.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct BestAgent {
    pub agent_id: Option<Uuid>,
    /// Its current name (its name in that result once deleted).
    pub agent_name: String,
    pub total_return_pct: f64,
}

/// A user's figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DashboardStats {
    /// Live (not archived) agents.
    pub agents: i64,
    /// Sessions pending, running or paused.
    pub running_tests: i64,
    pub completed_tests: i64,
    pub stopped_tests: i64,
    pub failed_tests: i64,
    /// Profitable completed results / completed results x 100 (`null` when none).
    pub profitable_tests_pct: Option<f64>,
    pub best_agent: Option<BestAgent>,
    /// Closed trades over completed results.
    pub total_trades: i64,
    pub certificates: i64,
    pub unread_notifications: i64,
}

#[derive(sqlx::FromRow)]
struct Counts {
    agents: i64,
    running_tests: i64,
    completed_tests: i64,
    stopped_tests: i64,
    failed_tests: i64,
    completed_results: i64,
    profitable_results: i64,
    total_trades: i64,
    certificates: i64,
    unread_notifications: i64,
}

/// The caller's figures.
pub async fn stats(pool: &PgPool, user_id: Uuid) -> Result<DashboardStats, sqlx::Error> {
    let c: Counts = sqlx::query_as(
        "WITH sessions AS (SELECT status, count(*) AS n FROM test_sessions WHERE user_id = $1
                           GROUP BY status),
              completed AS (SELECT r.total_pnl_pct, r.total_trades FROM test_results r
                            JOIN test_sessions s ON s.user_id = r.user_id AND s.id = r.session_id
                            WHERE r.user_id = $1 AND s.status = 'completed')
         SELECT
           (SELECT count(*) FROM agents WHERE user_id = $1 AND archived_at IS NULL) AS agents,
           (SELECT coalesce(sum(n), 0) FROM sessions
            WHERE status IN ('pending', 'running', 'paused'))::bigint AS running_tests,
           (SELECT coalesce(sum(n), 0) FROM sessions WHERE status = 'completed')::bigint
               AS completed_tests,
           (SELECT coalesce(sum(n), 0) FROM sessions WHERE status = 'stopped')::bigint
               AS stopped_tests,
           (SELECT coalesce(sum(n), 0) FROM sessions WHERE status = 'failed')::bigint
               AS failed_tests,
           (SELECT count(*) FROM completed) AS completed_results,
           (SELECT count(*) FROM completed WHERE total_pnl_pct >= 0) AS profitable_results,
           (SELECT coalesce(sum(total_trades), 0) FROM completed)::bigint AS total_trades,
           (SELECT count(*) FROM certificates WHERE user_id = $1) AS certificates,
           (SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL)
               AS unread_notifications",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?;
    let best_agent: Option<BestAgent> = sqlx::query_as(
        "SELECT coalesce(r.agent_id, (r.agent_snapshot->>'id')::uuid) AS agent_id,
                coalesce(a.name, r.agent_snapshot->>'name', '') AS agent_name,
                r.total_pnl_pct AS total_return_pct
         FROM test_results r
         JOIN test_sessions s ON s.user_id = r.user_id AND s.id = r.session_id
         LEFT JOIN agents a ON a.user_id = r.user_id
                           AND a.id = coalesce(r.agent_id, (r.agent_snapshot->>'id')::uuid)
         WHERE r.user_id = $1 AND s.status = 'completed'
         ORDER BY r.total_pnl_pct DESC, r.created_at, r.id LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(DashboardStats {
        agents: c.agents,
        running_tests: c.running_tests,
        completed_tests: c.completed_tests,
        stopped_tests: c.stopped_tests,
        failed_tests: c.failed_tests,
        profitable_tests_pct: (c.completed_results > 0)
            .then(|| c.profitable_results as f64 / c.completed_results as f64 * 100.0),
        best_agent,
        total_trades: c.total_trades,
        certificates: c.certificates,
        unread_notifications: c.unread_notifications,
    })
}

/// One entry of the activity feed.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Activity {
    pub id: Uuid,
    /// As the schema names it: `agent_created`, `test_started`, `certificate_issued`, ...
    pub action: String,
    /// `user`, `agent`, `api_key`, `session`, `result` or `certificate`.
    pub entity_type: Option<String>,
    /// The session for `test_*`, the certificate for `certificate_issued`, the agent for
    /// `agent_*`, the key for `key_*`.
    pub entity_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

/// The caller's activity, newest first, after `cursor`; the next page's cursor.
pub async fn activity(
    pool: &PgPool,
    user_id: Uuid,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<Activity>, Option<Cursor>), sqlx::Error> {
    let mut rows: Vec<Activity> = sqlx::query_as(
        "SELECT id, action, entity_type, entity_id, details, created_at FROM activity_log
         WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4",
    )
    .bind(user_id)
    .bind(cursor.map(|c| c.created_at))
    .bind(cursor.map(|c| c.id).unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next = crate::page::cut(&mut rows, limit, |a| Cursor {
        created_at: a.created_at,
        id: a.id,
    });
    Ok((rows, next))
}
