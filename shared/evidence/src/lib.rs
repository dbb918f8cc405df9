//! Evidence on a result (issue 25): is it better than chance, better than holding, and can
//! anyone check it without trusting the server? Pure and deterministic like the engine it runs:
//! the same seed over the same candles, trades and equity gives the same figures, bit for bit.
//!
//! - [`chance`]: the agent against random agents with the same trades;
//! - [`bootstrap`]: a stationary block bootstrap of the return difference to buy & hold;
//! - [`psr`]: the probabilistic Sharpe ratio;
//! - [`cutoff`]: the model cutoff registry, the evidence grade and the cutoff split;
//! - [`ledger`]: the signed, hash-chained ledger of every candle and decision, its replay and its
//!   verification; [`canonical`]: RFC 8785, the byte form it hashes and signs.

pub mod bootstrap;
pub mod canonical;
pub mod chance;
pub mod cutoff;
pub mod ledger;
pub mod psr;
pub mod rng;

use chrono::NaiveDate;
use engine::{Candle, EngineConfig, Metrics, Trade};
use serde::{Deserialize, Serialize};

pub use bootstrap::BuyHold;
pub use chance::Chance;
pub use cutoff::{CutoffSplit, Registry, Window};
pub use psr::Psr;

/// Random agents by default (`EVIDENCE_NULL_AGENTS`).
pub const DEFAULT_NULL_AGENTS: u32 = 1_000;
/// Bootstrap resamples by default (`EVIDENCE_BOOTSTRAP_RESAMPLES`).
pub const DEFAULT_RESAMPLES: u32 = 2_000;

/// The seed of a result: the first 8 bytes, big-endian, of the SHA-256 of its id's 16 bytes.
pub fn seed_of(result_id: &[u8; 16]) -> u64 {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, result_id);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// How much evidence to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub null_agents: u32,
    pub resamples: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            null_agents: DEFAULT_NULL_AGENTS,
            resamples: DEFAULT_RESAMPLES,
        }
    }
}

/// What a result's evidence is computed from: its decided candles, its per-candle equity (at
/// each candle's close), its closed trades and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub config: &'a EngineConfig,
    pub candles: &'a [Candle],
    pub equity: &'a [f64],
    pub trades: &'a [Trade],
    pub metrics: &'a Metrics,
    pub seed: u64,
    /// The model's training data cutoff (a crossing window gets the split).
    pub cutoff: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// `chance.percentile >= 95`.
    pub beats_chance: bool,
    /// `buy_hold.p_value < 0.05` and a positive excess return.
    pub beats_buy_hold: bool,
    pub summary: String,
}

/// `evidence` on a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The seed every random draw derives from (decimal).
    pub seed: String,
    pub chance: Chance,
    pub buy_hold: BuyHold,
    pub psr: Psr,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff_split: Option<CutoffSplit>,
}

/// Per-candle simple returns of `equity` from `start`.
pub fn returns(start: f64, equity: &[f64]) -> Vec<f64> {
    let mut prev = start;
    equity
        .iter()
        .map(|&e| {
            let r = e / prev - 1.0;
            prev = e;
            r
        })
        .collect()
}

/// Buy & hold's per-candle returns over `candles` (0 for the first: it buys at its close).
pub fn buy_hold_returns(candles: &[Candle]) -> Vec<f64> {
    let mut prev: Option<f64> = None;
    candles
        .iter()
        .map(|c| {
            let r = prev.map_or(0.0, |p| c.close / p - 1.0);
            prev = Some(c.close);
            r
        })
        .collect()
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn thousands(n: u32) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The verdict and its one-line summary.
pub fn verdict(chance: &Chance, buy_hold: &BuyHold) -> Verdict {
    let beats_chance = chance.percentile.is_some_and(|p| p >= 95.0);
    let beats_buy_hold = buy_hold.p_value.is_some_and(|p| p < 0.05)
        && buy_hold.excess_return_pct.is_some_and(|e| e > 0.0);
    let chance_part = match (chance.percentile, chance.p_value) {
        (Some(pct), Some(p)) => format!(
            "{} percentile of {} random agents with the same trades: {}",
            ordinal(pct.floor() as u64),
            thousands(chance.null_agents),
            if beats_chance {
                format!("better than chance (p = {p:.3})")
            } else {
                "indistinguishable from chance".into()
            }
        ),
        _ => format!(
            "not tested against random agents ({}): indistinguishable from chance",
            chance.reason.as_deref().unwrap_or("no figures")
        ),
    };
    let hold_part = match (buy_hold.excess_return_pct, buy_hold.p_value) {
        (Some(excess), Some(p)) if beats_buy_hold => {
            format!("beats buy & hold by {excess:+.2} points (p = {p:.3})")
        }
        (Some(excess), Some(p)) => {
            format!("does not beat buy & hold ({excess:+.2} points, p = {p:.3})")
        }
        _ => "not tested against buy & hold".into(),
    };
    Verdict {
        beats_chance,
        beats_buy_hold,
        summary: format!("{chance_part}; {hold_part}"),
    }
}

/// Every figure of `evidence`, on up to `threads` threads (the figures do not depend on it).
pub fn compute(inputs: &Inputs<'_>, settings: Settings, threads: usize) -> Evidence {
    let capital = inputs.config.initial_capital;
    let r = returns(capital, inputs.equity);
    let b = buy_hold_returns(inputs.candles);
    let nulls = chance::null_trades(inputs.trades, inputs.equity, inputs.config);
    let chance = chance::chance(
        inputs.seed,
        settings.null_agents,
        inputs.metrics.total_return_pct,
        inputs.config,
        inputs.candles,
        &nulls,
        threads,
    );
    let buy_hold = bootstrap::buy_hold(
        inputs.seed,
        settings.resamples,
        &r,
        &b,
        inputs.metrics.total_return_pct,
        inputs.metrics.buy_hold_return_pct,
        threads,
    );
    let psr = psr::psr(&r);
    let verdict = verdict(&chance, &buy_hold);
    let times: Vec<i64> = inputs.candles.iter().map(|c| c.time).collect();
    let cutoff_split = inputs.cutoff.and_then(|cutoff| {
        cutoff::split(
            cutoff,
            capital,
            &times,
            inputs.equity,
            inputs.trades,
            inputs.config.timeframe,
        )
    });
    Evidence {
        seed: inputs.seed.to_string(),
        chance,
        buy_hold,
        psr,
        verdict,
        cutoff_split,
    }
}

/// How many threads the evidence uses here.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_is_the_ids_sha256_prefix() {
        // SHA-256 of sixteen zero bytes starts 374708fff7719dd5
        assert_eq!(seed_of(&[0; 16]), 0x3747_08ff_f771_9dd5);
    }

    #[test]
    fn summaries_read_as_a_trader_would_say_them() {
        let chance = Chance {
            null_agents: 1000,
            seed: Some("1".into()),
            percentile: Some(61.25),
            p_value: Some(0.39),
            null_median_return_pct: Some(0.0),
            null_p95_return_pct: Some(1.0),
            reason: None,
        };
        let hold = BuyHold {
            excess_return_pct: Some(-3.5),
            mean_excess_per_candle: Some(-0.0001),
            block_length: Some(36),
            resamples: 2000,
            p_value: Some(0.8),
            reason: None,
        };
        let v = verdict(&chance, &hold);
        assert!(!v.beats_chance && !v.beats_buy_hold);
        assert_eq!(
            v.summary,
            "61st percentile of 1,000 random agents with the same trades: indistinguishable from chance; does not beat buy & hold (-3.50 points, p = 0.800)"
        );
        let strong = Chance {
            percentile: Some(99.95),
            p_value: Some(0.001),
            ..chance
        };
        assert!(verdict(&strong, &hold).summary.starts_with(
            "99th percentile of 1,000 random agents with the same trades: better than chance (p = 0.001)"
        ));
        assert_eq!(ordinal(11), "11th");
        assert_eq!(ordinal(22), "22nd");
        assert_eq!(thousands(45024), "45,024");
    }
}
