//! Results (issue 23): what a finished backtest or forward test became, read by its owner. A
//! result is written once by the step worker (`steps::commit`) for a completed or stopped
//! session; nothing here writes one.
//!
//! The columns of `test_results` are the source of each figure they hold (`total_pnl_pct` is the
//! result's `total_return_pct`, `win_rate` its `win_rate_pct`, ...); `metrics` holds the rest, as
//! the engine computed them. So a figure shown in the list, the detail, its `metrics` and a
//! certificate's snapshot is one stored value, and editing it anywhere shows everywhere.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::candle_time;
use crate::sessions::{AgentSnapshot, SessionConfig};

/// The agent that ran a result: its id kept in the snapshot survives the agent's deletion.
const AGENT_ID: &str = "coalesce(r.agent_id, (r.agent_snapshot->>'id')::uuid)";

/// A result in a list.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ResultSummary {
    pub id: Uuid,
    pub session_id: Uuid,
    /// The agent that ran it (kept when the agent is deleted).
    pub agent_id: Option<Uuid>,
    /// The agent's name when the test started.
    pub agent_name: String,
    pub model: String,
    /// `monk` or `omni`.
    pub mode: String,
    /// `backtest` or `forward`.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    /// `completed` or `stopped`.
    pub status: String,
    pub asset: String,
    pub timeframe: String,
    /// The range requested.
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// Candles processed.
    pub candles: i64,
    pub initial_capital: f64,
    pub final_equity: f64,
    pub total_return_pct: f64,
    pub win_rate_pct: Option<f64>,
    pub total_trades: i32,
    pub max_drawdown_pct: Option<f64>,
    /// `total_return_pct >= 0`.
    pub is_profitable: bool,
    /// `null` until certified.
    pub certificate_id: Option<Uuid>,
    /// Wall time from the start to the end of the run.
    pub duration_seconds: Option<i64>,
    pub created_at: DateTime<Utc>,
}

const SUMMARY: &str = "r.id, r.session_id,
    coalesce(r.agent_id, (r.agent_snapshot->>'id')::uuid) AS agent_id,
    coalesce(r.agent_snapshot->>'name', '') AS agent_name,
    coalesce(r.agent_snapshot->>'model', '') AS model, r.mode, r.type, s.status, r.asset,
    r.timeframe, r.start_date, r.end_date, coalesce((r.metrics->>'candles')::bigint, 0) AS candles,
    r.starting_capital AS initial_capital, r.final_equity, r.total_pnl_pct AS total_return_pct,
    r.win_rate AS win_rate_pct, r.total_trades, r.max_drawdown_pct,
    r.total_pnl_pct >= 0 AS is_profitable, c.id AS certificate_id, r.duration_seconds, r.created_at";

const FROM: &str = "FROM test_results r
    JOIN test_sessions s ON s.user_id = r.user_id AND s.id = r.session_id
    LEFT JOIN certificates c ON c.user_id = r.user_id AND c.result_id = r.id";

/// Which results a list or its stats take (`$2`..`$6` of their queries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// `backtest` or `forward`.
    pub kind: Option<&'static str>,
    pub agent_id: Option<Uuid>,
    pub asset: Option<&'static str>,
    pub profitable: Option<bool>,
    /// `completed` or `stopped`.
    pub status: Option<&'static str>,
}

fn filter_sql() -> String {
    format!(
        "r.user_id = $1 AND ($2::text IS NULL OR r.type = $2)
         AND ($3::uuid IS NULL OR {AGENT_ID} = $3) AND ($4::text IS NULL OR r.asset = $4)
         AND ($5::boolean IS NULL OR (r.total_pnl_pct >= 0) = $5)
         AND ($6::text IS NULL OR s.status = $6)"
    )
}

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    CreatedAt,
    TotalReturn,
}

impl Sort {
    pub const NAMES: &'static [&'static str] = &["created_at", "total_return_pct"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "created_at" => Some(Self::CreatedAt),
            "total_return_pct" => Some(Self::TotalReturn),
            _ => None,
        }
    }

    fn column(self) -> &'static str {
        match self {
            Self::CreatedAt => "r.created_at",
            Self::TotalReturn => "r.total_pnl_pct",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::TotalReturn => "total_return_pct",
        }
    }
}

/// The last row of a page: its sort keys, exactly (the return as its f64 bits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResultCursor {
    pub created_at: DateTime<Utc>,
    pub total_return_pct: f64,
    pub id: Uuid,
}

fn cursor_tag(sort: Sort, ascending: bool) -> String {
    format!(
        "results:{}:{}",
        sort.name(),
        if ascending { "asc" } else { "desc" }
    )
}

impl ResultCursor {
    pub fn encode(&self, sort: Sort, ascending: bool) -> String {
        crate::page::encode_key(
            &cursor_tag(sort, ascending),
            &format!(
                "{}_{:x}_{}",
                self.created_at.timestamp_micros(),
                self.total_return_pct.to_bits(),
                self.id
            ),
        )
    }

    /// `None` for anything but a cursor of this sort and order.
    pub fn decode(text: &str, sort: Sort, ascending: bool) -> Option<Self> {
        let key = crate::page::decode_key(&cursor_tag(sort, ascending), text)?;
        let mut parts = key.splitn(3, '_');
        let micros = parts.next()?.parse().ok()?;
        let bits = u64::from_str_radix(parts.next()?, 16).ok()?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros)?,
            total_return_pct: f64::from_bits(bits),
            id: parts.next()?.parse().ok()?,
        })
    }
}

/// A page of the caller's results.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Filter,
    pub sort: Sort,
    pub ascending: bool,
    pub cursor: Option<ResultCursor>,
    pub limit: i64,
}

/// One page of the caller's results and the cursor of the next (keyset: ties broken by id in
/// the same direction, no row repeated or skipped).
pub async fn list(
    pool: &PgPool,
    user_id: Uuid,
    q: &ListQuery,
) -> Result<(Vec<ResultSummary>, Option<ResultCursor>), sqlx::Error> {
    let column = q.sort.column();
    let (dir, cmp) = if q.ascending {
        ("ASC", ">")
    } else {
        ("DESC", "<")
    };
    let key = match q.sort {
        Sort::CreatedAt => "$7::timestamptz",
        Sort::TotalReturn => "$8::double precision",
    };
    let after = if q.cursor.is_some() {
        format!("AND ({column}, r.id) {cmp} ({key}, $9)")
    } else {
        // the parameters are bound either way
        "AND $7::timestamptz IS NULL AND $8::double precision IS NULL AND $9::uuid IS NULL".into()
    };
    let sql = format!(
        "SELECT {SUMMARY} {FROM} WHERE {} {after}
         ORDER BY {column} {dir}, r.id {dir} LIMIT $10",
        filter_sql()
    );
    let f = &q.filter;
    let mut rows: Vec<ResultSummary> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .bind(f.kind)
        .bind(f.agent_id)
        .bind(f.asset)
        .bind(f.profitable)
        .bind(f.status)
        .bind(q.cursor.map(|c| c.created_at))
        .bind(q.cursor.map(|c| c.total_return_pct))
        .bind(q.cursor.map(|c| c.id))
        .bind(q.limit + 1)
        .fetch_all(pool)
        .await?;
    let next = crate::page::cut(&mut rows, q.limit, |r| ResultCursor {
        created_at: r.created_at,
        total_return_pct: r.total_return_pct,
        id: r.id,
    });
    Ok((rows, next))
}

/// Aggregates over exactly the results a list with the same filter returns.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub total_results: i64,
    pub profitable_results: i64,
    /// profitable / total x 100 (`null` without results).
    pub profitable_pct: Option<f64>,
    pub best_total_return_pct: Option<f64>,
    pub average_total_return_pct: Option<f64>,
    pub total_trades: i64,
    pub by_agent: Vec<AgentStats>,
}

/// The same aggregates per agent (the agent's current name, or its name in its newest result
/// once deleted), best first.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AgentStats {
    pub agent_id: Option<Uuid>,
    pub agent_name: String,
    pub results: i64,
    pub profitable_results: i64,
    pub best_total_return_pct: Option<f64>,
    pub average_total_return_pct: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct Totals {
    total_results: i64,
    profitable_results: i64,
    best_total_return_pct: Option<f64>,
    average_total_return_pct: Option<f64>,
    total_trades: i64,
}

/// The stats of the caller's results that `filter` takes.
pub async fn stats(pool: &PgPool, user_id: Uuid, filter: &Filter) -> Result<Stats, sqlx::Error> {
    let taken = format!(
        "WITH f AS (SELECT {AGENT_ID} AS agent_id, r.total_pnl_pct, r.total_trades, r.created_at,
                           r.agent_snapshot->>'name' AS snapshot_name
                    {FROM} WHERE {})",
        filter_sql()
    );
    let totals: Totals = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{taken}
         SELECT count(*) AS total_results,
                count(*) FILTER (WHERE total_pnl_pct >= 0) AS profitable_results,
                max(total_pnl_pct) AS best_total_return_pct,
                avg(total_pnl_pct) AS average_total_return_pct,
                coalesce(sum(total_trades), 0)::bigint AS total_trades
         FROM f"
    )))
    .bind(user_id)
    .bind(filter.kind)
    .bind(filter.agent_id)
    .bind(filter.asset)
    .bind(filter.profitable)
    .bind(filter.status)
    .fetch_one(pool)
    .await?;
    let by_agent: Vec<AgentStats> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{taken}
         SELECT f.agent_id,
                coalesce((SELECT a.name FROM agents a WHERE a.user_id = $1 AND a.id = f.agent_id),
                         (array_agg(f.snapshot_name ORDER BY f.created_at DESC))[1], '')
                    AS agent_name,
                count(*) AS results,
                count(*) FILTER (WHERE f.total_pnl_pct >= 0) AS profitable_results,
                max(f.total_pnl_pct) AS best_total_return_pct,
                avg(f.total_pnl_pct) AS average_total_return_pct
         FROM f GROUP BY f.agent_id
         ORDER BY best_total_return_pct DESC NULLS LAST, f.agent_id"
    )))
    .bind(user_id)
    .bind(filter.kind)
    .bind(filter.agent_id)
    .bind(filter.asset)
    .bind(filter.profitable)
    .bind(filter.status)
    .fetch_all(pool)
    .await?;
    Ok(Stats {
        total_results: totals.total_results,
        profitable_results: totals.profitable_results,
        profitable_pct: (totals.total_results > 0)
            .then(|| totals.profitable_results as f64 / totals.total_results as f64 * 100.0),
        best_total_return_pct: totals.best_total_return_pct,
        average_total_return_pct: totals.average_total_return_pct,
        total_trades: totals.total_trades,
        by_agent,
    })
}

/// The run's settings as applied.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AppliedConfig {
    pub initial_capital: f64,
    pub fee_bps: f64,
    pub slippage_bps: f64,
    pub leverage: u8,
    pub safety_mode: bool,
    /// `slow`, `normal`, `fast` or `instant`.
    pub speed: String,
    pub lookahead: u32,
}

/// The agent as it was when the test started.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub name: String,
    pub model: String,
    pub mode: String,
    pub indicators: Vec<String>,
    pub strategy_prompt: String,
}

/// One result in full: its summary, every metric, the settings and the agent as they were.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ResultDetail {
    #[serde(flatten)]
    pub summary: ResultSummary,
    /// Every metric of the run (named as the session's `result.metrics`), the equity curve
    /// excepted (`GET /api/results/{id}/equity`).
    #[schema(value_type = Object)]
    pub metrics: Value,
    pub config: AppliedConfig,
    pub agent_snapshot: AgentView,
    /// Better than chance, better than holding (`null` for results written before evidence;
    /// see the README's "Evidence").
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
    /// How the result was produced and what it can prove: data, fills, costs, model, the
    /// model's training cutoff against the window, and the evidence grade.
    #[schema(value_type = Option<Object>)]
    pub methodology: Option<Value>,
    /// The seal's `head` of the signed ledger (`GET /api/results/{id}/ledger`).
    pub ledger_head: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    summary: ResultSummary,
    metrics: Value,
    buy_hold_return_pct: Option<f64>,
    profit_factor: Option<f64>,
    sharpe_ratio: Option<f64>,
    sortino_ratio: Option<f64>,
    calmar_ratio: Option<f64>,
    winning_trades: i32,
    losing_trades: i32,
    fees_paid: f64,
    config: Json<SessionConfig>,
    agent_snapshot: Json<AgentSnapshot>,
    speed: String,
    evidence: Option<Value>,
    methodology: Option<Value>,
    ledger_head: Option<String>,
}

/// The caller's result `id`; `None` when it is not theirs or not there.
pub async fn get(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<ResultDetail>, sqlx::Error> {
    let row: Option<DetailRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY}, r.metrics, r.buy_hold_return_pct, r.profit_factor, r.sharpe_ratio,
                r.sortino_ratio, r.calmar_ratio, r.winning_trades, r.losing_trades, r.fees_paid,
                r.config, r.agent_snapshot, s.speed, r.evidence, r.methodology, r.ledger_head
         {FROM} WHERE r.user_id = $1 AND r.id = $2"
    )))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        let s = &r.summary;
        let mut metrics = r.metrics;
        if let Some(m) = metrics.as_object_mut() {
            m.remove("equity_curve");
            // the columns hold these figures: one stored value wherever it is shown
            for (name, value) in [
                ("initial_capital", json!(s.initial_capital)),
                ("final_equity", json!(s.final_equity)),
                ("total_return_pct", json!(s.total_return_pct)),
                ("buy_hold_return_pct", json!(r.buy_hold_return_pct)),
                ("max_drawdown_pct", json!(s.max_drawdown_pct)),
                ("win_rate_pct", json!(s.win_rate_pct)),
                ("profit_factor", json!(r.profit_factor)),
                ("sharpe_ratio", json!(r.sharpe_ratio)),
                ("sortino_ratio", json!(r.sortino_ratio)),
                ("calmar_ratio", json!(r.calmar_ratio)),
                ("total_trades", json!(s.total_trades)),
                ("winning_trades", json!(r.winning_trades)),
                ("losing_trades", json!(r.losing_trades)),
                ("fees_paid", json!(r.fees_paid)),
            ] {
                m.insert(name.into(), value);
            }
        }
        let c = &r.config.0;
        let a = r.agent_snapshot.0;
        ResultDetail {
            config: AppliedConfig {
                initial_capital: s.initial_capital,
                fee_bps: c.fee_bps,
                slippage_bps: c.slippage_bps,
                leverage: c.leverage,
                safety_mode: c.safety_mode,
                speed: r.speed,
                lookahead: c.lookahead,
            },
            agent_snapshot: AgentView {
                name: a.name,
                model: a.model,
                mode: a.mode,
                indicators: a.indicators,
                strategy_prompt: a.strategy_prompt,
            },
            metrics,
            summary: r.summary,
            evidence: r.evidence,
            methodology: r.methodology,
            ledger_head: r.ledger_head,
        }
    }))
}

/// Where a result's rows are: its session, how far it ran, what it traded.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Located {
    pub id: Uuid,
    pub session_id: Uuid,
    /// Candles processed (decisions past it were never applied).
    pub processed: i64,
    pub model: String,
    pub asset: String,
    pub timeframe: String,
    pub initial_capital: f64,
    pub final_equity: f64,
}

/// The caller's result `id`, located; `None` when it is not theirs or not there.
pub async fn locate(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<Located>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.session_id, s.cursor AS processed,
                coalesce(r.agent_snapshot->>'model', '') AS model, r.asset, r.timeframe,
                r.starting_capital AS initial_capital, r.final_equity
         FROM test_results r JOIN test_sessions s ON s.user_id = r.user_id AND s.id = r.session_id
         WHERE r.user_id = $1 AND r.id = $2",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The 14 trade fields, in order.
pub const TRADE_FIELDS: [&str; 14] = [
    "trade_no",
    "side",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "quantity",
    "leverage",
    "stop_loss",
    "take_profit",
    "pnl",
    "pnl_pct",
    "fees",
    "exit_type",
];

/// A closed trade as the API shows it (the 14 trade fields, in order).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TradeRow {
    pub trade_no: i32,
    /// `long` or `short`.
    pub side: String,
    #[serde(with = "candle_time")]
    #[schema(value_type = String, example = "2024-01-01T04:00:00Z")]
    pub entry_time: DateTime<Utc>,
    pub entry_price: f64,
    #[serde(with = "candle_time::option")]
    #[schema(value_type = Option<String>, example = "2024-01-02T09:00:00Z")]
    pub exit_time: Option<DateTime<Utc>>,
    pub exit_price: Option<f64>,
    pub quantity: f64,
    pub leverage: i32,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub pnl: Option<f64>,
    pub pnl_pct: Option<f64>,
    pub fees: f64,
    /// `signal`, `stop_loss`, `take_profit`, `liquidation` or `session_end`.
    pub exit_type: Option<String>,
}

impl TradeRow {
    /// The row's cells in [`TRADE_FIELDS`] order (numbers as Rust's `{}` writes an f64: the
    /// shortest text that reads back to the same value; null is empty).
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.trade_no.to_string(),
            self.side.clone(),
            candle_time::format(&self.entry_time),
            self.entry_price.to_string(),
            self.exit_time
                .as_ref()
                .map(candle_time::format)
                .unwrap_or_default(),
            cell(self.exit_price),
            self.quantity.to_string(),
            self.leverage.to_string(),
            cell(self.stop_loss),
            cell(self.take_profit),
            cell(self.pnl),
            cell(self.pnl_pct),
            self.fees.to_string(),
            self.exit_type.clone().unwrap_or_default(),
        ]
    }
}

/// A CSV cell of a nullable value: empty for null.
pub fn cell<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Up to `limit` trades of the session after `trade_no` `after`, in trade order.
pub async fn trades(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<TradeRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT trade_no, side, entry_time, entry_price, exit_time, exit_price, quantity, leverage,
                stop_loss, take_profit, pnl, pnl_pct, fees, exit_type
         FROM trades WHERE user_id = $1 AND session_id = $2 AND trade_no > $3
         ORDER BY trade_no LIMIT $4",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(after.unwrap_or(i64::MIN))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The 13 thought fields, in order.
pub const THOUGHT_FIELDS: [&str; 13] = [
    "candle_index",
    "candle_time",
    "action",
    "confidence",
    "reasoning",
    "order",
    "from_cache",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
    "error",
];

/// One decided candle's decision (never a speculative answer).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ThoughtRow {
    pub candle_index: i64,
    #[serde(with = "candle_time")]
    #[schema(value_type = String, example = "2024-01-01T04:00:00Z")]
    pub candle_time: DateTime<Utc>,
    /// `long`, `short`, `close` or `hold`.
    pub action: String,
    pub confidence: Option<i32>,
    /// The reasoning text of the model's answer.
    pub reasoning: String,
    /// The order read from the answer (leverage, stop-loss, take-profit, size), or null.
    #[schema(value_type = Option<Object>)]
    pub order: Option<Value>,
    /// Reused from an earlier run's identical request.
    pub from_cache: bool,
    pub model: String,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub cost_usd: Option<f64>,
    pub latency_ms: Option<i32>,
    /// Why the answer could not be used, or why the call failed.
    pub error: Option<String>,
}

impl ThoughtRow {
    /// The row's cells in [`THOUGHT_FIELDS`] order (`order` as JSON text).
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.candle_index.to_string(),
            candle_time::format(&self.candle_time),
            self.action.clone(),
            cell(self.confidence),
            self.reasoning.clone(),
            self.order
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
            self.from_cache.to_string(),
            self.model.clone(),
            cell(self.prompt_tokens),
            cell(self.completion_tokens),
            cell(self.cost_usd),
            cell(self.latency_ms),
            self.error.clone().unwrap_or_default(),
        ]
    }
}

/// The actions a decision can take.
pub const ACTIONS: &[&str] = &["long", "short", "close", "hold"];

/// Up to `limit` decisions of the located result after candle `after`, in candle order, only
/// `action` ones when given.
pub async fn reasoning(
    pool: &PgPool,
    user_id: Uuid,
    at: &Located,
    action: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<ThoughtRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT candle_index, candle_time, action, confidence, reasoning, order_details AS \"order\",
                from_cache, $3 AS model, prompt_tokens, completion_tokens, cost_usd, latency_ms,
                error
         FROM ai_thoughts
         WHERE user_id = $1 AND session_id = $2 AND candle_index < $4 AND candle_index > $5
           AND ($6::text IS NULL OR action = $6)
         ORDER BY candle_index LIMIT $7",
    )
    .bind(user_id)
    .bind(at.session_id)
    .bind(&at.model)
    .bind(at.processed)
    .bind(after.unwrap_or(-1))
    .bind(action)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Up to `limit` candles' equity of the session from candle index `from`: (index, open time in
/// epoch ms, equity at its close).
pub async fn equity_rows(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    from: i64,
    limit: i64,
) -> Result<Vec<(i64, i64, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.first_index + t.n - 1 AS index, t.time, t.equity
         FROM session_equity e, unnest(e.times, e.equity) WITH ORDINALITY AS t(time, equity, n)
         WHERE e.user_id = $1 AND e.session_id = $2
           AND e.first_index + cardinality(e.times) > $3 AND e.first_index + t.n - 1 >= $3
         ORDER BY e.first_index, t.n LIMIT $4",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(from)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A point of the chart's curve.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CurvePoint {
    /// The candle's open time.
    #[schema(example = "2024-01-01T04:00:00Z")]
    pub time: String,
    /// Equity at the candle's close.
    pub equity: f64,
    /// `initial_capital * close / first close` (`null` if the candle left the cache).
    pub buy_hold_equity: Option<f64>,
}

/// The chart's curve of the located result: the stored curve (at most 1,000 points, first and
/// last candle included, the last one `final_equity`) with buy & hold beside it.
pub async fn curve(
    pool: &PgPool,
    user_id: Uuid,
    at: &Located,
) -> Result<Vec<CurvePoint>, sqlx::Error> {
    let points: Vec<engine::metrics::EquityPoint> = {
        let curve: Json<Vec<engine::metrics::EquityPoint>> = sqlx::query_scalar(
            "SELECT equity_curve FROM test_results WHERE user_id = $1 AND id = $2",
        )
        .bind(user_id)
        .bind(at.id)
        .fetch_one(pool)
        .await?;
        curve.0
    };
    let times: Vec<i64> = points.iter().map(|p| p.time).collect();
    let closes: Vec<(i64, f64)> = sqlx::query_as(
        "SELECT (extract(epoch FROM open_time) * 1000)::bigint, close FROM market_data_cache
         WHERE asset = $1 AND timeframe = $2
           AND open_time = ANY(SELECT to_timestamp(t / 1000.0) FROM unnest($3::bigint[]) AS t)",
    )
    .bind(&at.asset)
    .bind(&at.timeframe)
    .bind(&times)
    .fetch_all(pool)
    .await?;
    let closes: std::collections::HashMap<i64, f64> = closes.into_iter().collect();
    let close = |time: i64| closes.get(&time).copied();
    let first = points.first().and_then(|p| close(p.time));
    Ok(points
        .iter()
        .map(|p| CurvePoint {
            time: candle_time::format_ms(p.time).unwrap_or_default(),
            equity: p.equity,
            buy_hold_equity: first
                .zip(close(p.time))
                .map(|(first, c)| at.initial_capital * c / first),
        })
        .collect())
}
