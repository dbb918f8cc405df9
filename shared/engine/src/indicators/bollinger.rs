//! Bollinger bands as TA-Lib's BBANDS(n, k, k, SMA) computes them: from a running sum and sum of
//! squares over the window.
//!
//! `middle = sum(x) / n`, `sigma = sqrt(sum(x^2) / n - middle^2)` (population deviation; 0 when
//! rounding makes the variance negative), `upper/lower = middle +/- k * sigma`. First defined
//! at index `n - 1`.
//!
//! `ta`'s bands give the same values (within 1e-12 here) but update the mean and deviation with
//! Welford's method, a chain of two divisions and a square root per candle; this is TA-Lib's own
//! method with one square root, and about twice as fast.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bollinger {
    period: usize,
    multiplier: f64,
    inverse: f64,
    window: Vec<f64>,
    head: usize,
    sum: f64,
    sum_sq: f64,
}

/// Upper, middle, lower.
pub type BollingerOutput = (f64, f64, f64);

impl Bollinger {
    pub fn new(period: usize, multiplier: f64) -> Result<Self, super::IndicatorError> {
        if period < 2 || !(multiplier.is_finite() && multiplier > 0.0) {
            return Err(super::IndicatorError::Period(format!(
                "BB({period}, {multiplier})"
            )));
        }
        Ok(Self {
            period,
            multiplier,
            inverse: 1.0 / period as f64,
            window: Vec::with_capacity(period),
            head: 0,
            sum: 0.0,
            sum_sq: 0.0,
        })
    }

    #[inline]
    pub fn next(&mut self, close: f64) -> Option<BollingerOutput> {
        if self.window.len() < self.period {
            self.window.push(close);
            self.sum += close;
            self.sum_sq += close * close;
            if self.window.len() < self.period {
                return None;
            }
        } else {
            let old = self.window[self.head];
            self.window[self.head] = close;
            self.head = if self.head + 1 == self.period {
                0
            } else {
                self.head + 1
            };
            self.sum += close - old;
            self.sum_sq += close * close - old * old;
        }
        let mean = self.sum * self.inverse;
        let variance = self.sum_sq * self.inverse - mean * mean;
        let deviation = if variance > 0.0 { variance.sqrt() } else { 0.0 };
        let band = self.multiplier * deviation;
        Some((mean + band, mean, mean - band))
    }
}

impl std::fmt::Display for Bollinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BB({}, {})", self.period, self.multiplier)
    }
}
