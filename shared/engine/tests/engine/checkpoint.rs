//! Replayable state: serialising the engine into a checkpoint at any candle, restoring it and
//! continuing gives bit-identical trades, metrics and equity to an uninterrupted run. The
//! checkpoint leaves the equity curve out: the caller keeps every candle's equity point (as the
//! step worker appends them to `session_equity`) and gives them back before finishing.

use crate::common::btc_1h;
use engine::baseline::{Baseline, Kind};
use engine::{Candle, Engine, EngineConfig, Mode, Timeframe, Trade};
use proptest::prelude::*;

fn config(kind: Kind, variant: u8) -> EngineConfig {
    let mut c = EngineConfig::new("BTCUSDT", Timeframe::H1);
    c.indicators
        .extend(kind.required_indicators().iter().map(|s| s.to_string()));
    c.indicators.push("adx".into());
    c.indicators.push("obv".into());
    match variant {
        0 => {}
        1 => c.safety = true,
        2 => c.mode = Mode::Monk,
        _ => {
            c.max_leverage = 3;
            c.safety = true;
        }
    }
    c
}

/// Runs `candles` from a fresh engine, checkpointing through JSON after `split` candles; every
/// candle's equity point is kept beside the engine and given back when it was restored.
fn run(kind: Kind, variant: u8, candles: &[Candle], split: Option<usize>) -> (Vec<Trade>, String) {
    let mut engine = Engine::new(config(kind, variant)).unwrap();
    let baseline = Baseline::new(kind, engine.indicators()).unwrap();
    let mut trades = Vec::new();
    let mut points = Vec::new();
    for (i, candle) in candles.iter().enumerate() {
        if Some(i) == split {
            // through text and back, as jsonb storage would
            let text = engine.checkpoint().unwrap().to_string();
            engine = Engine::restore(&serde_json::from_str(&text).unwrap()).unwrap();
        }
        let step = engine.step(*candle, |ctx| baseline.decide(ctx)).unwrap();
        trades.extend(step.closed);
        points.push(engine.last_point().unwrap());
    }
    if split.is_some() {
        engine.rebuild_curve(points);
    }
    let (last, metrics) = engine.finish().unwrap();
    trades.extend(last);
    (trades, serde_json::to_string(&metrics).unwrap())
}

const KINDS: [Kind; 3] = [Kind::SmaCross, Kind::RsiReversion, Kind::BuyAndHold];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn restoring_a_checkpoint_anywhere_changes_nothing(
        start in 0usize..40_000,
        split in 0usize..2_000,
        kind in 0usize..3,
        variant in 0u8..4,
    ) {
        let candles = &btc_1h()[start..start + 2_000];
        let kind = KINDS[kind];
        let (trades_a, metrics_a) = run(kind, variant, candles, None);
        let (trades_b, metrics_b) = run(kind, variant, candles, Some(split));
        prop_assert_eq!(&trades_a, &trades_b);
        prop_assert_eq!(metrics_a, metrics_b);
        // bit-identical, not merely equal
        for (a, b) in trades_a.iter().zip(&trades_b) {
            prop_assert_eq!(a.pnl.to_bits(), b.pnl.to_bits());
        }
    }
}

#[test]
fn a_checkpoint_is_small() {
    let candles = &btc_1h()[..9_000];
    let mut engine = Engine::new(config(Kind::SmaCross, 0)).unwrap();
    for c in candles {
        let ctx = engine.observe(*c).unwrap();
        let d = Baseline::new(Kind::SmaCross, ctx.indicators())
            .unwrap()
            .decide(&ctx);
        engine.apply(&d).unwrap();
    }
    let size = engine.checkpoint().unwrap().to_string().len();
    println!("checkpoint after 9,000 candles: {size} bytes");
    // the engine's state without the equity curve (the curve alone was about 30 KB)
    assert!(size < 8_000, "{size} bytes");
}

/// Every split point of the warm-up, where indicator buffers are partly filled.
#[test]
fn restoring_during_the_warm_up_changes_nothing() {
    let candles = &btc_1h()[1_000..1_300];
    for kind in KINDS {
        let (trades, metrics) = run(kind, 3, candles, None);
        for split in 0..60 {
            let (t, m) = run(kind, 3, candles, Some(split));
            assert_eq!(t, trades, "{kind:?} split {split}");
            assert_eq!(m, metrics, "{kind:?} split {split}");
        }
    }
}

#[test]
fn a_checkpoint_of_another_format_version_is_refused_not_misread() {
    let mut engine = Engine::new(config(Kind::SmaCross, 0)).unwrap();
    engine
        .step(btc_1h()[0], |_| engine::Decision::hold(""))
        .unwrap();
    let mut checkpoint = engine.checkpoint().unwrap();
    assert_eq!(checkpoint["version"], engine::CHECKPOINT_VERSION);
    assert!(Engine::restore(&checkpoint).is_ok());

    checkpoint["version"] = (engine::CHECKPOINT_VERSION + 1).into();
    let err = Engine::restore(&checkpoint).unwrap_err().to_string();
    assert!(
        err.contains(&format!("version {}", engine::CHECKPOINT_VERSION + 1)),
        "{err}"
    );
    // the bare engine state of the first format (no version) is refused too
    let bare = checkpoint["engine"].clone();
    let err = Engine::restore(&bare).unwrap_err().to_string();
    assert!(err.contains("no format version"), "{err}");
}
