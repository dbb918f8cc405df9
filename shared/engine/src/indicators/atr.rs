//! Average true range with Wilder's smoothing and an SMA seed, as TA-Lib computes it.
//!
//! `TR_t = max(high_t - low_t, |high_t - close_{t-1}|, |low_t - close_{t-1}|)` (from the second
//! candle); `ATR_n = mean(TR_1..TR_n)`; `ATR_t = (ATR_{t-1} * (n - 1) + TR_t) / n`.

use serde::{Deserialize, Serialize};

use crate::Candle;

/// True range against the previous close.
#[inline]
pub fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    let mut greatest = high - low;
    let up = (prev_close - high).abs();
    if up > greatest {
        greatest = up;
    }
    let down = (prev_close - low).abs();
    if down > greatest {
        greatest = down;
    }
    greatest
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Atr {
    period: usize,
    prev_close: Option<f64>,
    seen: usize,
    sum: f64,
    value: Option<f64>,
}

impl Atr {
    pub fn new(period: usize) -> Result<Self, super::IndicatorError> {
        if period == 0 {
            return Err(super::IndicatorError::Period(format!("ATR({period})")));
        }
        Ok(Self {
            period,
            prev_close: None,
            seen: 0,
            sum: 0.0,
            value: None,
        })
    }

    #[inline]
    pub fn next(&mut self, c: &Candle) -> Option<f64> {
        let prev = self.prev_close.replace(c.close)?;
        let tr = true_range(c.high, c.low, prev);
        let n = self.period as f64;
        match self.value {
            Some(prev_atr) => {
                // (ATR * (n - 1) + TR) / n, dividing as a multiplication by 1 / n (within an ulp)
                self.value = Some((prev_atr * (n - 1.0) + tr) * (1.0 / n));
            }
            None => {
                self.sum += tr;
                self.seen += 1;
                if self.seen == self.period {
                    self.value = Some(self.sum / n);
                }
            }
        }
        self.value
    }
}

impl std::fmt::Display for Atr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ATR({})", self.period)
    }
}
