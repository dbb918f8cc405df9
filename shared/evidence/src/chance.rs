//! The agent against random agents with the same trades (`evidence.chance`).
//!
//! Each random agent keeps the agent's closed trades (side, holding length in candles, size as a
//! fraction of equity at entry, leverage), shuffles their order, and places them over the same
//! candles with a uniformly random split of the flat time between them; it trades them through
//! the engine's portfolio (same fees, slippage and liquidation, no stop-loss or take-profit),
//! entering at an entry candle's close and exiting at the close of its last candle. So it has the
//! agent's exposure and costs, and no information.
//!
//! A trade opened on the run's last candle (closed by the session's end at that same close)
//! holds no candle and is left out.
//!
//! The draw of agent `i` (stream `(Chance, i)`, see [`crate::rng`]): a Fisher-Yates shuffle of
//! the trades (`for j in (1..k).rev() { swap(j, below(j + 1)) }`), then `k` bar positions out of
//! `S + k` by Floyd's algorithm (`for j in S..S+k { t = below(j + 1); mark t, or j when t is
//! marked }`), `S` the candles not held: `N - 1 - sum(holding)`. The gaps are the runs of unmarked
//! positions between the marks (stars and bars: every split of `S` into `k + 1` gaps is equally
//! likely). Trade `i` enters at `entry_i = entry_{i-1} + holding_{i-1} + gap_i` (`entry_0 =
//! gap_0`) and exits at `entry_i + holding_i`; the next trade may enter on that same candle.

use engine::{Action, Candle, Engine, EngineConfig, Mode, Order, Side, Trade};
use serde::{Deserialize, Serialize};

use crate::rng::{Purpose, Rng};

/// What a random agent replays of one agent trade (see [`null_trades`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NullTrade {
    pub side: Side,
    /// Candles from the entry's close to the exit's close (at least 1).
    pub holding: usize,
    /// Margin plus entry fee as a fraction of the equity before the entry (0.01..=1).
    pub size: f64,
    pub leverage: u8,
}

/// The agent's trades as random agents replay them. `equity[t]` is the run's equity at the close
/// of candle `t`; the equity before a trade is the close before its entry candle (the initial
/// capital for the first candle).
pub fn null_trades(trades: &[Trade], equity: &[f64], config: &EngineConfig) -> Vec<NullTrade> {
    let fee = config.fee_bps / 10_000.0;
    trades
        .iter()
        // a trade opened on the last candle and closed by the session's end at the same close
        // holds no candle: there is nothing to place (its costs stay the agent's alone, which
        // only makes the random agents harder to beat)
        .filter(|t| t.exit_index > t.entry_index)
        .map(|t| {
            let lev = f64::from(t.leverage.max(1));
            let margin = t.quantity * t.entry_price / lev;
            let before = match t.entry_index {
                0 => config.initial_capital,
                i => equity
                    .get(i as usize - 1)
                    .copied()
                    .unwrap_or(config.initial_capital),
            };
            let size = margin * (1.0 + lev * fee) / before;
            NullTrade {
                side: t.side,
                holding: (t.exit_index - t.entry_index) as usize,
                size: if size.is_finite() {
                    size.clamp(engine::rules::MIN_SIZE, 1.0)
                } else {
                    1.0
                },
                leverage: t.leverage.max(1),
            }
        })
        .collect()
}

/// The chance figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chance {
    pub null_agents: u32,
    /// The evidence seed, as a decimal string (a JSON number cannot hold every u64).
    pub seed: Option<String>,
    /// Share of random agents whose total return is below the agent's (ties count half), x 100.
    pub percentile: Option<f64>,
    /// `(1 + random agents at or above the agent) / (random agents + 1)`.
    pub p_value: Option<f64>,
    pub null_median_return_pct: Option<f64>,
    pub null_p95_return_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Chance {
    fn none(null_agents: u32, reason: &str) -> Self {
        Self {
            null_agents,
            seed: None,
            percentile: None,
            p_value: None,
            null_median_return_pct: None,
            null_p95_return_pct: None,
            reason: Some(reason.into()),
        }
    }
}

/// The entry candle of each trade of agent `index`'s arrangement (in the shuffled order), and
/// the shuffled trades.
pub fn arrange(
    seed: u64,
    index: u64,
    trades: &[NullTrade],
    candles: usize,
) -> Option<(Vec<NullTrade>, Vec<usize>)> {
    let k = trades.len();
    let held: usize = trades.iter().map(|t| t.holding).sum();
    let slack = candles.checked_sub(1)?.checked_sub(held)?;
    let mut rng = Rng::stream(seed, Purpose::Chance, index);
    let mut order = trades.to_vec();
    for j in (1..k).rev() {
        let r = rng.below(j as u64 + 1) as usize;
        order.swap(j, r);
    }
    // Floyd: k marked positions out of slack + k
    let m = slack + k;
    let mut marked = vec![false; m];
    for j in slack..m {
        let t = rng.below(j as u64 + 1) as usize;
        if marked[t] {
            marked[j] = true;
        } else {
            marked[t] = true;
        }
    }
    let mut entries = Vec::with_capacity(k);
    let mut gap = 0;
    let mut at = 0;
    let mut i = 0;
    for &bar in &marked {
        if bar {
            let entry = at + gap;
            entries.push(entry);
            at = entry + order[i].holding;
            i += 1;
            gap = 0;
        } else {
            gap += 1;
        }
    }
    Some((order, entries))
}

/// Total return (%) of one random agent: its trades through the engine at `entries`.
fn play(config: &EngineConfig, candles: &[Candle], trades: &[NullTrade], entries: &[usize]) -> f64 {
    let Ok(mut engine) = Engine::new(config.clone()) else {
        return 0.0;
    };
    let mut observed: Option<usize> = None;
    for (i, (t, &entry)) in trades.iter().zip(entries).enumerate() {
        let exit = entry + t.holding;
        if observed != Some(entry) && engine.observe(candles[entry]).is_err() {
            break;
        }
        let action = match t.side {
            Side::Long => Action::Long,
            Side::Short => Action::Short,
        };
        let order = Order {
            leverage: Some(t.leverage),
            size: Some(t.size),
            ..Order::default()
        };
        if engine.apply_fresh(action, &order).is_err() {
            break;
        }
        for c in &candles[entry + 1..=exit] {
            if engine.observe(*c).is_err() {
                break;
            }
        }
        observed = Some(exit);
        // the next trade may enter on this candle: its entry closes this one
        if entries.get(i + 1) != Some(&exit) {
            let _ = engine.apply_order(Action::Close, &Order::default());
        }
    }
    (engine.equity() / config.initial_capital - 1.0) * 100.0
}

/// The engine configuration random agents trade with: the session's costs, capital and
/// leverage, free sizing (omni), no stops, no indicators.
pub fn null_config(session: &EngineConfig, trades: &[NullTrade]) -> EngineConfig {
    EngineConfig {
        mode: Mode::Omni,
        safety: false,
        allow_leverage: true,
        max_leverage: trades
            .iter()
            .map(|t| t.leverage)
            .max()
            .unwrap_or(1)
            .clamp(1, engine::rules::MAX_LEVERAGE),
        indicators: Vec::new(),
        ..session.clone()
    }
}

/// The total returns (%) of `agents` random agents, in agent order (computed on up to
/// `threads` threads; the result does not depend on it).
pub fn null_returns(
    seed: u64,
    agents: u32,
    config: &EngineConfig,
    candles: &[Candle],
    trades: &[NullTrade],
    threads: usize,
) -> Option<Vec<f64>> {
    let config = null_config(config, trades);
    // every arrangement fits when the first does (they all need the same candles)
    arrange(seed, 0, trades, candles.len())?;
    let threads = threads.clamp(1, 64);
    let mut out = vec![0.0; agents as usize];
    let chunk = (agents as usize).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (c, slot) in out.chunks_mut(chunk).enumerate() {
            let config = &config;
            scope.spawn(move || {
                for (j, r) in slot.iter_mut().enumerate() {
                    let index = (c * chunk + j) as u64;
                    if let Some((order, entries)) = arrange(seed, index, trades, candles.len()) {
                        *r = play(config, candles, &order, &entries);
                    }
                }
            });
        }
    });
    Some(out)
}

/// The `q`-quantile (0..=1) of sorted values, linearly interpolated between order statistics
/// (`h = (n - 1) q`).
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// `evidence.chance` for an agent whose total return is `agent_return_pct`.
pub fn chance(
    seed: u64,
    agents: u32,
    agent_return_pct: f64,
    config: &EngineConfig,
    candles: &[Candle],
    trades: &[NullTrade],
    threads: usize,
) -> Chance {
    if agents == 0 {
        return Chance::none(0, "random agents are turned off (EVIDENCE_NULL_AGENTS=0)");
    }
    if trades.is_empty() {
        return Chance::none(
            agents,
            "no closed trade that held a candle: nothing to place at random",
        );
    }
    let Some(mut returns) = null_returns(seed, agents, config, candles, trades, threads) else {
        return Chance::none(
            agents,
            "the trades hold more candles than the run has: they cannot be rearranged",
        );
    };
    let below: f64 = returns
        .iter()
        .map(|&r| {
            if r < agent_return_pct {
                1.0
            } else if r == agent_return_pct {
                0.5
            } else {
                0.0
            }
        })
        .sum();
    let at_or_above = returns.iter().filter(|&&r| r >= agent_return_pct).count();
    returns.sort_by(f64::total_cmp);
    Chance {
        null_agents: agents,
        seed: Some(seed.to_string()),
        percentile: Some(below / f64::from(agents) * 100.0),
        p_value: Some((1 + at_or_above) as f64 / (f64::from(agents) + 1.0)),
        null_median_return_pct: quantile(&returns, 0.5),
        null_p95_return_pct: quantile(&returns, 0.95),
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(holding: usize) -> NullTrade {
        NullTrade {
            side: Side::Long,
            holding,
            size: 1.0,
            leverage: 1,
        }
    }

    #[test]
    fn arrangements_never_overlap_and_stay_inside_the_candles() {
        let trades = [t(3), t(1), t(5), t(2)];
        for i in 0..500 {
            let (order, entries) = arrange(42, i, &trades, 20).unwrap();
            assert_eq!(entries.len(), 4);
            let mut end = 0;
            for (trade, &e) in order.iter().zip(&entries) {
                assert!(e >= end, "{entries:?}");
                end = e + trade.holding;
            }
            assert!(end <= 19);
        }
        // no room: the trades hold 11 candles and the run has 11 (10 steps between closes)
        assert!(arrange(1, 0, &trades, 11).is_none());
        assert!(arrange(1, 0, &trades, 12).is_some());
    }

    #[test]
    fn every_split_of_the_flat_time_is_equally_likely() {
        // one trade of 1 candle over 4 candles: entries 0, 1, 2 each a third of the time
        let mut counts = [0u32; 3];
        for i in 0..30_000 {
            let (_, entries) = arrange(9, i, &[t(1)], 4).unwrap();
            counts[entries[0]] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
