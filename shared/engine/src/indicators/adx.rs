//! Average directional index with Wilder's smoothing, as TA-Lib computes it.
//!
//! `+DM = high_t - high_{t-1}` when it exceeds `low_{t-1} - low_t` and is positive, `-DM` the
//! reverse; `TR` as for ATR. Over the first `n - 1` changes the sums accumulate; after that each
//! step does `S = S - S / n + x`. `+DI = 100 * +DM / TR`, `-DI = 100 * -DM / TR`,
//! `DX = 100 * |+DI - -DI| / (+DI + -DI)`. The first ADX is the mean of the first `n` DX values
//! (at index `2n - 1`); then `ADX = (ADX * (n - 1) + DX) / n`.

use serde::{Deserialize, Serialize};

use super::atr::true_range;
use super::is_zero;
use crate::Candle;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adx {
    period: usize,
    seen: usize,
    prev_high: f64,
    prev_low: f64,
    prev_close: f64,
    plus_dm: f64,
    minus_dm: f64,
    tr: f64,
    sum_dx: f64,
    value: Option<f64>,
}

impl Adx {
    pub fn new(period: usize) -> Result<Self, super::IndicatorError> {
        if period < 2 {
            return Err(super::IndicatorError::Period(format!("ADX({period})")));
        }
        Ok(Self {
            period,
            seen: 0,
            prev_high: 0.0,
            prev_low: 0.0,
            prev_close: 0.0,
            plus_dm: 0.0,
            minus_dm: 0.0,
            tr: 0.0,
            sum_dx: 0.0,
            value: None,
        })
    }

    #[inline]
    pub fn next(&mut self, c: &Candle) -> Option<f64> {
        let i = self.seen;
        self.seen += 1;
        if i == 0 {
            self.prev_high = c.high;
            self.prev_low = c.low;
            self.prev_close = c.close;
            return None;
        }
        let n = self.period as f64;
        let diff_p = c.high - self.prev_high;
        let diff_m = self.prev_low - c.low;
        self.prev_high = c.high;
        self.prev_low = c.low;
        let warming = i < self.period;
        if !warming {
            self.minus_dm -= self.minus_dm / n;
            self.plus_dm -= self.plus_dm / n;
        }
        if diff_m > 0.0 && diff_p < diff_m {
            self.minus_dm += diff_m;
        } else if diff_p > 0.0 && diff_p > diff_m {
            self.plus_dm += diff_p;
        }
        let tr = true_range(c.high, c.low, self.prev_close);
        self.prev_close = c.close;
        if warming {
            self.tr += tr;
            return None;
        }
        self.tr = self.tr - self.tr / n + tr;
        let dx = if is_zero(self.tr) {
            None
        } else {
            let minus_di = 100.0 * (self.minus_dm / self.tr);
            let plus_di = 100.0 * (self.plus_dm / self.tr);
            let sum = minus_di + plus_di;
            (!is_zero(sum)).then(|| 100.0 * ((minus_di - plus_di).abs() / sum))
        };
        match self.value {
            None => {
                self.sum_dx += dx.unwrap_or(0.0);
                if i == 2 * self.period - 1 {
                    self.value = Some(self.sum_dx / n);
                }
            }
            Some(prev) => {
                if let Some(dx) = dx {
                    self.value = Some((prev * (n - 1.0) + dx) / n);
                }
            }
        }
        self.value
    }
}

impl std::fmt::Display for Adx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ADX({})", self.period)
    }
}
