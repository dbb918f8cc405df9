//! Streaming technical indicators, equal to TA-Lib's values (see `tests/engine/golden.rs`), selected by
//! the names agents use. Each does O(1) (amortised) work per candle and reports nothing (`None`,
//! never a fake zero) before its first defined value.
//!
//! | name | outputs | unit |
//! |---|---|---|
//! | `rsi`, `rsi_N` (14) | `rsi_N` | 0..100 |
//! | `macd` (12, 26, 9) | `macd`, `macd_signal`, `macd_histogram` | price |
//! | `ema_N` | `ema_N` | price |
//! | `sma_N` | `sma_N` | price |
//! | `atr`, `atr_N` (14) | `atr_N` | price |
//! | `bb`, `bollinger` (20, 2) | `bb_upper`, `bb_middle`, `bb_lower` | price |
//! | `stoch` (14, 3, 3) | `stoch_k`, `stoch_d` | 0..100 |
//! | `volume` (20) | `volume`, `volume_sma_20` | volume |
//! | `obv` | `obv` | volume |
//! | `adx`, `adx_N` (14) | `adx_N` | 0..100 |

mod adx;
mod atr;
mod bollinger;
mod ema;
mod macd;
mod obv;
mod rsi;
mod sma;
mod stoch;
mod volume;

pub use adx::Adx;
pub use atr::{Atr, true_range};
pub use bollinger::{Bollinger, BollingerOutput};
pub use ema::Ema;
pub use macd::{Macd, MacdOutput};
pub use obv::Obv;
pub use rsi::Rsi;
pub use sma::Sma;
pub use stoch::Stoch;
pub use volume::Volume;

use serde::{Deserialize, Serialize};

use crate::Candle;

/// The names accepted, for error messages and documentation.
pub const VALID_NAMES: &str = "rsi, rsi_N, macd, ema_N, sma_N, atr, atr_N, bb, bollinger, stoch, \
                               volume, obv, adx, adx_N (N from 2 to 500; 1 also for ema, sma, atr)";

/// The indicator set agents get when they choose none.
pub const DEFAULT_SET: &[&str] = &[
    "rsi", "macd", "ema_9", "ema_21", "sma_50", "atr", "bb", "stoch", "volume",
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndicatorError {
    #[error("unknown indicator `{0}`; valid: {VALID_NAMES}")]
    Unknown(String),
    #[error("invalid parameters: {0}")]
    Period(String),
}

/// TA-Lib's notion of zero (`TA_IS_ZERO`).
#[inline]
pub(crate) fn is_zero(v: f64) -> bool {
    -0.000_000_01 < v && v < 0.000_000_01
}

/// What an output measures; monk mode rebases prices and leaves the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// In the asset's price (or price differences): rebased in monk mode.
    Price,
    /// A bounded oscillator (0..100).
    Oscillator,
    /// In base-asset volume.
    Volume,
}

/// One configured indicator (enum dispatch: cheap, `Clone` and serialisable).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Indicator {
    Rsi(Rsi),
    Macd(Macd),
    Ema(Ema),
    Sma(Sma),
    Atr(Atr),
    Bollinger(Bollinger),
    Stoch(Stoch),
    Volume(Volume),
    Obv(Obv),
    Adx(Adx),
}

fn period_of(name: &str, prefix: &str, min: usize) -> Result<Option<usize>, IndicatorError> {
    match name.strip_prefix(prefix) {
        None => Ok(None),
        Some(n) => match n.parse::<usize>() {
            Ok(p) if (min..=500).contains(&p) && !n.starts_with('0') => Ok(Some(p)),
            _ => Err(IndicatorError::Unknown(name.to_owned())),
        },
    }
}

impl Indicator {
    /// The indicator for an agent's name (case and surrounding spaces ignored), with the names
    /// and units of its outputs.
    pub fn parse(name: &str) -> Result<(Self, Vec<(String, Unit)>), IndicatorError> {
        use Unit::*;
        let name = name.trim().to_ascii_lowercase();
        let one = |out: String, unit| vec![(out, unit)];
        Ok(match name.as_str() {
            "rsi" => (Self::Rsi(Rsi::new(14)?), one("rsi_14".into(), Oscillator)),
            "macd" => (
                Self::Macd(Macd::new(12, 26, 9)?),
                vec![
                    ("macd".into(), Price),
                    ("macd_signal".into(), Price),
                    ("macd_histogram".into(), Price),
                ],
            ),
            "atr" => (Self::Atr(Atr::new(14)?), one("atr_14".into(), Price)),
            "bb" | "bollinger" => (
                Self::Bollinger(Bollinger::new(20, 2.0)?),
                vec![
                    ("bb_upper".into(), Price),
                    ("bb_middle".into(), Price),
                    ("bb_lower".into(), Price),
                ],
            ),
            "stoch" => (
                Self::Stoch(Stoch::new(14, 3, 3)?),
                vec![
                    ("stoch_k".into(), Oscillator),
                    ("stoch_d".into(), Oscillator),
                ],
            ),
            "volume" => (
                Self::Volume(volume::Volume::new(20)?),
                vec![("volume".into(), Volume), ("volume_sma_20".into(), Volume)],
            ),
            "obv" => (Self::Obv(Obv::new()), one("obv".into(), Volume)),
            "adx" => (Self::Adx(Adx::new(14)?), one("adx_14".into(), Oscillator)),
            other => {
                if let Some(p) = period_of(other, "rsi_", 2)? {
                    (Self::Rsi(Rsi::new(p)?), one(format!("rsi_{p}"), Oscillator))
                } else if let Some(p) = period_of(other, "ema_", 1)? {
                    (Self::Ema(Ema::new(p)?), one(format!("ema_{p}"), Price))
                } else if let Some(p) = period_of(other, "sma_", 1)? {
                    (Self::Sma(Sma::new(p)?), one(format!("sma_{p}"), Price))
                } else if let Some(p) = period_of(other, "atr_", 1)? {
                    (Self::Atr(Atr::new(p)?), one(format!("atr_{p}"), Price))
                } else if let Some(p) = period_of(other, "adx_", 2)? {
                    (Self::Adx(Adx::new(p)?), one(format!("adx_{p}"), Oscillator))
                } else {
                    return Err(IndicatorError::Unknown(other.to_owned()));
                }
            }
        })
    }

    /// Feeds one candle and writes this indicator's outputs into `out`.
    #[inline]
    pub fn next(&mut self, c: &Candle, out: &mut [Option<f64>]) {
        match self {
            Self::Rsi(x) => out[0] = x.next(c.close),
            Self::Ema(x) => out[0] = x.next(c.close),
            Self::Sma(x) => out[0] = x.next(c.close),
            Self::Atr(x) => out[0] = x.next(c),
            Self::Adx(x) => out[0] = x.next(c),
            Self::Obv(x) => out[0] = Some(x.next(c)),
            Self::Macd(x) => {
                let v = x.next(c.close);
                out[0] = v.map(|v| v.0);
                out[1] = v.map(|v| v.1);
                out[2] = v.map(|v| v.2);
            }
            Self::Bollinger(x) => {
                let v = x.next(c.close);
                out[0] = v.map(|v| v.0);
                out[1] = v.map(|v| v.1);
                out[2] = v.map(|v| v.2);
            }
            Self::Stoch(x) => {
                let v = x.next(c);
                out[0] = v.map(|v| v.0);
                out[1] = v.map(|v| v.1);
            }
            Self::Volume(x) => {
                let (v, sma) = x.next(c.volume);
                out[0] = Some(v);
                out[1] = sma;
            }
        }
    }
}

impl std::fmt::Display for Indicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rsi(x) => x.fmt(f),
            Self::Macd(x) => x.fmt(f),
            Self::Ema(x) => x.fmt(f),
            Self::Sma(x) => x.fmt(f),
            Self::Atr(x) => x.fmt(f),
            Self::Bollinger(x) => x.fmt(f),
            Self::Stoch(x) => x.fmt(f),
            Self::Volume(x) => x.fmt(f),
            Self::Obv(x) => x.fmt(f),
            Self::Adx(x) => x.fmt(f),
        }
    }
}

/// A set of indicators updated together; outputs are addressed by name or position.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndicatorSet {
    indicators: Vec<(Indicator, usize)>,
    names: Vec<String>,
    units: Vec<Unit>,
    values: Vec<Option<f64>>,
    previous: Vec<Option<f64>>,
}

impl IndicatorSet {
    /// The set for `names`; names that produce the same outputs are kept once, in first-seen
    /// order.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Result<Self, IndicatorError> {
        let mut set = Self {
            indicators: Vec::new(),
            names: Vec::new(),
            units: Vec::new(),
            values: Vec::new(),
            previous: Vec::new(),
        };
        for name in names {
            let (indicator, outputs) = Indicator::parse(name.as_ref())?;
            if set.names.contains(&outputs[0].0) {
                continue;
            }
            set.indicators.push((indicator, set.names.len()));
            for (out, unit) in outputs {
                set.names.push(out);
                set.units.push(unit);
            }
        }
        set.values = vec![None; set.names.len()];
        set.previous = vec![None; set.names.len()];
        Ok(set)
    }

    /// How many candles the set needs before every output has a value (each indicator defines
    /// its own look-back; measured on a varied synthetic series), at most `at_most`: `None` when
    /// some output is still undefined then.
    pub fn candles_to_define<S: AsRef<str>>(
        names: &[S],
        at_most: usize,
    ) -> Result<Option<usize>, IndicatorError> {
        let mut set = Self::new(names)?;
        if set.values.is_empty() {
            return Ok(Some(0));
        }
        for i in 0..at_most {
            let close = 100.0 + (i % 7) as f64 - 3.0 + i as f64 * 0.01;
            set.update(&Candle {
                time: i as i64 * 60_000,
                open: close - 0.5,
                high: close + 1.0,
                low: close - 1.5,
                close,
                volume: 10.0 + (i % 3) as f64,
            });
            if set.values.iter().all(Option::is_some) {
                return Ok(Some(i + 1));
            }
        }
        Ok(None)
    }

    /// Feeds one candle to every indicator.
    #[inline]
    pub fn update(&mut self, c: &Candle) {
        std::mem::swap(&mut self.values, &mut self.previous);
        for (indicator, offset) in &mut self.indicators {
            indicator.next(c, &mut self.values[*offset..]);
        }
    }

    /// Output names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// Current values, in the order of [`IndicatorSet::names`].
    pub fn values(&self) -> &[Option<f64>] {
        &self.values
    }

    /// Values after the previous candle.
    pub fn previous(&self) -> &[Option<f64>] {
        &self.previous
    }

    /// The current value of output `name` (`None` when unknown or not yet defined).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.position(name).and_then(|i| self.values[i])
    }

    /// The previous value of output `name`.
    pub fn get_previous(&self, name: &str) -> Option<f64> {
        self.position(name).and_then(|i| self.previous[i])
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_candles_to_define_a_set_are_its_longest_look_back() {
        let n = |names: &[&str]| IndicatorSet::candles_to_define(names, 1000).unwrap();
        assert_eq!(n(&[]), Some(0));
        assert_eq!(n(&["sma_10", "sma_30"]), Some(30));
        assert_eq!(n(&["sma_10"]), Some(10));
        // RSI(14) needs 14 changes, so 15 closes
        assert_eq!(n(&["rsi_14"]), Some(15));
        assert_eq!(
            IndicatorSet::candles_to_define(&["sma_200"], 100).unwrap(),
            None
        );
    }

    fn candle(i: i64, close: f64) -> Candle {
        Candle {
            time: i,
            open: close,
            high: close,
            low: close,
            close,
            volume: 1.0,
        }
    }

    #[test]
    fn names_resolve_and_unknown_names_list_the_valid_ones() {
        let set =
            IndicatorSet::new(&["RSI", "rsi_14", "macd", "bollinger", "bb", "ema_9"]).unwrap();
        assert_eq!(
            set.names(),
            [
                "rsi_14",
                "macd",
                "macd_signal",
                "macd_histogram",
                "bb_upper",
                "bb_middle",
                "bb_lower",
                "ema_9"
            ]
        );
        for bad in [
            "vwap", "rsi_0", "rsi_1", "ema_", "sma_501", "sma_x", "ema_09", "",
        ] {
            let err = IndicatorSet::new(&[bad]).unwrap_err();
            assert!(
                err.to_string().contains("valid: rsi, rsi_N, macd"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_flat_series_gives_tal_libs_zero_range_answers() {
        let mut set =
            IndicatorSet::new(&["rsi", "stoch", "adx", "atr", "bb", "sma_1", "ema_1"]).unwrap();
        for i in 0..60 {
            set.update(&candle(i, 100.0));
        }
        // TA-Lib: RSI 0 when there is no movement at all; %K 0 on a zero range; ADX 0; ATR 0
        assert_eq!(set.get("rsi_14"), Some(0.0));
        assert_eq!(set.get("stoch_k"), Some(0.0));
        assert_eq!(set.get("adx_14"), Some(0.0));
        assert_eq!(set.get("atr_14"), Some(0.0));
        assert_eq!(set.get("bb_upper"), Some(100.0));
        assert_eq!(set.get("sma_1"), Some(100.0));
        assert_eq!(set.get("ema_1"), Some(100.0));
    }

    #[test]
    fn nothing_is_reported_before_the_first_defined_value() {
        let mut set = IndicatorSet::new(&["sma_3"]).unwrap();
        set.update(&candle(0, 1.0));
        set.update(&candle(1, 2.0));
        assert_eq!(set.get("sma_3"), None);
        set.update(&candle(2, 3.0));
        assert_eq!(set.get("sma_3"), Some(2.0));
        assert_eq!(set.get_previous("sma_3"), None);
    }
}
