//! What forward sessions and `forward-tick` read and write besides the step chain's commit: the
//! asset/timeframe groups to poll, the sessions with candles to decide, the feed status, and the
//! contiguity check a forward step makes before deciding a cached candle. Forward sessions are
//! rows of `test_sessions` with `type = 'forward'`: live while `completed_at` is null and their
//! status is `pending`, `running` or `stopping`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// An asset and timeframe some live forward session decides, and the earliest open time after
/// which one of them still needs candles (its last decided candle, or its anchor).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Group {
    pub asset: String,
    pub timeframe: String,
    pub after: DateTime<Utc>,
}

/// The groups of the `running` and `stopping` forward sessions (those anchored).
pub async fn groups(pool: &PgPool) -> Result<Vec<Group>, sqlx::Error> {
    sqlx::query_as(
        "SELECT asset, timeframe, min(coalesce(last_candle, anchor_time)) AS after
         FROM test_sessions
         WHERE type = 'forward' AND completed_at IS NULL AND status IN ('running', 'stopping')
           AND anchor_time IS NOT NULL
         GROUP BY asset, timeframe ORDER BY asset, timeframe",
    )
    .fetch_all(pool)
    .await
}

/// Whether any forward session is live (pending, running or stopping).
pub async fn any_live(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM test_sessions
                        WHERE type = 'forward' AND completed_at IS NULL
                          AND status IN ('pending', 'running', 'stopping'))",
    )
    .fetch_one(pool)
    .await
}

/// A forward session a tick sends a step to: its chain's version and the latest cached candle
/// of its group (the step message's deduplication key).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Due {
    pub id: Uuid,
    pub user_id: Uuid,
    pub version: i64,
    pub latest: Option<DateTime<Utc>>,
}

/// The forward sessions with work for a step: `running` ones with a cached candle after their
/// last decided one that closed by the exchange time `exchange_now`, `stopping` ones (to be
/// finalised), and `pending` ones whose first step met an exchange error (their feed is delayed).
pub async fn due(pool: &PgPool, exchange_now: DateTime<Utc>) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT s.id, s.user_id, s.version,
                (SELECT max(m.open_time) FROM market_data_cache m
                 WHERE m.asset = s.asset AND m.timeframe = s.timeframe) AS latest
         FROM test_sessions s
         WHERE s.type = 'forward' AND s.completed_at IS NULL
           AND (s.status = 'stopping'
                OR (s.status = 'pending' AND s.feed ->> 'status' = 'delayed')
                OR (s.status = 'running' AND EXISTS (
                        SELECT 1 FROM market_data_cache m
                        WHERE m.asset = s.asset AND m.timeframe = s.timeframe
                          AND m.open_time > coalesce(s.last_candle, s.anchor_time)
                          AND m.open_time + ",
        candle_length!("s.timeframe"),
        " <= $1)))
         ORDER BY s.created_at, s.id"
    ))
    .bind(exchange_now)
    .fetch_all(pool)
    .await
}

/// Marks the feed of the live forward sessions of `asset` and `timeframe` (every live forward
/// session when `None`) `delayed` for `reason`; `since` stays the first delayed moment.
pub async fn delay(
    pool: &PgPool,
    group: Option<(&str, &str)>,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE test_sessions SET feed = jsonb_build_object(
             'status', 'delayed',
             'since', CASE WHEN feed ->> 'status' = 'delayed' THEN feed -> 'since'
                           ELSE to_jsonb(now()) END,
             'reason', $3::text)
         WHERE type = 'forward' AND completed_at IS NULL
           AND status IN ('pending', 'running', 'stopping')
           AND ($1::text IS NULL OR (asset = $1 AND timeframe = $2))",
    )
    .bind(group.map(|g| g.0))
    .bind(group.map(|g| g.1))
    .bind(reason)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Marks the feed of the live forward sessions of `asset` and `timeframe` `ok` again (those
/// delayed, or never marked).
pub async fn feed_ok(pool: &PgPool, asset: &str, timeframe: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE test_sessions SET feed = jsonb_build_object('status', 'ok', 'since', to_jsonb(now()),
                                                             'reason', NULL)
         WHERE type = 'forward' AND completed_at IS NULL
           AND status IN ('pending', 'running', 'stopping')
           AND asset = $1 AND timeframe = $2
           AND (feed IS NULL OR feed ->> 'status' <> 'ok')",
    )
    .bind(asset)
    .bind(timeframe)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Marks one session's feed `delayed` (its own step met the exchange's error).
pub async fn delay_one(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE test_sessions SET feed = jsonb_build_object(
             'status', 'delayed',
             'since', CASE WHEN feed ->> 'status' = 'delayed' THEN feed -> 'since'
                           ELSE to_jsonb(now()) END,
             'reason', $3::text)
         WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(reason)
    .execute(pool)
    .await
    .map(drop)
}

/// How many of the open times `from_ms, from_ms + step_ms, ..` before `to_ms` the exchange is
/// known not to have (`market_data_gaps`).
pub async fn known_gaps(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM market_data_gaps
         WHERE asset = $1 AND timeframe = $2 AND open_time >= $3 AND open_time < $4",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(DateTime::from_timestamp_millis(from_ms))
    .bind(DateTime::from_timestamp_millis(to_ms))
    .fetch_one(pool)
    .await
}

/// The latest cached open time of `asset` at `timeframe`.
pub async fn latest_cached(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT max(open_time) FROM market_data_cache WHERE asset = $1 AND timeframe = $2",
    )
    .bind(asset)
    .bind(timeframe)
    .fetch_one(pool)
    .await
}

/// The exchange's clock as last read (ms; 0 when never read) and the cached candles of `asset`
/// at `timeframe` opening after `after_ms`, at most `limit`, in order (one round trip).
pub async fn closed_after(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    after_ms: i64,
    limit: i64,
) -> Result<(i64, Vec<crate::market_data::CandleRow>), sqlx::Error> {
    type Row = (
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT (SELECT server_time FROM exchange_clock WHERE exchange = $5) AS clock,
                    c.open_time, c.open, c.high, c.low, c.close, c.volume
             FROM (SELECT 1) one
             LEFT JOIN LATERAL (
                 SELECT open_time, open, high, low, close, volume FROM market_data_cache
                 WHERE asset = $1 AND timeframe = $2 AND open_time > $3
                 ORDER BY open_time LIMIT $4) c ON true",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(DateTime::from_timestamp_millis(after_ms))
    .bind(limit)
    .bind(crate::exchange::BINANCE)
    .fetch_all(pool)
    .await?;
    let clock = rows
        .first()
        .and_then(|r| r.0)
        .map_or(0, |t| t.timestamp_millis());
    let candles = rows
        .into_iter()
        .filter_map(|(_, t, o, h, l, c, v)| Some((t?.timestamp_millis(), o?, h?, l?, c?, v?)))
        .collect();
    Ok((clock, candles))
}
