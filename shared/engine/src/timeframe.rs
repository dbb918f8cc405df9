//! Candle timeframes.

use serde::{Deserialize, Serialize};

/// A candle timeframe. Crypto trades every day of the year: annualisation uses 365-day years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timeframe {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "1d")]
    D1,
}

impl Timeframe {
    pub const ALL: [Timeframe; 6] = [Self::M1, Self::M5, Self::M15, Self::H1, Self::H4, Self::D1];

    /// Length of one candle in milliseconds.
    pub fn millis(self) -> i64 {
        60_000
            * match self {
                Self::M1 => 1,
                Self::M5 => 5,
                Self::M15 => 15,
                Self::H1 => 60,
                Self::H4 => 240,
                Self::D1 => 1440,
            }
    }

    /// Candles in a 365-day year: the annualisation factor of Sharpe, Sortino and Calmar.
    pub fn candles_per_year(self) -> f64 {
        365.0 * 86_400_000.0 / self.millis() as f64
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::M1 => "1m",
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::H1 => "1h",
            Self::H4 => "4h",
            Self::D1 => "1d",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The timeframe whose length is the smallest gap between consecutive candles (data may have
    /// gaps, never shorter spacing).
    pub fn infer(candles: &[crate::Candle]) -> Option<Self> {
        let gap = candles.windows(2).map(|w| w[1].time - w[0].time).min()?;
        Self::ALL.into_iter().find(|t| t.millis() == gap)
    }
}

impl std::fmt::Display for Timeframe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
