//! What the backtest step worker reads and writes (DESIGN section 5). Every query is scoped by
//! the session's user (the step message names both).
//!
//! - [`load`]: the session as a step needs it (checkpoint, version, controls).
//! - [`save_thoughts`]: model decisions, persisted the moment they return, one row per session and
//!   candle; the first stored answer wins and is what every replay uses.
//! - [`commit`]: trades, the new checkpoint and cursor, the equity of the candles since the
//!   last commit, the event numbers and (at the end) the result, notification and activity
//!   entry, in ONE transaction conditional on the version the step read; it takes the session's
//!   outbox (the controls' events) for the step to publish. A stale or duplicate step commits
//!   nothing.

use chrono::{DateTime, Utc};
use engine::{Metrics, Trade};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::activity;
use crate::sessions::{AgentSnapshot, SessionConfig};

/// A session as the step worker reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepState {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `backtest` or `forward`.
    pub kind: String,
    pub status: String,
    pub speed: String,
    pub version: i64,
    pub cursor: i64,
    pub total_candles: Option<i64>,
    pub checkpoint: Option<Value>,
    pub agent_snapshot: Json<AgentSnapshot>,
    pub config: Json<SessionConfig>,
    pub asset: String,
    pub timeframe: String,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub starting_capital: f64,
    pub last_watched_at: Option<DateTime<Utc>>,
    pub model_failures: i32,
    pub step_version: Option<i64>,
    pub chain_version: i64,
    pub completed_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    /// `json_object` once the model refused the JSON schema.
    pub response_format: Option<String>,
    /// The moment the first step fixed the session's candles (cached then).
    pub candles_as_of: Option<DateTime<Utc>>,
    /// A forward session's anchor: the latest candle closed when its first step ran.
    pub anchor_time: Option<DateTime<Utc>>,
    /// The open time of the last decided candle.
    pub last_candle: Option<DateTime<Utc>>,
    /// The exchange's gaps met so far: `[{"from", "to", "missing"}]`.
    pub gaps: Value,
}

/// The session `session_id` of `user_id`.
pub async fn load(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<StepState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, type AS kind, status, speed, version, cursor, total_candles,
                checkpoint, agent_snapshot, config, asset, timeframe, start_date, end_date,
                starting_capital, last_watched_at, model_failures, step_version, chain_version,
                completed_at, started_at, response_format, candles_as_of, anchor_time,
                last_candle, gaps
         FROM test_sessions WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(session_id)
    .fetch_optional(pool)
    .await
}

/// One model decision as stored in `ai_thoughts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Thought {
    pub candle_index: i64,
    pub candle_time: DateTime<Utc>,
    /// SHA-256 of the request sent (hex).
    pub prompt_hash: Option<String>,
    /// `long`, `short`, `hold` or `close`.
    pub action: String,
    pub reasoning: String,
    pub confidence: Option<i32>,
    /// The order as read from the reply (leverage, stop-loss, take-profit, size).
    pub order_details: Option<Value>,
    /// The reply, kept when it could not be used.
    pub raw_response: Option<String>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub cost_usd: Option<f64>,
    pub latency_ms: Option<i32>,
    /// Why the reply could not be used, or why the call failed.
    pub error: Option<String>,
    /// Reused from an earlier run's identical request (no call, no cost).
    #[serde(default)]
    pub from_cache: bool,
    /// SHA-256 of the answer's content (hex; `None`: no answer came).
    #[serde(default)]
    pub answer_hash: Option<String>,
}

/// The stored decisions of candles `from..to` (indexes), in order.
pub async fn thoughts(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    from: i64,
    to: i64,
) -> Result<Vec<Thought>, sqlx::Error> {
    sqlx::query_as(
        "SELECT candle_index, candle_time, prompt_hash, action, reasoning, confidence,
                order_details, raw_response, prompt_tokens, completion_tokens, cost_usd,
                latency_ms, error, from_cache, answer_hash
         FROM ai_thoughts WHERE user_id = $1 AND session_id = $2
           AND candle_index >= $3 AND candle_index < $4
         ORDER BY candle_index",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// What a result's ledger records of one stored model decision.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LedgerDecision {
    pub candle_index: i64,
    pub action: String,
    pub order_details: Option<Value>,
    pub prompt_hash: Option<String>,
    pub answer_hash: Option<String>,
    pub error: Option<String>,
    pub from_cache: bool,
}

/// Every stored decision of a session, in candle order (without the reasoning).
pub async fn ledger_decisions(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Vec<LedgerDecision>, sqlx::Error> {
    sqlx::query_as(
        "SELECT candle_index, action, order_details, prompt_hash, answer_hash, error, from_cache
         FROM ai_thoughts WHERE user_id = $1 AND session_id = $2 ORDER BY candle_index",
    )
    .bind(user_id)
    .bind(session_id)
    .fetch_all(pool)
    .await
}

/// Persists the accepted decisions of a window (one multi-row insert, before any is applied)
/// and adds how many came from the cache to the session's totals, in the same statement. A
/// candle that already has a decision keeps it (a replay racing a crash); returns the stored
/// decisions of these candles, which are the ones to apply (read back only after a conflict).
pub async fn save_thoughts(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    new: &[Thought],
    cached: i64,
) -> Result<Vec<Thought>, sqlx::Error> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let rows = serde_json::to_value(new).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let inserted: i64 = sqlx::query_scalar(
        "WITH ins AS (
             INSERT INTO ai_thoughts (session_id, user_id, candle_index, candle_time, prompt_hash,
                 action, reasoning, confidence, order_details, raw_response, prompt_tokens,
                 completion_tokens, cost_usd, latency_ms, error, from_cache, answer_hash)
             SELECT $2, $1, t.candle_index, t.candle_time, t.prompt_hash, t.action, t.reasoning,
                    t.confidence, t.order_details, t.raw_response, t.prompt_tokens,
                    t.completion_tokens, t.cost_usd, t.latency_ms, t.error, t.from_cache,
                    t.answer_hash
             FROM jsonb_to_recordset($3) AS t(candle_index bigint, candle_time timestamptz,
                 prompt_hash text, action text, reasoning text, confidence integer,
                 order_details jsonb, raw_response text, prompt_tokens integer,
                 completion_tokens integer, cost_usd double precision, latency_ms integer,
                 error text, from_cache boolean, answer_hash text)
             ON CONFLICT (session_id, candle_index) DO NOTHING
             RETURNING 1),
         counted AS (
             UPDATE test_sessions SET cached_decisions = cached_decisions + $4,
                 decisions = decisions + (SELECT count(*) FROM ins)
             WHERE user_id = $1 AND id = $2 AND EXISTS (SELECT 1 FROM ins))
         SELECT count(*) FROM ins",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(rows)
    .bind(cached)
    .fetch_one(pool)
    .await?;
    if inserted == new.len() as i64 {
        return Ok(new.to_vec());
    }
    // another delivery stored some first: theirs are the decisions
    let first = new.iter().map(|t| t.candle_index).min().unwrap_or(0);
    let last = new.iter().map(|t| t.candle_index).max().unwrap_or(0);
    thoughts(pool, user_id, session_id, first, last + 1).await
}

/// Marks the step that committed `version` as ended: the next message carries `version`.
/// `false` when the version moved (another delivery went on).
pub async fn close_step(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    version: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE test_sessions SET chain_version = version
         WHERE user_id = $1 AND id = $2 AND version = $3",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(version)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// How a session ends in this commit.
#[derive(Debug, Clone)]
pub enum Finish<'a> {
    /// The last candle was processed (`completed`), or the user stopped it (`stopped`): the
    /// result is written.
    Result {
        /// `Backtest` or `Forward test`: how the notification names the session.
        label: &'a str,
        status: &'static str,
        /// The `test_results` row's id (chosen by the caller, so the completion event can name it).
        result_id: Uuid,
        /// Why it stopped (`stopped by the user`, `budget`); none for a completion.
        reason: Option<&'a str>,
        metrics: &'a Metrics,
        mode: &'a str,
        duration_seconds: i64,
        /// The evidence, the methodology card and the signed ledger.
        sealed: Option<&'a Sealed>,
    },
    /// The session cannot go on (`failed`), for `reason`.
    Failed { label: &'a str, reason: &'a str },
}

/// A result's evidence (`evidence`, `methodology`) and its signed ledger, written with it.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub evidence: Value,
    pub methodology: Value,
    /// The seal's `head`.
    pub head: String,
    pub key_id: String,
    pub public_key: String,
    pub chunks: Vec<crate::ledger::Chunk>,
}

/// What one commit writes.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// The version the step read: the commit happens only if it is still current.
    pub version: i64,
    /// The version of the message the step is handling.
    pub step_version: i64,
    pub checkpoint: &'a Value,
    /// Index of the next candle.
    pub cursor: i64,
    /// `None` for a forward session.
    pub total_candles: Option<i64>,
    /// Trades closed since the last commit.
    pub trades: &'a [Trade],
    /// How many session events this commit numbers.
    pub events: i64,
    /// The live figures (`None`: as they are).
    pub live_stats: Option<&'a Value>,
    pub last_watched_at: Option<DateTime<Utc>>,
    pub model_failures: i32,
    /// The open position after the last candle (`null` when flat; `None`: as it is).
    pub position: Option<&'a Value>,
    /// When the session's candles were fixed (the first step's commit sets it).
    pub candles_as_of: Option<DateTime<Utc>>,
    /// The equity of the candles since the last commit: (index of the first, open times, equity).
    pub equity: Option<(i64, &'a [i64], &'a [f64])>,
    /// The open time of the last decided candle (`None`: as it is).
    pub last_candle: Option<DateTime<Utc>>,
    /// A forward session's first step: its anchor, its warm-up (`{"candles", "first", "last"}`)
    /// and the first decided candle's open time, set once (`None`: as they are).
    pub anchored: Option<(DateTime<Utc>, &'a Value, DateTime<Utc>)>,
    /// The exchange's gaps met so far (`None`: as they are).
    pub gaps: Option<&'a Value>,
    pub finish: Option<Finish<'a>>,
}

/// The session after a commit. The events of the commit are numbered
/// `last_seq - events + 1 ..= last_seq`; `outbox` holds the controls' events filed since the last
/// commit (all numbered before this commit's), to be published first.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Committed {
    pub status: String,
    pub speed: String,
    pub version: i64,
    pub last_seq: i64,
    pub outbox: Json<Vec<Value>>,
}

fn to_time(ms: i64) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| sqlx::Error::Encode(format!("time {ms} out of range").into()))
}

/// Writes `c` in one transaction if the session's version is still `c.version`; `None` when it
/// is not (a stale or duplicate step: nothing was written).
pub async fn commit(pool: &PgPool, c: &Commit<'_>) -> Result<Option<Committed>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (final_status, reason): (Option<&str>, Option<&str>) = match &c.finish {
        None => (None, None),
        Some(Finish::Result { status, reason, .. }) => (Some(status), *reason),
        Some(Finish::Failed { reason, .. }) => (Some("failed"), Some(reason)),
    };
    let anchor = c.anchored.map(|a| a.0);
    let warmup = c.anchored.map(|a| a.1);
    let first_candle = c.anchored.map(|a| a.2);
    let committed: Option<Committed> = sqlx::query_as(
        "WITH old AS (SELECT outbox FROM test_sessions
                      WHERE user_id = $1 AND id = $2 AND version = $3 FOR UPDATE)
         UPDATE test_sessions s SET
             checkpoint = $4, cursor = $5, total_candles = $6, version = s.version + 1,
             event_seq = s.event_seq + $7, live_stats = coalesce($8, s.live_stats),
             last_watched_at = coalesce($9, s.last_watched_at), model_failures = $10,
             last_advanced_at = now(), updated_at = now(), step_version = $13,
             open_position = coalesce($14, s.open_position),
             candles_as_of = coalesce(s.candles_as_of, $15),
             last_candle = coalesce($16, s.last_candle),
             anchor_time = coalesce(s.anchor_time, $17), warmup = coalesce(s.warmup, $18),
             start_date = coalesce(s.start_date, $19), gaps = coalesce($20, s.gaps),
             outbox = '[]', started_at = coalesce(s.started_at, now()),
             status = CASE WHEN $11::text IS NOT NULL THEN $11
                           WHEN s.status = 'pending' THEN 'running' ELSE s.status END,
             failure_reason = CASE WHEN $12::text IS NOT NULL THEN $12
                                   WHEN $11::text = 'completed' THEN NULL ELSE s.failure_reason END,
             completed_at = CASE WHEN $11::text IS NOT NULL THEN now() ELSE s.completed_at END
         FROM old
         WHERE s.user_id = $1 AND s.id = $2 AND s.version = $3
         RETURNING s.status, s.speed, s.version, s.event_seq AS last_seq, old.outbox",
    )
    .bind(c.user_id)
    .bind(c.session_id)
    .bind(c.version)
    .bind(c.checkpoint)
    .bind(c.cursor)
    .bind(c.total_candles)
    .bind(c.events)
    .bind(c.live_stats)
    .bind(c.last_watched_at)
    .bind(c.model_failures)
    .bind(final_status)
    .bind(reason)
    .bind(c.step_version)
    .bind(c.position)
    .bind(c.candles_as_of)
    .bind(c.last_candle)
    .bind(anchor)
    .bind(warmup)
    .bind(first_candle)
    .bind(c.gaps)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(committed) = committed else {
        return Ok(None);
    };
    if !c.trades.is_empty() {
        insert_trades(&mut tx, c).await?;
    }
    if let Some((first_index, times, equity)) = c.equity
        && !times.is_empty()
    {
        sqlx::query(
            "INSERT INTO session_equity (session_id, user_id, first_index, times, equity)
             VALUES ($2, $1, $3, $4, $5)",
        )
        .bind(c.user_id)
        .bind(c.session_id)
        .bind(first_index)
        .bind(times)
        .bind(equity)
        .execute(&mut *tx)
        .await?;
    }
    match &c.finish {
        None => {}
        Some(Finish::Result {
            label,
            status,
            result_id,
            reason,
            metrics,
            mode,
            duration_seconds,
            sealed,
        }) => {
            insert_result(
                &mut tx,
                c,
                *result_id,
                metrics,
                mode,
                *duration_seconds,
                *sealed,
            )
            .await?;
            if let Some(sealed) = sealed {
                crate::ledger::insert(
                    &mut tx,
                    c.user_id,
                    *result_id,
                    &sealed.chunks,
                    &sealed.key_id,
                    &sealed.public_key,
                )
                .await?;
            }
            let (action, title) = if *status == "completed" {
                ("test_completed", format!("{label} completed"))
            } else {
                ("test_stopped", format!("{label} stopped"))
            };
            let message = format!(
                "{title}: {:+.2} % over {} candles, {} trades.",
                metrics.total_return_pct, metrics.candles, metrics.total_trades
            );
            let ids = serde_json::json!({ "session_id": c.session_id, "result_id": result_id });
            match (*status, reason) {
                ("completed", _) => {
                    notify(&mut tx, c.user_id, action, &title, &message, ids).await?
                }
                // a stop the user asked for is announced to nobody: they pressed it
                (_, None) => {}
                (_, Some(reason)) => {
                    let mut data = ids;
                    data["reason"] = (*reason).into();
                    let message = format!("{message} Reason: {reason}.");
                    notify(&mut tx, c.user_id, action, &title, &message, data).await?
                }
            }
            activity::record(
                &mut tx,
                c.user_id,
                action,
                "session",
                c.session_id,
                serde_json::json!({ "total_return_pct": metrics.total_return_pct,
                                    "total_trades": metrics.total_trades }),
            )
            .await?;
        }
        Some(Finish::Failed { label, reason }) => {
            let message = format!("{label} failed: {reason}");
            let data = serde_json::json!({ "session_id": c.session_id, "reason": reason });
            notify(
                &mut tx,
                c.user_id,
                "test_failed",
                &format!("{label} failed"),
                &message,
                data,
            )
            .await?;
            activity::record(
                &mut tx,
                c.user_id,
                "test_failed",
                "session",
                c.session_id,
                serde_json::json!({ "reason": reason }),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Some(committed))
}

async fn insert_trades(tx: &mut sqlx::PgConnection, c: &Commit<'_>) -> Result<(), sqlx::Error> {
    let mut rows = Vec::with_capacity(c.trades.len());
    for t in c.trades {
        rows.push(serde_json::json!({
            "trade_no": t.trade_no, "side": t.side.as_str(),
            "entry_time": to_time(t.entry_time)?, "entry_price": t.entry_price,
            "exit_time": to_time(t.exit_time)?, "exit_price": t.exit_price,
            "quantity": t.quantity, "leverage": t.leverage, "stop_loss": t.stop_loss,
            "take_profit": t.take_profit, "pnl": t.pnl, "pnl_pct": t.pnl_pct, "fees": t.fees,
            "exit_type": t.exit_type.as_str(),
        }));
    }
    sqlx::query(
        "INSERT INTO trades (session_id, user_id, trade_no, side, entry_time, entry_price,
             exit_time, exit_price, quantity, leverage, stop_loss, take_profit, pnl, pnl_pct,
             fees, exit_type)
         SELECT $2, $1, t.trade_no, t.side, t.entry_time, t.entry_price, t.exit_time,
                t.exit_price, t.quantity, t.leverage, t.stop_loss, t.take_profit, t.pnl,
                t.pnl_pct, t.fees, t.exit_type
         FROM jsonb_to_recordset($3) AS t(trade_no integer, side text, entry_time timestamptz,
             entry_price double precision, exit_time timestamptz, exit_price double precision,
             quantity double precision, leverage integer, stop_loss double precision,
             take_profit double precision, pnl double precision, pnl_pct double precision,
             fees double precision, exit_type text)",
    )
    .bind(c.user_id)
    .bind(c.session_id)
    .bind(Value::Array(rows))
    .execute(tx)
    .await
    .map(drop)
}

/// The metrics as `alphalab backtest` prints them (without the equity curve, which has its own
/// column).
pub fn metrics_json(metrics: &Metrics) -> Value {
    metrics.summary_json()
}

async fn insert_result(
    tx: &mut sqlx::PgConnection,
    c: &Commit<'_>,
    id: Uuid,
    m: &Metrics,
    mode: &str,
    duration_seconds: i64,
    sealed: Option<&Sealed>,
) -> Result<(), sqlx::Error> {
    let curve =
        serde_json::to_value(&m.equity_curve).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(concat!(
        "INSERT INTO test_results (id, session_id, user_id, agent_id, type, mode, asset, timeframe,
             start_date, end_date, starting_capital, final_equity, total_pnl, total_pnl_pct,
             buy_hold_return_pct, max_drawdown_pct, win_rate, profit_factor, sharpe_ratio,
             sortino_ratio, calmar_ratio, total_trades, winning_trades, losing_trades, fees_paid,
             metrics, equity_curve, agent_snapshot, config, duration_seconds, model_calls,
             cached_decisions, speculative_calls_wasted, model_cost_usd, evidence, methodology,
             ledger_head, ledger_key_id)
         SELECT $19, s.id, s.user_id, s.agent_id, s.type, $3, s.asset, s.timeframe, s.start_date,
                s.end_date, s.starting_capital, $4, $4 - s.starting_capital, $20, $5, $6, $7, $8, $9, $10,
                $11, $12, $13, $14, $15, $16, $17, s.agent_snapshot, s.config, $18, s.model_calls,
                s.cached_decisions, ",
        wasted_calls!(),
        ", s.model_cost_usd, $21, $22, $23, $24
         FROM test_sessions s WHERE s.user_id = $1 AND s.id = $2"
    ))
    .bind(c.user_id)
    .bind(c.session_id)
    .bind(mode)
    .bind(m.final_equity)
    .bind(m.buy_hold_return_pct)
    .bind(m.max_drawdown_pct)
    .bind(m.win_rate_pct)
    .bind(m.profit_factor)
    .bind(m.sharpe_ratio)
    .bind(m.sortino_ratio)
    .bind(m.calmar_ratio)
    .bind(m.total_trades as i32)
    .bind(m.winning_trades as i32)
    .bind(m.losing_trades as i32)
    .bind(m.fees_paid)
    .bind(metrics_json(m))
    .bind(curve)
    .bind(duration_seconds)
    .bind(id)
    .bind(m.total_return_pct)
    .bind(sealed.map(|s| &s.evidence))
    .bind(sealed.map(|s| &s.methodology))
    .bind(sealed.map(|s| &s.head))
    .bind(sealed.map(|s| &s.key_id))
    .execute(tx)
    .await
    .map(drop)
}

/// A notification of `kind` (`test_completed`, `test_stopped` or `test_failed`), unless the
/// user turned its setting off (`notify_test_failed` for a failure, `notify_test_completed`
/// otherwise).
async fn notify(
    tx: &mut sqlx::PgConnection,
    user_id: Uuid,
    kind: &str,
    title: &str,
    message: &str,
    data: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifications (user_id, type, title, message, data)
         SELECT $1, $2, $3, $4, $5
         FROM user_settings
         WHERE user_id = $1
           AND CASE WHEN $2 = 'test_failed' THEN notify_test_failed ELSE notify_test_completed END",
    )
    .bind(user_id)
    .bind(kind)
    .bind(title)
    .bind(message)
    .bind(data)
    .execute(tx)
    .await
    .map(drop)
}

/// Every candle's equity point the session's commits appended, in candle order: (open time,
/// equity).
pub async fn equity(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Vec<(i64, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.time, t.equity
         FROM session_equity e, unnest(e.times, e.equity) WITH ORDINALITY AS t(time, equity, n)
         WHERE e.user_id = $1 AND e.session_id = $2
         ORDER BY e.first_index, t.n",
    )
    .bind(user_id)
    .bind(session_id)
    .fetch_all(pool)
    .await
}

/// Keeps the response format a session's model fell back to (`json_object`): every later step,
/// replays included, asks (and hashes) the same requests.
pub async fn set_response_format(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    format: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE test_sessions SET response_format = $3 WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(session_id)
        .bind(format)
        .execute(pool)
        .await
        .map(drop)
}

/// A session the watchdog found stalled and claimed: its step is to be sent again.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Stalled {
    pub id: Uuid,
    pub user_id: Uuid,
    pub version: i64,
}

/// The sessions with work left (pending, running, stopping, or stopped but not finished) that
/// have not advanced for `stall_secs`, and that the watchdog has not nudged within as long:
/// claimed (`nudged_at` set) in the same statement, so two watchdogs never both send. At most
/// `limit`. A running forward session has work left only when a candle it has not decided,
/// closed by the exchange's clock as last read, has been cached for `stall_secs` (one merely
/// waiting for its next candle to close is not stalled).
pub async fn claim_stalled(
    pool: &PgPool,
    stall_secs: i64,
    limit: i64,
) -> Result<Vec<Stalled>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE test_sessions s SET nudged_at = now()
         FROM (SELECT id FROM test_sessions
               WHERE completed_at IS NULL
                 AND status IN ('pending', 'running', 'stopped', 'stopping')
                 AND coalesce(last_advanced_at, created_at) < now() - make_interval(secs => $1)
                 AND (type = 'backtest' OR status <> 'running' OR EXISTS (
                        SELECT 1 FROM market_data_cache m
                        WHERE m.asset = test_sessions.asset AND m.timeframe = test_sessions.timeframe
                          AND m.open_time > coalesce(test_sessions.last_candle, test_sessions.anchor_time)
                          AND m.fetched_at < now() - make_interval(secs => $1)
                          AND m.open_time + ",
        candle_length!("test_sessions.timeframe"),
        " <= (SELECT server_time FROM exchange_clock WHERE exchange = 'binance')))
                 AND (nudged_at IS NULL OR nudged_at < now() - make_interval(secs => $1))
               ORDER BY coalesce(last_advanced_at, created_at)
               LIMIT $2
               FOR UPDATE SKIP LOCKED) stalled
         WHERE s.id = stalled.id
         RETURNING s.id, s.user_id, s.version"
    ))
    .bind(stall_secs as f64)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Every unfinished session with work left (pending, running, stopping, or stopped but not
/// finalised): what `alphalab serve` sends a step to at start-up (the queue lived in memory).
pub async fn unfinished(pool: &PgPool) -> Result<Vec<(Uuid, Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, version FROM test_sessions
         WHERE completed_at IS NULL AND status IN ('pending', 'running', 'stopping', 'stopped')
         ORDER BY created_at",
    )
    .fetch_all(pool)
    .await
}

/// Gives a claim back (the nudge could not be sent): the next watchdog run tries again.
pub async fn unclaim(pool: &PgPool, user_id: Uuid, session_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE test_sessions SET nudged_at = NULL WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(session_id)
        .execute(pool)
        .await
        .map(drop)
}
