//! `market_data_cache`: candles by asset, timeframe and open time (shared by every user), and
//! `market_data_gaps`: the open times the exchange was asked for and does not have.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// One candle row: open time in epoch milliseconds, then open, high, low, close, volume.
pub type CandleRow = (i64, f64, f64, f64, f64, f64);

/// Inserts candles (in batches of 5,000, one statement each), keeping rows already cached.
/// Returns how many rows were new.
pub async fn insert(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    source: &str,
    candles: &[CandleRow],
) -> Result<u64, sqlx::Error> {
    let mut inserted = 0;
    for chunk in candles.chunks(5_000) {
        let mut columns: [Vec<f64>; 5] = Default::default();
        let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(chunk.len());
        for &(t, o, h, l, c, v) in chunk {
            times.push(DateTime::from_timestamp_millis(t).ok_or_else(|| {
                sqlx::Error::Encode(format!("candle time {t} out of range").into())
            })?);
            for (column, value) in columns.iter_mut().zip([o, h, l, c, v]) {
                column.push(value);
            }
        }
        let [open, high, low, close, volume] = columns;
        let done = sqlx::query(
            "INSERT INTO market_data_cache (asset, timeframe, source, open_time, open, high, low, close, volume)
             SELECT $1, $2, $3, t.* FROM UNNEST($4::timestamptz[], $5::float8[], $6::float8[],
                                               $7::float8[], $8::float8[], $9::float8[]) AS t
             ON CONFLICT (asset, timeframe, open_time) DO NOTHING",
        )
        .bind(asset)
        .bind(timeframe)
        .bind(source)
        .bind(&times)
        .bind(&open)
        .bind(&high)
        .bind(&low)
        .bind(&close)
        .bind(&volume)
        .execute(pool)
        .await?;
        inserted += done.rows_affected();
    }
    Ok(inserted)
}

/// How many candles are cached for `asset` and `timeframe`.
pub async fn count(pool: &PgPool, asset: &str, timeframe: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM market_data_cache WHERE asset = $1 AND timeframe = $2")
        .bind(asset)
        .bind(timeframe)
        .fetch_one(pool)
        .await
}

/// The cached candles of `asset` and `timeframe` whose open time is in `[start_ms, end_ms)`, in
/// order (gaps stay gaps).
pub async fn range(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<CandleRow>, sqlx::Error> {
    let rows: Vec<(DateTime<Utc>, f64, f64, f64, f64, f64)> = sqlx::query_as(
        "SELECT open_time, open, high, low, close, volume FROM market_data_cache
         WHERE asset = $1 AND timeframe = $2 AND open_time >= $3 AND open_time < $4
         ORDER BY open_time",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(DateTime::from_timestamp_millis(start_ms))
    .bind(DateTime::from_timestamp_millis(end_ms))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, o, h, l, c, v)| (t.timestamp_millis(), o, h, l, c, v))
        .collect())
}

/// How many candles are cached for `asset` and `timeframe` with open times in `[start_ms, end_ms)`,
/// counting only those cached by `as_of` when given (a session's fixed set of candles).
pub async fn count_range(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    start_ms: i64,
    end_ms: i64,
    as_of: Option<DateTime<Utc>>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM market_data_cache
         WHERE asset = $1 AND timeframe = $2 AND open_time >= $3 AND open_time < $4
           AND ($5::timestamptz IS NULL OR fetched_at <= $5)",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(DateTime::from_timestamp_millis(start_ms))
    .bind(DateTime::from_timestamp_millis(end_ms))
    .bind(as_of)
    .fetch_one(pool)
    .await
}

/// At most `limit` cached candles after `after_ms` (exclusive; `None`: from `start_ms`) and
/// before `end_ms`, cached by `as_of` when given, in order: the next chunk of a session.
#[allow(clippy::too_many_arguments)]
pub async fn next_chunk(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    start_ms: i64,
    after_ms: Option<i64>,
    end_ms: i64,
    as_of: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<CandleRow>, sqlx::Error> {
    let rows: Vec<(DateTime<Utc>, f64, f64, f64, f64, f64)> = sqlx::query_as(
        "SELECT open_time, open, high, low, close, volume FROM market_data_cache
         WHERE asset = $1 AND timeframe = $2 AND open_time >= $3 AND open_time < $4
           AND ($5::timestamptz IS NULL OR open_time > $5)
           AND ($6::timestamptz IS NULL OR fetched_at <= $6)
         ORDER BY open_time LIMIT $7",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(DateTime::from_timestamp_millis(start_ms))
    .bind(DateTime::from_timestamp_millis(end_ms))
    .bind(after_ms.and_then(DateTime::from_timestamp_millis))
    .bind(as_of)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, o, h, l, c, v)| (t.timestamp_millis(), o, h, l, c, v))
        .collect())
}

/// The stretches of `[start_ms, end_ms)` (candle open times every `step_ms`, aligned on multiples
/// of it) that are neither cached nor known gaps of the exchange, among candles closed by
/// `closed_by_ms`: (first, last) open times, inclusive, in order.
pub async fn missing(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    closed_by_ms: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let first = start_ms.div_euclid(step_ms) * step_ms
        + if start_ms.rem_euclid(step_ms) == 0 {
            0
        } else {
            step_ms
        };
    let last = (end_ms - 1).min(closed_by_ms - step_ms);
    if last < first {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "WITH expected AS (
             SELECT $3::bigint + i * $5::bigint AS t
             FROM generate_series(0::bigint, ($4::bigint - $3::bigint) / $5::bigint) AS i),
         absent AS (
             SELECT e.t FROM expected e
             WHERE NOT EXISTS (SELECT 1 FROM market_data_cache c
                               WHERE c.asset = $1 AND c.timeframe = $2
                                 AND c.open_time = (timestamptz 'epoch' + e.t * interval '1 millisecond'))
               AND NOT EXISTS (SELECT 1 FROM market_data_gaps g
                               WHERE g.asset = $1 AND g.timeframe = $2
                                 AND g.open_time = (timestamptz 'epoch' + e.t * interval '1 millisecond'))),
         runs AS (SELECT t, t - (row_number() OVER (ORDER BY t)) * $5::bigint AS run FROM absent)
         SELECT min(t), max(t) FROM runs GROUP BY run ORDER BY 1",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(first)
    .bind(last)
    .bind(step_ms)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Remembers the open times of `[first_ms, last_ms]` (every `step_ms`) that the exchange was just
/// asked for and that are still not cached: its own gaps, not asked again. Returns how many.
pub async fn record_gaps(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    first_ms: i64,
    last_ms: i64,
    step_ms: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO market_data_gaps (asset, timeframe, open_time)
         SELECT $1, $2, (timestamptz 'epoch' + ($3::bigint + i * $5::bigint) * interval '1 millisecond')
         FROM generate_series(0::bigint, ($4::bigint - $3::bigint) / $5::bigint) AS i
         WHERE NOT EXISTS (SELECT 1 FROM market_data_cache c
                           WHERE c.asset = $1 AND c.timeframe = $2
                             AND c.open_time = (timestamptz 'epoch' + ($3::bigint + i * $5::bigint) * interval '1 millisecond'))
         ON CONFLICT DO NOTHING",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(first_ms)
    .bind(last_ms)
    .bind(step_ms)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Inserts an export of the exchange that holds every candle it has between its first and its
/// last (the bundled data): the open times missing in between are remembered as the exchange's
/// gaps, so a session over them asks nobody. Returns the rows inserted.
pub async fn insert_span(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    step_ms: i64,
    candles: &[CandleRow],
) -> Result<u64, sqlx::Error> {
    let inserted = insert(pool, asset, timeframe, "binance", candles).await?;
    if let (Some(first), Some(last)) = (candles.first(), candles.last()) {
        record_gaps(pool, asset, timeframe, first.0, last.0, step_ms).await?;
    }
    Ok(inserted)
}

/// The database's clock: the moment a session's candles are fixed at.
pub async fn now(pool: &PgPool) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await
}

/// What the cache holds for one asset and timeframe: the open times of its first and last
/// candle and how many there are.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Held {
    pub asset: String,
    pub timeframe: String,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub candles: i64,
}

/// Every asset and timeframe the cache holds, by asset then timeframe.
pub async fn held(pool: &PgPool) -> Result<Vec<Held>, sqlx::Error> {
    sqlx::query_as(
        "SELECT asset, timeframe, min(open_time) AS first, max(open_time) AS last,
                count(*) AS candles
         FROM market_data_cache GROUP BY asset, timeframe ORDER BY asset, timeframe",
    )
    .fetch_all(pool)
    .await
}

/// Up to `limit` cached candles from open time `from_ms` (included) to `end_ms` (excluded), in
/// order, after the `warmup` candles before `from_ms` (at most that many; they come first). One
/// query.
pub async fn window(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    warmup: i64,
    from_ms: i64,
    end_ms: i64,
    limit: i64,
) -> Result<Vec<CandleRow>, sqlx::Error> {
    let rows: Vec<(DateTime<Utc>, f64, f64, f64, f64, f64)> = sqlx::query_as(
        "(SELECT * FROM (SELECT open_time, open, high, low, close, volume FROM market_data_cache
                         WHERE asset = $1 AND timeframe = $2 AND open_time < $3
                         ORDER BY open_time DESC LIMIT $4) w ORDER BY open_time)
         UNION ALL
         (SELECT open_time, open, high, low, close, volume FROM market_data_cache
          WHERE asset = $1 AND timeframe = $2 AND open_time >= $5 AND open_time < $6
          ORDER BY open_time LIMIT $7)",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(DateTime::from_timestamp_millis(from_ms))
    .bind(warmup)
    .bind(DateTime::from_timestamp_millis(from_ms))
    .bind(DateTime::from_timestamp_millis(end_ms))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, o, h, l, c, v)| (t.timestamp_millis(), o, h, l, c, v))
        .collect())
}
