//! Every indicator column of the TA-Lib golden file (`data/golden/talib-BTCUSDT-1d.csv`,
//! TA-Lib 0.8.1 over the whole of BTCUSDT-1d from row 0): from the first defined row on,
//! |ours - TA-Lib| <= 1e-9 * max(1, |TA-Lib|); before it, ours is undefined.

use engine::{IndicatorSet, parse_csv};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");

/// (golden column, our indicator name, our output name)
const COLUMNS: &[(&str, &str, &str)] = &[
    ("rsi14", "rsi", "rsi_14"),
    ("ema9", "ema_9", "ema_9"),
    ("ema21", "ema_21", "ema_21"),
    ("ema50", "ema_50", "ema_50"),
    ("ema200", "ema_200", "ema_200"),
    ("sma20", "sma_20", "sma_20"),
    ("sma50", "sma_50", "sma_50"),
    ("sma200", "sma_200", "sma_200"),
    ("macd", "macd", "macd"),
    ("macd_signal", "macd", "macd_signal"),
    ("macd_hist", "macd", "macd_histogram"),
    ("atr14", "atr", "atr_14"),
    ("bb_upper", "bb", "bb_upper"),
    ("bb_middle", "bb", "bb_middle"),
    ("bb_lower", "bb", "bb_lower"),
    ("stoch_slowk", "stoch", "stoch_k"),
    ("stoch_slowd", "stoch", "stoch_d"),
    ("obv", "obv", "obv"),
    ("adx14", "adx", "adx_14"),
];

#[test]
fn every_indicator_equals_ta_lib_on_every_row() {
    let candles = parse_csv(
        &std::fs::read_to_string(format!("{DATA}/market/BTCUSDT-1d.csv")).expect("market data"),
    )
    .unwrap();
    let golden = std::fs::read_to_string(format!("{DATA}/golden/talib-BTCUSDT-1d.csv")).unwrap();
    let mut lines = golden.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), candles.len());

    let names: Vec<&str> = COLUMNS.iter().map(|c| c.1).collect();
    let mut set = IndicatorSet::new(&names).unwrap();
    let mut checked = 0usize;
    let mut worst = 0.0f64;
    for (i, (candle, row)) in candles.iter().zip(&rows).enumerate() {
        assert_eq!(row[0], candle.time.to_string(), "row {i} time");
        set.update(candle);
        for (column, _, output) in COLUMNS {
            let col = header.iter().position(|h| h == column).unwrap();
            let ours = set.get(output);
            match (row[col], ours) {
                ("", None) => {}
                ("", Some(v)) => panic!("{column} row {i}: TA-Lib undefined, ours {v}"),
                (text, None) => panic!("{column} row {i}: TA-Lib {text}, ours undefined"),
                (text, Some(v)) => {
                    let expected: f64 = text.parse().unwrap();
                    let err = (v - expected).abs() / expected.abs().max(1.0);
                    worst = worst.max(err);
                    assert!(
                        err <= 1e-9,
                        "{column} row {i}: ours {v}, TA-Lib {expected} (relative error {err:e})"
                    );
                    checked += 1;
                }
            }
        }
    }
    println!("checked {checked} values; worst relative error {worst:e}");
    assert!(checked > 30_000);
}
