//! Real market data for the engine's tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::OnceLock;

use engine::{Candle, parse_csv};

/// The repository's bundled data (`data/`: market candles and the TA-Lib golden file).
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");

pub fn load(file: &str) -> Vec<Candle> {
    parse_csv(&std::fs::read_to_string(format!("{DATA}/market/{file}")).expect("market data"))
        .expect("valid csv")
}

/// BTCUSDT 1h, all 45,024 candles.
pub fn btc_1h() -> &'static [Candle] {
    static DATA: OnceLock<Vec<Candle>> = OnceLock::new();
    DATA.get_or_init(|| load("BTCUSDT-1h.csv"))
}
