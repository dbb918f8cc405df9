//! Exponential moving average as TA-Lib computes it: seeded with the SMA of the first `n` values.
//!
//! `k = 2 / (n + 1)`; `EMA_{n-1} = SMA(n)`; `EMA_t = (x_t - EMA_{t-1}) * k + EMA_{t-1}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ema {
    period: usize,
    k: f64,
    seen: usize,
    sum: f64,
    value: Option<f64>,
}

impl Ema {
    pub fn new(period: usize) -> Result<Self, super::IndicatorError> {
        if period == 0 {
            return Err(super::IndicatorError::Period(format!("EMA({period})")));
        }
        Ok(Self {
            period,
            k: 2.0 / (period as f64 + 1.0),
            seen: 0,
            sum: 0.0,
            value: None,
        })
    }

    /// An EMA whose first value is `seed` (TA-Lib's MACD seeds its EMAs itself).
    pub(crate) fn seeded(period: usize, seed: f64) -> Self {
        Self {
            period,
            k: 2.0 / (period as f64 + 1.0),
            seen: period,
            sum: 0.0,
            value: Some(seed),
        }
    }

    #[inline]
    pub fn next(&mut self, x: f64) -> Option<f64> {
        match self.value {
            Some(prev) => {
                let v = (x - prev) * self.k + prev;
                self.value = Some(v);
            }
            None => {
                self.sum += x;
                self.seen += 1;
                if self.seen == self.period {
                    self.value = Some(self.sum / self.period as f64);
                }
            }
        }
        self.value
    }

    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

impl std::fmt::Display for Ema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EMA({})", self.period)
    }
}
