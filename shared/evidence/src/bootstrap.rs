//! The agent against buy & hold over the same candles (`evidence.buy_hold`): a stationary block
//! bootstrap (Politis & Romano, 1994) of the per-candle return difference.
//!
//! `d_t = r_t - b_t`, `r_t` the agent's return over candle `t` (its equity at the close over the
//! one before, the initial capital before the first), `b_t = close_t / close_{t-1} - 1` (0 for the
//! first candle: buy & hold buys at its close). Mean block length `L = ceil(n^(1/3))`. Resample
//! `b` (stream `(Bootstrap, b)`, see [`crate::rng`]) draws `n` values: it starts at `below(n)`;
//! before each later value, `unit() < 1/L` starts a new block at `below(n)`, else the next index
//! follows (wrapping to 0 after `n - 1`). The null is centred: the resample's mean minus the
//! observed mean. `p_value = (1 + resamples whose centred mean >= the observed mean) /
//! (resamples + 1)`.

use serde::{Deserialize, Serialize};

use crate::rng::{Purpose, Rng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuyHold {
    /// Total return minus buy & hold's, in percentage points.
    pub excess_return_pct: Option<f64>,
    pub mean_excess_per_candle: Option<f64>,
    pub block_length: Option<u64>,
    pub resamples: u32,
    pub p_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `L = ceil(n^(1/3))`, exact for perfect cubes.
pub fn block_length(n: usize) -> usize {
    let mut l = (n as f64).cbrt().ceil() as usize;
    while l > 1 && (l - 1).pow(3) >= n {
        l -= 1;
    }
    while l.pow(3) < n {
        l += 1;
    }
    l.max(1)
}

/// The centred resampled means of `d`, resample by resample.
pub fn resampled_means(seed: u64, d: &[f64], resamples: u32, threads: usize) -> Vec<f64> {
    let n = d.len();
    let mean = d.iter().sum::<f64>() / n as f64;
    let p = 1.0 / block_length(n) as f64;
    let mut out = vec![0.0; resamples as usize];
    let threads = threads.clamp(1, 64);
    let chunk = (resamples as usize).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (c, slot) in out.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                for (j, m) in slot.iter_mut().enumerate() {
                    let b = (c * chunk + j) as u64;
                    let mut rng = Rng::stream(seed, Purpose::Bootstrap, b);
                    let mut i = rng.below(n as u64) as usize;
                    let mut sum = d[i];
                    for _ in 1..n {
                        if rng.unit() < p {
                            i = rng.below(n as u64) as usize;
                        } else {
                            i += 1;
                            if i == n {
                                i = 0;
                            }
                        }
                        sum += d[i];
                    }
                    *m = sum / n as f64 - mean;
                }
            });
        }
    });
    out
}

/// `evidence.buy_hold` from the agent's per-candle returns `r`, buy & hold's `b` and the two
/// total returns.
pub fn buy_hold(
    seed: u64,
    resamples: u32,
    r: &[f64],
    b: &[f64],
    total_return_pct: f64,
    buy_hold_return_pct: Option<f64>,
    threads: usize,
) -> BuyHold {
    let excess_return_pct = buy_hold_return_pct.map(|bh| total_return_pct - bh);
    let d: Vec<f64> = r.iter().zip(b).map(|(r, b)| r - b).collect();
    let n = d.len();
    if n < 2 {
        return BuyHold {
            excess_return_pct,
            mean_excess_per_candle: None,
            block_length: None,
            resamples,
            p_value: None,
            reason: Some("fewer than 2 candles".into()),
        };
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let (p_value, reason) = match resamples {
        0 => (
            None,
            Some("the bootstrap is turned off (EVIDENCE_BOOTSTRAP_RESAMPLES=0)".to_owned()),
        ),
        _ => {
            let means = resampled_means(seed, &d, resamples, threads);
            let above = means.iter().filter(|&&m| m >= mean).count();
            (
                Some((1 + above) as f64 / (f64::from(resamples) + 1.0)),
                None,
            )
        }
    };
    BuyHold {
        excess_return_pct,
        mean_excess_per_candle: Some(mean),
        block_length: Some(block_length(n) as u64),
        resamples,
        p_value,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_length_is_the_ceiling_of_the_cube_root() {
        assert_eq!(block_length(1), 1);
        assert_eq!(block_length(8), 2);
        assert_eq!(block_length(9), 3);
        assert_eq!(block_length(27), 3);
        assert_eq!(block_length(45_024), 36);
    }

    #[test]
    fn a_constant_edge_is_significant_and_none_is_not() {
        let r: Vec<f64> = (0..500)
            .map(|i| 0.001 + 0.01 * ((i % 7) as f64 - 3.0))
            .collect();
        let b: Vec<f64> = (0..500).map(|i| 0.01 * ((i % 7) as f64 - 3.0)).collect();
        let out = buy_hold(3, 500, &r, &b, 60.0, Some(10.0), 2);
        // every difference is exactly 0.001: no resample's centred mean reaches it
        assert_eq!(out.p_value, Some(1.0 / 501.0));
        let same = buy_hold(3, 500, &b, &b, 10.0, Some(10.0), 2);
        assert_eq!(same.excess_return_pct, Some(0.0));
        assert!(same.p_value.unwrap() > 0.5);
    }

    #[test]
    fn the_figures_do_not_depend_on_the_threads() {
        let d: Vec<f64> = (0..300)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) / 100.0)
            .collect();
        assert_eq!(
            resampled_means(11, &d, 64, 1),
            resampled_means(11, &d, 64, 3)
        );
    }
}
