//! The probabilistic Sharpe ratio (Bailey & Lopez de Prado, 2012) against a Sharpe of 0, on
//! per-candle returns (`evidence.psr`):
//! `psr = Phi(SR sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))`, `SR` the mean over the
//! population standard deviation, `g3` the skewness, `g4` the kurtosis (not excess), `n` the
//! returns. `null` (with a reason) below 30 returns or with no deviation.

use serde::{Deserialize, Serialize};

/// Fewest returns with a PSR.
pub const MIN_RETURNS: usize = 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Psr {
    pub psr: Option<f64>,
    pub sharpe_per_candle: Option<f64>,
    pub skewness: Option<f64>,
    pub kurtosis: Option<f64>,
    pub n: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The standard normal distribution function.
pub fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

pub fn psr(r: &[f64]) -> Psr {
    let n = r.len();
    let none = |reason: &str| Psr {
        psr: None,
        sharpe_per_candle: None,
        skewness: None,
        kurtosis: None,
        n: n as u64,
        reason: Some(reason.into()),
    };
    if n < MIN_RETURNS {
        return none("fewer than 30 candles with a return");
    }
    let nf = n as f64;
    let mean = r.iter().sum::<f64>() / nf;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for &x in r {
        let d = x - mean;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    let (m2, m3, m4) = (m2 / nf, m3 / nf, m4 / nf);
    let sd = m2.sqrt();
    if sd.is_nan() || sd <= 0.0 {
        return none("the returns do not vary");
    }
    let sr = mean / sd;
    let g3 = m3 / (sd * sd * sd);
    let g4 = m4 / (m2 * m2);
    let radicand = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr;
    let psr = (radicand > 0.0).then(|| phi(sr * (nf - 1.0).sqrt() / radicand.sqrt()));
    Psr {
        psr,
        sharpe_per_candle: Some(sr),
        skewness: Some(g3),
        kurtosis: Some(g4),
        n: n as u64,
        reason: psr
            .is_none()
            .then(|| "the moments leave no defined deviation of the Sharpe ratio".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_is_the_normal_distribution() {
        assert!((phi(0.0) - 0.5).abs() < 1e-15);
        assert!((phi(1.959_963_984_540_054) - 0.975).abs() < 1e-12);
        assert!((phi(-1.0) - 0.158_655_253_931_457).abs() < 1e-12);
    }

    #[test]
    fn too_few_or_flat_returns_have_no_psr() {
        assert!(psr(&[0.01; 29]).psr.is_none());
        assert_eq!(
            psr(&[0.0; 40]).reason.as_deref(),
            Some("the returns do not vary")
        );
    }

    #[test]
    fn symmetric_returns_with_a_positive_mean_give_a_psr_above_a_half() {
        let r: Vec<f64> = (0..100)
            .map(|i| 0.002 + if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        let p = psr(&r);
        assert!(p.skewness.unwrap().abs() < 1e-9);
        // two-point returns: kurtosis exactly 1
        assert!((p.kurtosis.unwrap() - 1.0).abs() < 1e-9);
        assert!(p.psr.unwrap() > 0.9);
    }
}
