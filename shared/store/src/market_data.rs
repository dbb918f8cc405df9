//! `market_data_cache`: candles by asset, timeframe and open time (shared by every user).

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

/// How many candles are cached for `asset` and `timeframe` with open times in `[start_ms, end_ms)`.
pub async fn count_range(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM market_data_cache
         WHERE asset = $1 AND timeframe = $2 AND open_time >= $3 AND open_time < $4",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(DateTime::from_timestamp_millis(start_ms))
    .bind(DateTime::from_timestamp_millis(end_ms))
    .fetch_one(pool)
    .await
}

/// At most `limit` cached candles after `after_ms` (exclusive; `None`: from `start_ms`) and
/// before `end_ms`, in order: the next chunk of a session.
pub async fn next_chunk(
    pool: &PgPool,
    asset: &str,
    timeframe: &str,
    start_ms: i64,
    after_ms: Option<i64>,
    end_ms: i64,
    limit: i64,
) -> Result<Vec<CandleRow>, sqlx::Error> {
    let rows: Vec<(DateTime<Utc>, f64, f64, f64, f64, f64)> = sqlx::query_as(
        "SELECT open_time, open, high, low, close, volume FROM market_data_cache
         WHERE asset = $1 AND timeframe = $2 AND open_time >= $3 AND open_time < $4
           AND ($5::timestamptz IS NULL OR open_time > $5)
         ORDER BY open_time LIMIT $6",
    )
    .bind(asset)
    .bind(timeframe)
    .bind(DateTime::from_timestamp_millis(start_ms))
    .bind(DateTime::from_timestamp_millis(end_ms))
    .bind(after_ms.and_then(DateTime::from_timestamp_millis))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, o, h, l, c, v)| (t.timestamp_millis(), o, h, l, c, v))
        .collect())
}
