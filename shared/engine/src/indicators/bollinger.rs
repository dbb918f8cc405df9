//! Bollinger bands, `ta`'s implementation (SMA middle band, population standard deviation: equal
//! to TA-Lib's BBANDS with an SMA), with an explicit warm-up.
//!
//! `middle = SMA(n)`, `sigma = sqrt(sum((x - middle)^2) / n)`, `upper/lower = middle +/- k * sigma`.

use serde::{Deserialize, Serialize};
use ta::Next;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bollinger {
    period: usize,
    multiplier: f64,
    seen: usize,
    inner: ta::indicators::BollingerBands,
}

/// Upper, middle, lower.
pub type BollingerOutput = (f64, f64, f64);

impl Bollinger {
    pub fn new(period: usize, multiplier: f64) -> Result<Self, super::IndicatorError> {
        let inner = ta::indicators::BollingerBands::new(period, multiplier)
            .map_err(|_| super::IndicatorError::Period(format!("BB({period}, {multiplier})")))?;
        Ok(Self {
            period,
            multiplier,
            seen: 0,
            inner,
        })
    }

    #[inline]
    pub fn next(&mut self, close: f64) -> Option<BollingerOutput> {
        let out = self.inner.next(close);
        if self.seen < self.period {
            self.seen += 1;
        }
        (self.seen == self.period).then_some((out.upper, out.average, out.lower))
    }
}

impl std::fmt::Display for Bollinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BB({}, {})", self.period, self.multiplier)
    }
}
