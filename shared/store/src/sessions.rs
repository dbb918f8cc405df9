//! Test sessions: ownership checks and the one session-control service that the WebSocket actions
//! and the arena's REST routes share (pause, resume, stop, speed). A control is one conditional
//! `UPDATE` on the sessions table: it never waits for a running step (the step reads these
//! fields between candles), and it takes the session's next event number in the same statement.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub const SPEEDS: &[&str] = &["slow", "normal", "fast", "instant"];

/// What a client asks of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Stop,
    Speed(String),
}

impl Control {
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Stop => "stop",
            Self::Speed(_) => "change the speed of",
        }
    }
}

/// A session's state after a control, and the sequence number of the event that announces it.
/// `version` is the step chain's version at that moment: a resume or a stop sends the step
/// message for it (DESIGN section 5).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Controlled {
    pub status: String,
    pub speed: String,
    pub seq: i64,
    pub version: i64,
}

/// Why a control did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not the caller's, or no such session.
    NotFound,
    /// The session's status does not allow it (`completed` cannot be paused, ...).
    WrongState { status: String },
}

/// Whether `session_id` is one of the caller's sessions.
pub async fn owns(pool: &PgPool, user_id: Uuid, session_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM test_sessions WHERE user_id = $1 AND id = $2)")
        .bind(user_id)
        .bind(session_id)
        .fetch_one(pool)
        .await
}

/// Applies `control` to the caller's session when its status allows it.
pub async fn control(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    control: &Control,
) -> Result<Result<Controlled, Refused>, sqlx::Error> {
    let (sql, speed): (&'static str, Option<&str>) = match control {
        Control::Pause => (
            "UPDATE test_sessions SET status = 'paused', event_seq = event_seq + 1, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND status IN ('pending', 'running')
             RETURNING status, speed, event_seq AS seq, version",
            None,
        ),
        Control::Resume => (
            "UPDATE test_sessions SET status = 'running', event_seq = event_seq + 1, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND status = 'paused'
             RETURNING status, speed, event_seq AS seq, version",
            None,
        ),
        Control::Stop => (
            // the step worker finishes a stopped session (closes the position, writes the result)
            // and sets completed_at then
            "UPDATE test_sessions SET status = 'stopped', failure_reason = 'stopped by the user',
                 event_seq = event_seq + 1, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND status IN ('pending', 'running', 'paused')
             RETURNING status, speed, event_seq AS seq, version",
            None,
        ),
        Control::Speed(speed) => (
            "UPDATE test_sessions SET speed = $3, event_seq = event_seq + 1, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND status IN ('pending', 'running', 'paused')
             RETURNING status, speed, event_seq AS seq, version",
            Some(speed.as_str()),
        ),
    };
    let mut query = sqlx::query_as(sql).bind(user_id).bind(session_id);
    if let Some(speed) = speed {
        query = query.bind(speed);
    }
    let updated: Option<Controlled> = query.fetch_optional(pool).await?;
    if let Some(done) = updated {
        return Ok(Ok(done));
    }
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM test_sessions WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(session_id)
            .fetch_optional(pool)
            .await?;
    Ok(Err(match status {
        None => Refused::NotFound,
        Some(status) => Refused::WrongState { status },
    }))
}

/// A new backtest session, validated by the caller (the arena function).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub agent_id: Uuid,
    pub asset: String,
    pub timeframe: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub starting_capital: f64,
    pub speed: String,
    /// The agent as it was when the session started (name, model, mode, indicators, prompt,
    /// temperature, key id): later edits of the agent do not change a running session.
    pub agent_snapshot: Value,
    /// The engine configuration and the run's settings.
    pub config: Value,
    /// Candles expected in `[start, end)` (the first step counts the real ones: gaps stay gaps).
    pub total_candles: i64,
}

/// How far a session is: the next candle's index and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub cursor: i64,
    pub total: i64,
}

/// How a run's decisions were obtained and what they cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Economics {
    /// Requests answered by (or failed at) the model, speculative ones included.
    pub model_calls: i64,
    /// Decisions reused from an earlier run's identical request (no call, no cost).
    pub cached_decisions: i64,
    /// Speculative answers paid for and not used (a decision before them was not HOLD).
    pub speculative_calls_wasted: i64,
    /// USD: OpenRouter's `usage.cost`, or the model's listed pricing when absent.
    pub model_cost_usd: f64,
}

/// A finished session's result: the same object in `GET /api/arena/sessions/{id}` and in the
/// `session_completed` event. `metrics` are named as `alphalab backtest` prints them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SessionResult {
    /// The `test_results` row.
    pub id: Uuid,
    pub final_equity: f64,
    /// Gross: before the model's cost.
    pub total_pnl: f64,
    pub total_pnl_pct: f64,
    /// Total PnL >= 0.
    pub can_generate_certificate: bool,
    #[schema(value_type = Object)]
    pub metrics: Value,
    pub model_calls: i64,
    pub cached_decisions: i64,
    pub speculative_calls_wasted: i64,
    pub model_cost_usd: f64,
    /// Model cost per trade (`null` without trades).
    pub cost_per_trade_usd: Option<f64>,
    /// Total PnL net of the model's cost.
    pub net_pnl: f64,
}

impl SessionResult {
    pub fn new(
        id: Uuid,
        starting_capital: f64,
        final_equity: f64,
        metrics: Value,
        economics: Economics,
    ) -> Self {
        let total_pnl = final_equity - starting_capital;
        let trades = metrics
            .get("total_trades")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Self {
            id,
            final_equity,
            total_pnl,
            total_pnl_pct: total_pnl / starting_capital * 100.0,
            can_generate_certificate: total_pnl >= 0.0,
            metrics,
            model_calls: economics.model_calls,
            cached_decisions: economics.cached_decisions,
            speculative_calls_wasted: economics.speculative_calls_wasted,
            model_cost_usd: economics.model_cost_usd,
            cost_per_trade_usd: (trades > 0).then(|| economics.model_cost_usd / trades as f64),
            net_pnl: total_pnl - economics.model_cost_usd,
        }
    }
}

/// The run's economics so far.
pub async fn economics(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Economics, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT s.model_calls, s.cached_decisions, ",
        wasted_calls!(),
        " AS speculative_calls_wasted, s.model_cost_usd
         FROM test_sessions s WHERE s.user_id = $1 AND s.id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_one(pool)
    .await
}

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub id: Uuid,
    /// `backtest` or `forward`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `running`, `paused`, `completed`, `stopped` or `failed`.
    pub status: String,
    /// Why a session stopped or failed.
    pub reason: Option<String>,
    pub agent_id: Option<Uuid>,
    /// The agent as it was at the start.
    #[schema(value_type = Object)]
    pub agent: Value,
    pub asset: String,
    pub timeframe: String,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub starting_capital: f64,
    /// `slow`, `normal`, `fast` or `instant`.
    pub speed: String,
    /// The run's settings (fees, slippage, leverage, safety mode, ...).
    #[schema(value_type = Object)]
    pub config: Value,
    pub progress: Progress,
    /// Live figures after the last committed candle (equity, return, trades, drawdown).
    #[schema(value_type = Option<Object>)]
    pub stats: Option<Value>,
    /// Model calls made so far (speculative ones included) and what they cost (USD).
    pub model_calls: i64,
    pub model_cost_usd: f64,
    /// Decisions taken from earlier runs' identical requests.
    pub cached_decisions: i64,
    /// Speculative answers paid for and not used.
    pub speculative_calls_wasted: i64,
    /// Once finished (completed, or stopped after at least one candle).
    pub result: Option<SessionResult>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    kind: String,
    status: String,
    failure_reason: Option<String>,
    agent_id: Option<Uuid>,
    agent_snapshot: Value,
    asset: String,
    timeframe: String,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    starting_capital: f64,
    speed: String,
    config: Value,
    cursor: i64,
    total_candles: Option<i64>,
    live_stats: Option<Value>,
    model_calls: i64,
    model_cost_usd: f64,
    cached_decisions: i64,
    speculative_calls_wasted: i64,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    result_id: Option<Uuid>,
    final_equity: Option<f64>,
    metrics: Option<Value>,
    r_model_calls: Option<i64>,
    r_cached_decisions: Option<i64>,
    r_speculative_calls_wasted: Option<i64>,
    r_model_cost_usd: Option<f64>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        let result = match (r.result_id, r.final_equity, r.metrics) {
            (Some(id), Some(equity), Some(metrics)) => Some(SessionResult::new(
                id,
                r.starting_capital,
                equity,
                metrics,
                Economics {
                    model_calls: r.r_model_calls.unwrap_or(0),
                    cached_decisions: r.r_cached_decisions.unwrap_or(0),
                    speculative_calls_wasted: r.r_speculative_calls_wasted.unwrap_or(0),
                    model_cost_usd: r.r_model_cost_usd.unwrap_or(0.0),
                },
            )),
            _ => None,
        };
        Self {
            id: r.id,
            kind: r.kind,
            status: r.status,
            reason: r.failure_reason,
            agent_id: r.agent_id,
            agent: r.agent_snapshot,
            asset: r.asset,
            timeframe: r.timeframe,
            start_date: r.start_date,
            end_date: r.end_date,
            starting_capital: r.starting_capital,
            speed: r.speed,
            config: r.config,
            progress: Progress {
                cursor: r.cursor,
                total: r.total_candles.unwrap_or(0),
            },
            stats: r.live_stats,
            model_calls: r.model_calls,
            model_cost_usd: r.model_cost_usd,
            cached_decisions: r.cached_decisions,
            speculative_calls_wasted: r.speculative_calls_wasted,
            result,
            started_at: r.started_at,
            completed_at: r.completed_at,
            created_at: r.created_at,
        }
    }
}

macro_rules! session_select {
    () => {
        concat!("SELECT s.id, s.type AS kind, s.status, s.failure_reason, s.agent_id, s.agent_snapshot,
                s.asset, s.timeframe, s.start_date, s.end_date, s.starting_capital, s.speed,
                s.config, s.cursor, s.total_candles, s.live_stats, s.model_calls, s.model_cost_usd,
                s.cached_decisions, ",
        wasted_calls!(), " AS speculative_calls_wasted,
                s.started_at, s.completed_at, s.created_at,
                r.id AS result_id, r.final_equity, r.metrics, r.model_calls AS r_model_calls,
                r.cached_decisions AS r_cached_decisions,
                r.speculative_calls_wasted AS r_speculative_calls_wasted,
                r.model_cost_usd AS r_model_cost_usd
         FROM test_sessions s
         LEFT JOIN test_results r ON r.user_id = s.user_id AND r.session_id = s.id ")
    };
}

/// Stores a new backtest session (`pending`, version 0) and records `test_started`.
pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    new: &NewSession,
) -> Result<Session, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO test_sessions (user_id, agent_id, type, asset, timeframe, start_date, end_date,
             starting_capital, speed, agent_snapshot, config, total_candles, last_watched_at)
         VALUES ($1, $2, 'backtest', $3, $4, $5, $6, $7, $8, $9, $10, $11, now())
         RETURNING id",
    )
    .bind(user_id)
    .bind(new.agent_id)
    .bind(&new.asset)
    .bind(&new.timeframe)
    .bind(new.start)
    .bind(new.end)
    .bind(new.starting_capital)
    .bind(&new.speed)
    .bind(&new.agent_snapshot)
    .bind(&new.config)
    .bind(new.total_candles)
    .fetch_one(&mut *tx)
    .await?;
    crate::activity::record(
        &mut tx,
        user_id,
        "test_started",
        "session",
        id,
        serde_json::json!({ "agent_id": new.agent_id, "asset": new.asset, "timeframe": new.timeframe }),
    )
    .await?;
    tx.commit().await?;
    find(pool, user_id, id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// The caller's session `id`.
pub async fn find(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<SessionRow> = sqlx::query_as(concat!(
        session_select!(),
        "WHERE s.user_id = $1 AND s.id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Session::from))
}

/// The caller's sessions, newest first, after `cursor`; the cursor of the next page when there
/// is one.
pub async fn list(
    pool: &PgPool,
    user_id: Uuid,
    cursor: Option<&crate::Cursor>,
    limit: i64,
) -> Result<(Vec<Session>, Option<crate::Cursor>), sqlx::Error> {
    let rows: Vec<SessionRow> = sqlx::query_as(concat!(
        session_select!(),
        "WHERE s.user_id = $1
           AND ($2::timestamptz IS NULL OR (s.created_at, s.id) < ($2, $3))
         ORDER BY s.created_at DESC, s.id DESC LIMIT $4"
    ))
    .bind(user_id)
    .bind(cursor.map(|c| c.created_at))
    .bind(cursor.map(|c| c.id).unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let mut sessions: Vec<Session> = rows.into_iter().map(Session::from).collect();
    let next = if sessions.len() as i64 > limit {
        sessions.truncate(limit as usize);
        sessions.last().map(|s| crate::Cursor {
            created_at: s.created_at,
            id: s.id,
        })
    } else {
        None
    };
    Ok((sessions, next))
}

/// Removes the caller's session `id` if no step ever ran it (its first step could not be queued):
/// the start is then refused as a whole, leaving nothing behind.
pub async fn discard_unstarted(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let gone = sqlx::query(
        "DELETE FROM test_sessions WHERE user_id = $1 AND id = $2 AND version = 0 AND checkpoint IS NULL",
    )
    .bind(user_id)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    sqlx::query("DELETE FROM activity_log WHERE user_id = $1 AND entity_id = $2 AND action = 'test_started'")
        .bind(user_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(gone)
}
