//! Test sessions: ownership checks, the typed agent snapshot and run configuration a session
//! keeps, and the one session-control service that the WebSocket actions and the arena's REST
//! routes share (pause, resume, stop, speed). A control is one conditional `UPDATE` on the
//! sessions table: it never waits for a running step (the step reads these fields between
//! candles); it takes the session's next event number and files the event announcing it in the
//! session's outbox, in the same statement. The session's step publishes the outbox with its own
//! events, in seq order: one publisher per session, so every subscriber sees one ordered stream.

use chrono::{DateTime, SecondsFormat, Utc};
use engine::EngineConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub const SPEEDS: &[&str] = &["slow", "normal", "fast", "instant"];

/// The agent as a session saw it when it started: later edits of the agent change nothing.
/// Written by the start route, read by the step worker (`test_sessions.agent_snapshot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentSnapshot {
    pub id: Uuid,
    pub name: String,
    /// An OpenRouter model id, or a baseline (`baseline/sma-cross`, ...).
    pub model: String,
    /// `monk` or `omni`.
    pub mode: String,
    #[serde(default)]
    pub indicators: Vec<String>,
    #[serde(default)]
    pub strategy_prompt: String,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// The agent's own key; `None`: the user's default key.
    #[serde(default)]
    pub api_key_id: Option<Uuid>,
}

fn default_temperature() -> f64 {
    crate::agents::DEFAULT_TEMPERATURE
}

/// How a session runs: the engine's configuration and the run's settings, as the start route
/// decided them (`test_sessions.config`), read by the step worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    pub engine: EngineConfig,
    pub fee_bps: f64,
    pub slippage_bps: f64,
    pub leverage: u8,
    pub safety_mode: bool,
    /// Candles a model is asked about at once (speculative lookahead).
    pub lookahead: u32,
    /// Ask the model again rather than reuse earlier runs' answers.
    #[serde(default)]
    pub fresh_decisions: bool,
    /// USD the model may cost.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// Candles before the range's start that warm the indicators (decided on: none).
    #[serde(default)]
    pub warmup_candles: u32,
}

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

/// A session's state after a control. `version` is the step chain's version at that moment: a
/// control that needs a step (resume, stop, anything on a paused session) sends the step message
/// for it (DESIGN section 5). `envelope` is the event announcing the change (`None` when the
/// control changed nothing: a resume of a running session, a stop of a session already stopping,
/// which only send the step again).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Controlled {
    pub status: String,
    pub speed: String,
    pub version: i64,
    /// The status before the control.
    pub was: String,
    pub envelope: Option<Value>,
}

/// Why a control did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not the caller's, or no such session.
    NotFound,
    /// The session's status does not allow it (`completed` cannot be paused, ...).
    WrongState { status: String },
    /// Not a control of this kind of session (a forward session is not paused, resumed or
    /// sped up: it decides each candle when it closes).
    NotSupported,
}

/// Whether `session_id` is one of the caller's sessions.
pub async fn owns(pool: &PgPool, user_id: Uuid, session_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM test_sessions WHERE user_id = $1 AND id = $2)")
        .bind(user_id)
        .bind(session_id)
        .fetch_one(pool)
        .await
}

/// The statement of a control: `$1` user, `$2` session, `$3` the event's time (RFC 3339), `$4`
/// the new speed. The new status and the announcing event are computed from the old row, the
/// event numbered `event_seq + 1` and appended to the outbox. `$types` are the session types
/// the control applies to.
macro_rules! control_sql {
    ($status:literal, $event:literal, $data:literal, $allowed:literal, $types:literal) => {
        concat!(
            "WITH old AS (SELECT status FROM test_sessions WHERE user_id = $1 AND id = $2 FOR UPDATE)
             UPDATE test_sessions s SET status = ", $status, ", speed = coalesce($4, s.speed),
                 event_seq = s.event_seq + 1, updated_at = now(), last_advanced_at = now(),
                 failure_reason = CASE WHEN ", $status, " = 'stopped' THEN 'stopped by the user'
                                       ELSE s.failure_reason END,
                 outbox = s.outbox || jsonb_build_array(jsonb_build_object(
                     'event', '", $event, "', 'session_id', s.id, 'seq', s.event_seq + 1,
                     'ts', $3::text, 'data', ", $data, "))
             FROM old
             WHERE s.user_id = $1 AND s.id = $2 AND s.status IN (", $allowed, ")
               AND s.type IN (", $types, ")
             RETURNING s.status, s.speed, s.version, old.status AS was, s.outbox -> -1 AS envelope"
        )
    };
}

/// Applies `control` to the caller's session when its status allows it. A resume of a session
/// already running and a stop of one already stopping change nothing and succeed (a client's
/// retry after a failure works; the caller sends the step again).
pub async fn control(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    control: &Control,
) -> Result<Result<Controlled, Refused>, sqlx::Error> {
    let (sql, speed): (&'static str, Option<&str>) = match control {
        Control::Pause => (
            control_sql!(
                "'paused'",
                "session_paused",
                "jsonb_build_object('status', 'paused', 'speed', s.speed)",
                "'pending', 'running'",
                "'backtest'"
            ),
            None,
        ),
        Control::Resume => (
            control_sql!(
                "'running'",
                "session_resumed",
                "jsonb_build_object('status', 'running', 'speed', s.speed)",
                "'paused'",
                "'backtest'"
            ),
            None,
        ),
        // the step worker finishes a stopped session (closes the position, writes the result)
        // and sets completed_at then
        Control::Stop => (
            control_sql!(
                // a backtest ends `stopped`; a forward session is `stopping` until its step
                // finalises it `completed` (the user's stop is a forward test's normal end)
                "(CASE WHEN s.type = 'forward' THEN 'stopping' ELSE 'stopped' END)",
                "session_stopped",
                "jsonb_build_object('status', (CASE WHEN s.type = 'forward' THEN 'stopping' ELSE 'stopped' END), 'speed', s.speed, 'reason', 'stopped by the user')",
                "'pending', 'running', 'paused'",
                "'backtest', 'forward'"
            ),
            None,
        ),
        Control::Speed(speed) => (
            control_sql!(
                "s.status",
                "session_speed_changed",
                "jsonb_build_object('status', s.status, 'speed', $4::text)",
                "'pending', 'running', 'paused'",
                "'backtest'"
            ),
            Some(speed.as_str()),
        ),
    };
    let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let updated: Option<Controlled> = sqlx::query_as(sql)
        .bind(user_id)
        .bind(session_id)
        .bind(ts)
        .bind(speed)
        .fetch_optional(pool)
        .await?;
    if let Some(done) = updated {
        return Ok(Ok(done));
    }
    // type, status, speed, version, completed_at
    type Row = (String, String, String, i64, Option<DateTime<Utc>>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT type, status, speed, version, completed_at FROM test_sessions WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(session_id)
    .fetch_optional(pool)
    .await?;
    let Some((kind, status, speed, version, completed_at)) = row else {
        return Ok(Err(Refused::NotFound));
    };
    if kind == "forward" && !matches!(control, Control::Stop) {
        return Ok(Err(Refused::NotSupported));
    }
    let repeat = match control {
        Control::Resume => matches!(status.as_str(), "pending" | "running"),
        Control::Stop => {
            matches!(status.as_str(), "stopped" | "stopping") && completed_at.is_none()
        }
        _ => false,
    };
    if repeat {
        return Ok(Ok(Controlled {
            was: status.clone(),
            status,
            speed,
            version,
            envelope: None,
        }));
    }
    Ok(Err(Refused::WrongState { status }))
}

/// Why a start was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStarted {
    /// The user has this many sessions pending, running or paused already.
    TooManyActive { active: i64 },
}

/// A new session, validated by the caller (the arena function).
#[derive(Debug, Clone)]
pub struct NewSession {
    /// `backtest` or `forward`.
    pub kind: &'static str,
    pub agent_id: Uuid,
    pub asset: String,
    pub timeframe: String,
    /// A backtest's range; a forward session has none.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub starting_capital: f64,
    pub speed: String,
    pub agent_snapshot: AgentSnapshot,
    pub config: SessionConfig,
    /// Candles expected in `[start, end)` (the first step counts the real ones: gaps stay gaps);
    /// `None` for a forward session.
    pub total_candles: Option<i64>,
}

/// How far a session is: the candles decided (the next one's index), how many there are
/// (`null` for a forward session), and the open time of the last decided one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub cursor: i64,
    pub total: Option<i64>,
    pub last_candle: Option<DateTime<Utc>>,
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
    /// Better than chance, better than holding (`null` for results written before evidence).
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
    /// How the result was produced and what it can prove (the methodology card).
    #[schema(value_type = Option<Object>)]
    pub methodology: Option<Value>,
}

impl SessionResult {
    /// The result of a session that ended `completed` (`completed`) or was stopped early.
    pub fn new(
        id: Uuid,
        completed: bool,
        starting_capital: f64,
        final_equity: f64,
        metrics: Value,
        economics: Economics,
    ) -> Self {
        let total_pnl = final_equity - starting_capital;
        let total_pnl_pct = total_pnl / starting_capital * 100.0;
        let trades = metrics
            .get("total_trades")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let return_pct = metrics
            .get("total_return_pct")
            .and_then(Value::as_f64)
            .unwrap_or(total_pnl_pct);
        Self {
            id,
            final_equity,
            total_pnl,
            total_pnl_pct,
            can_generate_certificate: certifiable(completed, return_pct, trades),
            metrics,
            model_calls: economics.model_calls,
            cached_decisions: economics.cached_decisions,
            speculative_calls_wasted: economics.speculative_calls_wasted,
            model_cost_usd: economics.model_cost_usd,
            cost_per_trade_usd: (trades > 0).then(|| economics.model_cost_usd / trades as f64),
            net_pnl: total_pnl - economics.model_cost_usd,
            evidence: None,
            methodology: None,
        }
    }

    /// The result with its evidence and methodology card.
    pub fn with_evidence(mut self, evidence: Option<Value>, methodology: Option<Value>) -> Self {
        self.evidence = evidence;
        self.methodology = methodology;
        self
    }
}

/// Whether a result may be certified: the test that was asked for ran to its end (a stopped one
/// did not), it is profitable (`total_return_pct >= 0`) and it closed at least one trade.
pub fn certifiable(completed: bool, total_return_pct: f64, total_trades: u64) -> bool {
    completed && total_return_pct >= 0.0 && total_trades >= 1
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
    /// `pending`, `running`, `paused` (a backtest), `stopping` (a forward session whose stop is
    /// being finalised), `completed`, `stopped` or `failed`.
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
    /// A forward session's warm-up once loaded: `{"candles", "first", "last"}` (open times).
    #[schema(value_type = Option<Object>)]
    pub warmup: Option<Value>,
    /// Intervals the exchange had no candle for: `[{"from", "to", "missing"}]` (open times of
    /// the first and last missing candle).
    #[schema(value_type = Vec<Object>)]
    pub gaps: Value,
    /// A forward session's feed: `{"status": "ok" | "delayed", "since", "reason"}` (why it is
    /// not advancing); `null` for a backtest.
    #[schema(value_type = Option<Object>)]
    pub feed: Option<Value>,
    /// Live figures after the last committed candle (equity, return, trades, drawdown).
    #[schema(value_type = Option<Object>)]
    pub stats: Option<Value>,
    /// The open position after the last committed candle (`null` when flat): side, entry time
    /// and price, quantity, leverage, stop-loss and take-profit, as `position_opened` says it.
    #[schema(value_type = Option<Object>)]
    pub position: Option<Value>,
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
    last_candle: Option<DateTime<Utc>>,
    warmup: Option<Value>,
    gaps: Value,
    feed: Option<Value>,
    live_stats: Option<Value>,
    open_position: Option<Value>,
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
    evidence: Option<Value>,
    methodology: Option<Value>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        let result = match (r.result_id, r.final_equity, r.metrics) {
            (Some(id), Some(equity), Some(metrics)) => Some(
                SessionResult::new(
                    id,
                    r.status == "completed",
                    r.starting_capital,
                    equity,
                    metrics,
                    Economics {
                        model_calls: r.r_model_calls.unwrap_or(0),
                        cached_decisions: r.r_cached_decisions.unwrap_or(0),
                        speculative_calls_wasted: r.r_speculative_calls_wasted.unwrap_or(0),
                        model_cost_usd: r.r_model_cost_usd.unwrap_or(0.0),
                    },
                )
                .with_evidence(r.evidence, r.methodology),
            ),
            _ => None,
        };
        Self {
            id: r.id,
            kind: r.kind.clone(),
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
                total: match r.kind.as_str() {
                    "forward" => None,
                    _ => Some(r.total_candles.unwrap_or(0)),
                },
                last_candle: r.last_candle,
            },
            warmup: r.warmup,
            gaps: r.gaps,
            feed: match r.kind.as_str() {
                "forward" => Some(r.feed.unwrap_or_else(
                    || serde_json::json!({"status": "ok", "since": r.created_at, "reason": null}),
                )),
                _ => None,
            },
            stats: r.live_stats,
            position: r.open_position,
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
        concat!(
            "SELECT s.id, s.type AS kind, s.status, s.failure_reason, s.agent_id, s.agent_snapshot,
                s.asset, s.timeframe, s.start_date, s.end_date, s.starting_capital, s.speed,
                s.config, s.cursor, s.total_candles, s.last_candle, s.warmup, s.gaps, s.feed,
                s.live_stats, s.open_position, s.model_calls,
                s.model_cost_usd,
                s.cached_decisions, ",
            wasted_calls!(),
            " AS speculative_calls_wasted,
                s.started_at, s.completed_at, s.created_at,
                r.id AS result_id, r.final_equity, r.metrics, r.model_calls AS r_model_calls,
                r.cached_decisions AS r_cached_decisions,
                r.speculative_calls_wasted AS r_speculative_calls_wasted,
                r.model_cost_usd AS r_model_cost_usd, r.evidence, r.methodology
         FROM test_sessions s
         LEFT JOIN test_results r ON r.user_id = s.user_id AND r.session_id = s.id "
        )
    };
}

/// Stores a new session (`pending`, version 0) and records `test_started`, unless the user
/// already has `max_active` sessions of its type pending, running, paused or stopping (checked
/// under a lock on the user's row, so two starts at once cannot both pass).
pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    new: &NewSession,
    max_active: i64,
) -> Result<Result<Session, NotStarted>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM test_sessions
         WHERE user_id = $1 AND type = $2 AND completed_at IS NULL
           AND status IN ('pending', 'running', 'paused', 'stopping')",
    )
    .bind(user_id)
    .bind(new.kind)
    .fetch_one(&mut *tx)
    .await?;
    if active >= max_active {
        return Ok(Err(NotStarted::TooManyActive { active }));
    }
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO test_sessions (user_id, agent_id, type, asset, timeframe, start_date, end_date,
             starting_capital, speed, agent_snapshot, config, total_candles, last_watched_at)
         VALUES ($1, $2, $12, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())
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
    .bind(sqlx::types::Json(&new.agent_snapshot))
    .bind(sqlx::types::Json(&new.config))
    .bind(new.total_candles)
    .bind(new.kind)
    .fetch_one(&mut *tx)
    .await?;
    crate::activity::record(
        &mut tx,
        user_id,
        "test_started",
        "session",
        id,
        serde_json::json!({ "agent_id": new.agent_id, "asset": new.asset,
                            "timeframe": new.timeframe, "type": new.kind }),
    )
    .await?;
    tx.commit().await?;
    find(pool, user_id, id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
        .map(Ok)
}

/// Where a session stands, for a client that subscribes after it started: status (and whether
/// it is finished), speed, progress, live stats, the open position, and the `seq` of the last
/// event numbered (every later event has a greater one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Standing {
    pub status: String,
    pub finished: bool,
    pub speed: String,
    pub cursor: i64,
    /// `None` for a forward session.
    pub total: Option<i64>,
    pub stats: Option<Value>,
    pub position: Option<Value>,
    pub last_seq: i64,
}

/// The caller's session `id`, where it stands.
pub async fn standing(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<Standing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, completed_at IS NOT NULL OR status IN ('completed', 'failed') AS finished,
                speed, cursor,
                CASE WHEN type = 'forward' THEN NULL ELSE coalesce(total_candles, 0) END AS total,
                live_stats AS stats,
                open_position AS position, event_seq AS last_seq
         FROM test_sessions WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await
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
    let next = crate::page::cut(&mut sessions, limit, |s| crate::Cursor {
        created_at: s.created_at,
        id: s.id,
    });
    Ok((sessions, next))
}

/// The caller's forward sessions pending, running or stopping, newest first.
pub async fn active_forward(pool: &PgPool, user_id: Uuid) -> Result<Vec<Session>, sqlx::Error> {
    let rows: Vec<SessionRow> = sqlx::query_as(concat!(
        session_select!(),
        "WHERE s.user_id = $1 AND s.type = 'forward' AND s.completed_at IS NULL
           AND s.status IN ('pending', 'running', 'stopping')
         ORDER BY s.created_at DESC, s.id DESC"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Session::from).collect())
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

#[cfg(test)]
mod tests {
    use super::certifiable;

    #[test]
    fn only_a_completed_profitable_result_with_a_trade_is_certifiable() {
        assert!(certifiable(true, 0.0, 1));
        assert!(certifiable(true, 4.8, 12));
        assert!(!certifiable(false, 4.8, 12), "stopped early");
        assert!(!certifiable(true, -0.01, 12), "a loss");
        assert!(!certifiable(true, 0.0, 0), "no closed trade");
    }
}
