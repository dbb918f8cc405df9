//! The adapters against local servers speaking their parties' wire formats.

use adapters::binance::{Binance, BinanceConfig};
use alphalab_devstack::binance::{GAP, HOUR_MS, MockBinance, START_MS, candle};
use std::time::{Duration, Instant};

/// A deadline no request of these tests comes near.
fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(300)
}

fn client(mock: &MockBinance) -> Binance {
    Binance::new(&BinanceConfig {
        base_url: mock.base_url.clone(),
        timeout: Duration::from_secs(5),
    })
}

#[tokio::test]
async fn klines_come_in_pages_of_1000_in_order_with_the_gaps_kept() {
    let mock = MockBinance::start().await.unwrap();
    let end = START_MS + 2_500 * HOUR_MS;
    let rows = client(&mock)
        .klines("BTCUSDT", "1h", START_MS, end, far())
        .await
        .unwrap();
    let missing = (GAP.end - GAP.start) as usize;
    assert_eq!(
        rows.len(),
        2_500 - missing,
        "the missing hours stay missing"
    );
    assert_eq!(rows[0], candle(0));
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(
        rows.iter().all(|r| r.0 >= START_MS && r.0 < end),
        "[start, end)"
    );
    assert_eq!(rows.last().unwrap().0, end - HOUR_MS);
    let requests = mock.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.contains("limit=1000") && r.contains("symbol=BTCUSDT"))
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_for_their_retry_after() {
    let mock = MockBinance::start().await.unwrap();
    mock.fail_next(&[429, 418]);
    let started = Instant::now();
    let rows = client(&mock)
        .klines("BTCUSDT", "1h", START_MS, START_MS + 10 * HOUR_MS, far())
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited 1 s twice: {:?}",
        started.elapsed()
    );
    assert_eq!(mock.requests().len(), 3);
    // an error that is not a rate limit is reported with its status
    let err = client(&mock)
        .klines("BTCUSDT", "4x", START_MS, START_MS + HOUR_MS, far())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
}
#[tokio::test]
async fn a_retry_after_that_would_outlast_the_deadline_ends_the_fetch_at_once() {
    let mock = MockBinance::start().await.unwrap();
    mock.fail_next(&[429]);
    let started = Instant::now();
    // 1.5 s left: after the 1 s wait, less than the 1 s a request needs
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_500);
    let err = client(&mock)
        .klines("BTCUSDT", "1h", START_MS, START_MS + 10 * HOUR_MS, deadline)
        .await
        .unwrap_err();
    assert_eq!(err, adapters::binance::BinanceError::OutOfTime);
    assert!(started.elapsed() < Duration::from_millis(900), "no wait");
    assert_eq!(mock.requests().len(), 1);
    // with room for the wait and the request, the page comes
    let rows = client(&mock)
        .klines("BTCUSDT", "1h", START_MS, START_MS + 10 * HOUR_MS, far())
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
}

mod limiter;

#[tokio::test]
async fn closure_is_the_exchanges_clock_against_each_rows_close_time() {
    let mock = MockBinance::start().await.unwrap();
    let binance = client(&mock);
    let now = binance.server_time(far()).await.unwrap();
    let local = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now - local).abs() < 5_000, "the exchange's serverTime");
    // an exchange time inside the fourth hour: that candle is still forming
    let forming = START_MS + 3 * HOUR_MS + 1_234;
    let rows = binance
        .page(
            "BTCUSDT",
            "1h",
            START_MS,
            START_MS + 10 * HOUR_MS,
            forming,
            far(),
        )
        .await
        .unwrap();
    assert_eq!(rows, [candle(0), candle(1), candle(2)]);
    // the close time is `open + length - 1`: at exactly that millisecond it is not yet closed
    let edge = START_MS + 3 * HOUR_MS - 1;
    let rows = binance
        .page(
            "BTCUSDT",
            "1h",
            START_MS,
            START_MS + 10 * HOUR_MS,
            edge,
            far(),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
}

/// Four hours of bundled-shape candles from 2021-02-01T00:00Z.
fn recorded_rows() -> Vec<(i64, f64, f64, f64, f64, f64)> {
    (0..4)
        .map(|h| {
            let o = 33_000.0 + h as f64 * 100.0;
            (
                1_612_137_600_000 + h * HOUR_MS,
                o,
                o + 80.0,
                o - 50.0,
                o + 60.0,
                1_000.0,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_recorded_market_serves_the_forming_candle_last_and_the_client_drops_it() {
    let t0 = 1_612_137_600_000;
    // the clock half-way through the third hour
    let mock = MockBinance::recorded(
        "BTCUSDT",
        "1h",
        recorded_rows(),
        t0 + 2 * HOUR_MS + HOUR_MS / 2,
    )
    .await
    .unwrap();
    let binance = client(&mock);
    let now = binance.server_time(far()).await.unwrap();
    assert_eq!(now, t0 + 2 * HOUR_MS + HOUR_MS / 2);
    let all = binance
        .page("BTCUSDT", "1h", t0, t0 + 10 * HOUR_MS, i64::MAX, far())
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        3,
        "the forming candle is the last row; the fourth does not exist yet"
    );
    assert_eq!(all[2].4, 33_200.0 + 30.0, "partial close half-way");
    let closed = binance
        .page("BTCUSDT", "1h", t0, t0 + 10 * HOUR_MS, now, far())
        .await
        .unwrap();
    assert_eq!(closed, recorded_rows()[..2]);
    // a warm-up: the latest closed candles up to an open time
    let warm = binance
        .latest("BTCUSDT", "1h", t0 + 2 * HOUR_MS, 2, now, far())
        .await
        .unwrap();
    assert_eq!(
        warm,
        recorded_rows()[1..2],
        "the latest 2 rows hold one closed candle"
    );
    assert!(
        mock.requests()
            .iter()
            .any(|r| r.contains("endTime") && !r.contains("startTime"))
    );
    // the clock moves: the third candle closes with its final values
    mock.advance(HOUR_MS);
    let now = binance.server_time(far()).await.unwrap();
    let closed = binance
        .page("BTCUSDT", "1h", t0, t0 + 10 * HOUR_MS, now, far())
        .await
        .unwrap();
    assert_eq!(closed, recorded_rows()[..3]);
    // the ticker quotes the forming candle's price so far
    let prices = binance.prices(&["BTCUSDT"], far()).await.unwrap();
    assert_eq!(prices, [("BTCUSDT".to_owned(), 33_300.0 + 30.0)]);
    assert!(binance.prices(&["DOGEUSDT"], far()).await.is_err());
}

#[tokio::test]
async fn server_errors_and_a_hang_are_errors_the_caller_sees() {
    let mock = MockBinance::start().await.unwrap();
    let binance = Binance::new(&BinanceConfig {
        base_url: mock.base_url.clone(),
        timeout: Duration::from_secs(1),
    });
    mock.fail_any_next(&[500, 503]);
    for status in [500, 503] {
        match binance.server_time(far()).await {
            Err(adapters::binance::BinanceError::UnexpectedStatus { status: s, body }) => {
                assert_eq!(s, status);
                assert!(body.contains("\"code\""), "{body}");
            }
            other => panic!("{other:?}"),
        }
    }
    mock.hang_next(1);
    let started = Instant::now();
    assert!(matches!(
        binance.prices(&["BTCUSDT"], far()).await,
        Err(adapters::binance::BinanceError::Network(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "abandoned at the timeout"
    );
    assert!(binance.prices(&["BTCUSDT"], far()).await.is_ok());
}
