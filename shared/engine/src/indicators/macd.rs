//! MACD(fast, slow, signal) with TA-Lib's start alignment.
//!
//! TA-Lib seeds both EMAs at the same candle, index `slow - 1`: the slow EMA with the SMA of the
//! first `slow` closes and the fast EMA with the SMA of the `fast` closes ending there (not the
//! first `fast` closes). `MACD = EMA_fast - EMA_slow`; the signal is the EMA(signal) of MACD seeded
//! with the SMA of its first `signal` values; `histogram = MACD - signal`. All three are first
//! defined at index `slow + signal - 2` (33 for 12, 26, 9).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ema::Ema;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Macd {
    fast_period: usize,
    slow_period: usize,
    /// Closes until both EMAs are seeded (then emptied).
    window: VecDeque<f64>,
    fast: Option<Ema>,
    slow: Option<Ema>,
    signal: Ema,
}

/// MACD line, signal line, histogram.
pub type MacdOutput = (f64, f64, f64);

impl Macd {
    pub fn new(fast: usize, slow: usize, signal: usize) -> Result<Self, super::IndicatorError> {
        if fast < 2 || slow <= fast || signal == 0 {
            return Err(super::IndicatorError::Period(format!(
                "MACD({fast}, {slow}, {signal})"
            )));
        }
        Ok(Self {
            fast_period: fast,
            slow_period: slow,
            window: VecDeque::with_capacity(slow),
            fast: None,
            slow: None,
            signal: Ema::new(signal)?,
        })
    }

    #[inline]
    pub fn next(&mut self, close: f64) -> Option<MacdOutput> {
        let macd = match (&mut self.fast, &mut self.slow) {
            (Some(fast), Some(slow)) => fast.next(close)? - slow.next(close)?,
            _ => {
                self.window.push_back(close);
                if self.window.len() < self.slow_period {
                    return None;
                }
                let mean = |values: &mut dyn Iterator<Item = &f64>, n: usize| {
                    values.fold(0.0, |sum, x| sum + x) / n as f64
                };
                let slow_seed = mean(&mut self.window.iter(), self.slow_period);
                let skip = self.slow_period - self.fast_period;
                let fast_seed = mean(&mut self.window.iter().skip(skip), self.fast_period);
                self.window = VecDeque::new();
                self.fast = Some(Ema::seeded(self.fast_period, fast_seed));
                self.slow = Some(Ema::seeded(self.slow_period, slow_seed));
                fast_seed - slow_seed
            }
        };
        let signal = self.signal.next(macd)?;
        Some((macd, signal, macd - signal))
    }
}

impl std::fmt::Display for Macd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MACD({}, {})", self.fast_period, self.slow_period)
    }
}
