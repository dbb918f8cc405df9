//! Golden snapshots of the prompts in both modes, on real candles with an open position.
//! `UPDATE_SNAPSHOTS=1 cargo test -p alphalab-engine --test prompts` rewrites them after an
//! intended change; review the diff.

use crate::common::btc_1h;
use engine::prompt::{candle_prompt, system_prompt};
use engine::{Action, Engine, EngineConfig, Mode, Order, Timeframe};

const STRATEGY: &str = "Trade pullbacks in the direction of the trend: go long when the price \
    dips to the 21 EMA in an uptrend with RSI above 40, short the mirror image. Keep stops tight.";

fn check(name: &str, actual: &str) {
    let path = format!("{}/tests/snapshots/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {path}: run with UPDATE_SNAPSHOTS=1"));
    assert_eq!(
        actual, expected,
        "snapshot {name} differs (UPDATE_SNAPSHOTS=1 to accept)"
    );
}

fn config(mode: Mode) -> EngineConfig {
    let mut c = EngineConfig::new("BTCUSDT", Timeframe::H1);
    c.mode = mode;
    c.max_leverage = 3;
    c.safety = mode == Mode::Monk;
    c
}

fn prompts(mode: Mode) -> (String, String) {
    // the longest gap-free stretch of the 1h data starts at row 35974 (2021-09-29 09:00 UTC)
    let candles = &btc_1h()[35_974..36_034];
    let config = config(mode);
    let system = system_prompt(&config, STRATEGY).unwrap();
    let mut engine = Engine::new(config).unwrap();
    for (i, c) in candles.iter().enumerate() {
        let ctx = engine.observe(*c).unwrap();
        if i == candles.len() - 1 {
            return (system, candle_prompt(&ctx));
        }
        let order = Order {
            leverage: Some(2),
            stop_loss_pct: Some(3.0),
            take_profit_pct: Some(6.0),
            size: Some(0.5),
        };
        let action = if i == 50 { Action::Long } else { Action::Hold };
        engine.apply_order(action, &order).unwrap();
    }
    unreachable!()
}

#[test]
fn omni_prompts_match_their_snapshots() {
    let (system, candle) = prompts(Mode::Omni);
    assert!(candle.contains("BTCUSDT") && candle.contains("2021-"));
    check("system_omni", &system);
    check("candle_omni", &candle);
}

#[test]
fn monk_prompts_hide_dates_symbol_and_prices() {
    let (system, candle) = prompts(Mode::Monk);
    for text in [&system, &candle] {
        assert!(!text.contains("BTC"), "{text}");
        assert!(!text.contains("2021"), "{text}");
    }
    // no absolute price of that period (tens of thousands) appears in the candle prompt
    assert!(!candle.split_whitespace().any(|w| {
        w.trim_matches(|c: char| !c.is_ascii_digit() && c != '.')
            .parse::<f64>()
            .is_ok_and(|x| (30_000.0..70_000.0).contains(&x))
    }));
    check("system_monk", &system);
    check("candle_monk", &candle);
}
