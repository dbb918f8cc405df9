//! `alphalab load-data`: the bundled candles reach `market_data_cache` exactly, gaps included,
//! once (a second run inserts nothing).

fn load(url: &str) -> String {
    crate::succeed(&["load-data"], &[("DATABASE_URL", url)])
}

#[tokio::test]
async fn the_bundled_data_is_cached_exactly_and_only_once() {
    let env = alphalab_devstack::TestEnv::new().await.unwrap();
    assert_eq!(
        load(&env.db.url).trim(),
        "93810 candles loaded (4 datasets)"
    );
    assert_eq!(load(&env.db.url).trim(), "0 candles loaded (4 datasets)");
    let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/market/BTCUSDT-1h.csv"
    ))
    .unwrap();
    let csv = engine::parse_csv(&text).unwrap();
    // 2018-02-07 .. 2018-02-11 holds one of the real gaps (2018-02-08 00:00 to 2018-02-09 10:00)
    let (start, end) = (1_517_961_600_000, 1_518_307_200_000);
    let cached = store::market_data::range(&pool, "BTCUSDT", "1h", start, end)
        .await
        .unwrap();
    let expected: Vec<_> = csv
        .iter()
        .filter(|c| c.time >= start && c.time < end)
        .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
        .collect();
    assert_eq!(cached, expected);
    assert!(
        cached.len() < 96,
        "the gap is kept: {} of 96 hours",
        cached.len()
    );
}
