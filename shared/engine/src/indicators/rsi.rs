//! Relative strength index with Wilder's smoothing, as TA-Lib computes it.
//!
//! Over the first `n` changes: `G = sum(gains) / n`, `L = sum(losses) / n`; then
//! `G = (G * (n - 1) + gain) / n`, likewise `L`. `RSI = 100 * G / (G + L)`, and 0 when `G + L` is
//! (TA-Lib's) zero. First defined after `n` changes, i.e. at index `n`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rsi {
    period: usize,
    prev_close: Option<f64>,
    changes: usize,
    gain: f64,
    loss: f64,
}

impl Rsi {
    pub fn new(period: usize) -> Result<Self, super::IndicatorError> {
        if period < 2 {
            return Err(super::IndicatorError::Period(format!("RSI({period})")));
        }
        Ok(Self {
            period,
            prev_close: None,
            changes: 0,
            gain: 0.0,
            loss: 0.0,
        })
    }

    #[inline]
    pub fn next(&mut self, close: f64) -> Option<f64> {
        let prev = self.prev_close.replace(close)?;
        let diff = close - prev;
        let n = self.period as f64;
        let inverse = 1.0 / n;
        if self.changes < self.period {
            if diff < 0.0 {
                self.loss -= diff;
            } else {
                self.gain += diff;
            }
            self.changes += 1;
            if self.changes < self.period {
                return None;
            }
            self.loss *= inverse;
            self.gain *= inverse;
        } else {
            // (S * (n - 1) + x) / n, the division as a multiplication by 1 / n (within an ulp)
            let (gain, loss) = if diff < 0.0 {
                (0.0, -diff)
            } else {
                (diff, 0.0)
            };
            self.loss = (self.loss * (n - 1.0) + loss) * inverse;
            self.gain = (self.gain * (n - 1.0) + gain) * inverse;
        }
        let total = self.gain + self.loss;
        Some(if super::is_zero(total) {
            0.0
        } else {
            100.0 * (self.gain / total)
        })
    }
}

impl std::fmt::Display for Rsi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RSI({})", self.period)
    }
}
