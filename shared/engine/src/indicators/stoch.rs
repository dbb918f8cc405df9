//! Slow stochastic as TA-Lib's STOCH(k, slow_k SMA, slow_d SMA) computes it.
//!
//! `%K_fast = 100 * (close - lowest low(k)) / (highest high(k) - lowest low(k))`, and 0 when the
//! range is zero (TA-Lib's rule; `ta`'s fast stochastic answers 50 there and keeps `-inf` in its
//! state, which is why this one is ours). `%K = SMA(slow_k)` of `%K_fast`, `%D = SMA(slow_d)` of
//! `%K`. First defined at index `k + slow_k + slow_d - 3` (17 for 14, 3, 3).
//!
//! The highest high and lowest low are tracked as TA-Lib does: the extreme's position is kept and
//! the window (a ring buffer) is rescanned only when a new value beats it or it leaves the window,
//! which is O(1) amortised per candle.

use serde::{Deserialize, Serialize};

use crate::Candle;

/// A short running mean (the %K and %D smoothing): the sum of a ring of `n` values times `1 / n`.
/// Multiplying by the reciprocal instead of dividing keeps the divider out of the hot loop; the
/// result differs from a division by at most an ulp.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Smooth {
    /// Stored, not taken from the buffer's capacity: a restored checkpoint does not keep capacity.
    period: usize,
    values: Vec<f64>,
    head: usize,
    sum: f64,
    inverse: f64,
}

impl Smooth {
    fn new(n: usize) -> Self {
        Self {
            period: n,
            values: Vec::with_capacity(n),
            head: 0,
            sum: 0.0,
            inverse: 1.0 / n as f64,
        }
    }

    fn period(&self) -> usize {
        self.period
    }

    #[inline]
    fn next(&mut self, x: f64) -> Option<f64> {
        let n = self.period;
        if self.values.len() < n {
            self.values.push(x);
            self.sum += x;
            return (self.values.len() == n).then_some(self.sum * self.inverse);
        }
        self.sum += x - self.values[self.head];
        self.values[self.head] = x;
        self.head = if self.head + 1 == n { 0 } else { self.head + 1 };
        Some(self.sum * self.inverse)
    }
}

/// The extreme of a sliding window of `period` values, kept in a ring buffer: the highest when
/// `HIGHEST`, else the lowest.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Extreme<const HIGHEST: bool> {
    values: Vec<f64>,
    /// Slot the next value goes to (after the window is full: the oldest value's slot).
    head: usize,
    /// Slot of the current extreme.
    at: usize,
}

impl<const HIGHEST: bool> Extreme<HIGHEST> {
    fn new(period: usize) -> Self {
        Self {
            values: Vec::with_capacity(period),
            head: 0,
            at: 0,
        }
    }

    /// Whether `a` replaces `b` as the extreme (ties go to the newer value, which stays longer).
    #[inline]
    fn beats(a: f64, b: f64) -> bool {
        if HIGHEST { a >= b } else { a <= b }
    }

    /// Adds a value and returns the window's extreme.
    #[inline]
    fn push(&mut self, x: f64, period: usize) -> f64 {
        let slot = self.head;
        self.head = if slot + 1 == period { 0 } else { slot + 1 };
        if self.values.is_empty() {
            self.values.push(x);
            self.at = slot;
            return x;
        }
        let full = self.values.len() == period;
        // the value leaving the window is the extreme: its slot is about to be overwritten
        let expired = full && self.at == slot;
        let current = self.values[self.at];
        if full {
            self.values[slot] = x;
        } else {
            self.values.push(x);
        }
        if !expired {
            if Self::beats(x, current) {
                self.at = slot;
            }
        } else {
            // rescan the window from its oldest value (at `head`) to the newest
            let mut j = self.head;
            let mut best_at = j;
            for _ in 0..period {
                if Self::beats(self.values[j], self.values[best_at]) {
                    best_at = j;
                }
                j = if j + 1 == period { 0 } else { j + 1 };
            }
            self.at = best_at;
        }
        self.values[self.at]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stoch {
    k_period: usize,
    index: u64,
    highs: Extreme<true>,
    lows: Extreme<false>,
    slow_k: Smooth,
    slow_d: Smooth,
}

impl Stoch {
    pub fn new(k: usize, slow_k: usize, slow_d: usize) -> Result<Self, super::IndicatorError> {
        if k == 0 || slow_k == 0 || slow_d == 0 {
            return Err(super::IndicatorError::Period(format!(
                "STOCH({k}, {slow_k}, {slow_d})"
            )));
        }
        Ok(Self {
            k_period: k,
            index: 0,
            highs: Extreme::new(k),
            lows: Extreme::new(k),
            slow_k: Smooth::new(slow_k),
            slow_d: Smooth::new(slow_d),
        })
    }

    /// (%K, %D)
    #[inline]
    pub fn next(&mut self, c: &Candle) -> Option<(f64, f64)> {
        self.index += 1;
        let highest = self.highs.push(c.high, self.k_period);
        let lowest = self.lows.push(c.low, self.k_period);
        if self.index < self.k_period as u64 {
            return None;
        }
        let range = highest - lowest;
        let fast_k = if range != 0.0 {
            (c.close - lowest) * 100.0 / range
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
