//! Slow stochastic as TA-Lib's STOCH(k, slow_k SMA, slow_d SMA) computes it.
//!
//! `%K_fast = 100 * (close - lowest low(k)) / (highest high(k) - lowest low(k))`, and 0 when the
//! range is zero (TA-Lib's rule; `ta`'s fast stochastic answers 50 there, which is why this one is
//! ours). `%K = SMA(slow_k)` of `%K_fast`, `%D = SMA(slow_d)` of `%K`. First defined at index
//! `k + slow_k + slow_d - 3` (17 for 14, 3, 3). The highest high and lowest low come from
//! monotonic queues: O(1) amortised per candle.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::sma::Sma;
use crate::Candle;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stoch {
    k_period: usize,
    index: u64,
    /// (index, high), highs decreasing: the front is the window's highest high.
    highs: VecDeque<(u64, f64)>,
    /// (index, low), lows increasing: the front is the window's lowest low.
    lows: VecDeque<(u64, f64)>,
    slow_k: Sma,
    slow_d: Sma,
}

impl Stoch {
    pub fn new(k: usize, slow_k: usize, slow_d: usize) -> Result<Self, super::IndicatorError> {
        if k == 0 {
            return Err(super::IndicatorError::Period(format!("STOCH({k})")));
        }
        Ok(Self {
            k_period: k,
            index: 0,
            highs: VecDeque::with_capacity(k + 1),
            lows: VecDeque::with_capacity(k + 1),
            slow_k: Sma::new(slow_k)?,
            slow_d: Sma::new(slow_d)?,
        })
    }

    /// (%K, %D)
    #[inline]
    pub fn next(&mut self, c: &Candle) -> Option<(f64, f64)> {
        let i = self.index;
        self.index += 1;
        while self.highs.back().is_some_and(|&(_, h)| h <= c.high) {
            self.highs.pop_back();
        }
        self.highs.push_back((i, c.high));
        while self.lows.back().is_some_and(|&(_, l)| l >= c.low) {
            self.lows.pop_back();
        }
        self.lows.push_back((i, c.low));
        let oldest = (i + 1).saturating_sub(self.k_period as u64);
        while self.highs.front().is_some_and(|&(j, _)| j < oldest) {
            self.highs.pop_front();
        }
        while self.lows.front().is_some_and(|&(j, _)| j < oldest) {
            self.lows.pop_front();
        }
        if self.index < self.k_period as u64 {
            return None;
        }
        let highest = self.highs.front().map_or(c.high, |&(_, h)| h);
        let lowest = self.lows.front().map_or(c.low, |&(_, l)| l);
        let diff = (highest - lowest) / 100.0;
        let fast_k = if diff != 0.0 {
            (c.close - lowest) / diff
        } else {
            0.0
        };
        let k = self.slow_k.next(fast_k)?;
        let d = self.slow_d.next(k)?;
        Some((k, d))
    }
}

impl std::fmt::Display for Stoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "STOCH({}, {}, {})",
            self.k_period,
            self.slow_k.period(),
            self.slow_d.period()
        )
    }
}
