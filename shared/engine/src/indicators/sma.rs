//! Simple moving average, `ta`'s running-sum SMA (equal to TA-Lib's) with an explicit warm-up.
//!
//! `SMA(n)_t = (x_t + x_{t-1} + ... + x_{t-n+1}) / n`, defined from the n-th value on.

use serde::{Deserialize, Serialize};
use ta::Next;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sma {
    period: usize,
    seen: usize,
    inner: ta::indicators::SimpleMovingAverage,
}

impl Sma {
    pub fn new(period: usize) -> Result<Self, super::IndicatorError> {
        let inner = ta::indicators::SimpleMovingAverage::new(period)
            .map_err(|_| super::IndicatorError::Period(format!("SMA({period})")))?;
        Ok(Self {
            period,
            seen: 0,
            inner,
        })
    }

    /// Feeds one value; the average once `period` values have been seen.
    #[inline]
    pub fn next(&mut self, x: f64) -> Option<f64> {
        let value = self.inner.next(x);
        if self.seen < self.period {
            self.seen += 1;
        }
        (self.seen == self.period).then_some(value)
    }

    pub fn is_ready(&self) -> bool {
        self.seen == self.period
    }

    pub fn period(&self) -> usize {
        self.period
    }
}

impl std::fmt::Display for Sma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SMA({})", self.period)
    }
}
