//! Warm-up candles (issue 24): they move the indicators and nothing else, so the first decided
//! candle sees the indicators a longer history gives it, and the run counts only its own candles.

use crate::common::btc_1h;
use engine::baseline::{Baseline, Kind};
use engine::{Engine, EngineConfig, IndicatorSet, Timeframe};

fn config() -> EngineConfig {
    let mut c = EngineConfig::new("BTCUSDT", Timeframe::H1);
    c.indicators = vec!["sma_10".into(), "sma_30".into(), "macd".into()];
    c
}

#[test]
fn warm_up_candles_move_the_indicators_only() {
    let candles = &btc_1h()[..400];
    let (warm, run) = candles.split_at(100);
    let mut engine = Engine::new(config()).unwrap();
    for c in warm {
        engine.warm(*c).unwrap();
    }
    // the indicators of one continuous history
    let mut history = IndicatorSet::new(&config().indicators).unwrap();
    for c in warm {
        history.update(c);
    }
    let baseline = Baseline::new(Kind::SmaCross, engine.indicators()).unwrap();
    let mut first = true;
    for c in run {
        history.update(c);
        let ctx = engine.observe(*c).unwrap();
        assert_eq!(ctx.indicators().values(), history.values());
        assert_eq!(ctx.indicators().previous(), history.previous());
        if first {
            assert!(
                ctx.indicators().get("sma_30").is_some(),
                "defined from the first candle"
            );
            assert_eq!(ctx.index(), 0, "warm-up candles are not counted");
            first = false;
        }
        let decision = baseline.decide(&ctx);
        engine.apply(&decision).unwrap();
    }
    let (_, metrics) = engine.finish().unwrap();
    assert_eq!(metrics.candles, 300);
    assert_eq!(metrics.equity_curve[0].time, run[0].time);
    assert_eq!(
        metrics.buy_hold_return_pct,
        Some((run[299].close / run[0].close - 1.0) * 100.0),
        "buy & hold over the run's own candles"
    );
}

#[test]
fn warm_up_comes_first_and_in_order() {
    let candles = btc_1h();
    let mut engine = Engine::new(config()).unwrap();
    engine.warm(candles[1]).unwrap();
    assert!(engine.warm(candles[0]).is_err(), "times must increase");
    assert!(
        engine.observe(candles[1]).is_err(),
        "the first candle follows the warm-up"
    );
    engine.observe(candles[2]).unwrap();
    assert!(
        engine.warm(candles[3]).is_err(),
        "no warm-up after the first candle"
    );
}
