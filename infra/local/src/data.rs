//! The bundled market data (`data/market/`, see `data/README.md`): loaded into
//! `market_data_cache` by `alphalab serve` and `alphalab load-data`.

use anyhow::{Context, Result};
use sqlx::PgPool;

/// (asset, timeframe, file) of every bundled dataset.
pub(crate) const BUNDLED: &[(&str, &str, &str)] = &[
    ("BTCUSDT", "1h", "BTCUSDT-1h.csv"),
    ("BTCUSDT", "1d", "BTCUSDT-1d.csv"),
    ("ETHUSDT", "1h", "ETHUSDT-1h.csv"),
    ("ETHUSDT", "1d", "ETHUSDT-1d.csv"),
];

/// Loads every bundled dataset that is not fully cached yet, and remembers its gaps (the
/// exchange's outages: nobody is asked for them); returns the rows inserted.
pub(crate) async fn load_bundled(pool: &PgPool) -> Result<u64> {
    let dir = crate::workspace_root().join("data/market");
    let mut inserted = 0;
    for (asset, timeframe, file) in BUNDLED {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let candles = engine::parse_csv(&text).with_context(|| format!("parsing {file}"))?;
        let step = engine::Timeframe::parse(timeframe)
            .context("a bundled timeframe")?
            .millis();
        let rows: Vec<store::market_data::CandleRow> = candles
            .iter()
            .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
            .collect();
        if store::market_data::count(pool, asset, timeframe).await? >= candles.len() as i64 {
            // cached already (by an earlier version too): the gaps, once
            if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
                store::market_data::record_gaps(pool, asset, timeframe, first.0, last.0, step)
                    .await?;
            }
            continue;
        }
        inserted += store::market_data::insert_span(pool, asset, timeframe, step, &rows).await?;
    }
    Ok(inserted)
}
