//! Baseline agents that need no LLM, selected by model name: the offline default and the
//! yardstick results are compared with. Each decides from the context alone (current and previous
//! indicator values, the position), so it carries no state of its own to checkpoint.
//!
//! - `baseline/buy-and-hold`: long on the first candle, then hold.
//! - `baseline/sma-cross`: long when SMA10 crosses above SMA30, close when it crosses below.
//! - `baseline/rsi-reversion`: long when RSI14 < 30, close when RSI14 > 70.
//!
//! In monk mode, which requires a stop-loss, their entries carry a 2 % stop.

use crate::decision::{Action, Decision, Order, Reasoning};
use crate::engine::{Context, Side};
use crate::indicators::{IndicatorError, IndicatorSet};
use crate::rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BuyAndHold,
    SmaCross,
    RsiReversion,
}

impl Kind {
    pub const NAMES: [&'static str; 3] = [
        "baseline/buy-and-hold",
        "baseline/sma-cross",
        "baseline/rsi-reversion",
    ];

    /// The baseline a model name selects, if it is one.
    pub fn from_model(model: &str) -> Option<Self> {
        match model.trim() {
            "baseline/buy-and-hold" => Some(Self::BuyAndHold),
            "baseline/sma-cross" => Some(Self::SmaCross),
            "baseline/rsi-reversion" => Some(Self::RsiReversion),
            _ => None,
        }
    }

    /// Indicators the baseline reads; add them to the session's set.
    pub fn required_indicators(self) -> &'static [&'static str] {
        match self {
            Self::BuyAndHold => &[],
            Self::SmaCross => &["sma_10", "sma_30"],
            Self::RsiReversion => &["rsi_14"],
        }
    }
}

/// A baseline bound to the positions of its indicators in a session's set.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    kind: Kind,
    inputs: [usize; 2],
}

impl Baseline {
    /// Binds `kind` to `set`, which must hold its [`Kind::required_indicators`].
    pub fn new(kind: Kind, set: &IndicatorSet) -> Result<Self, IndicatorError> {
        let mut inputs = [0; 2];
        for (slot, name) in inputs.iter_mut().zip(kind.required_indicators()) {
            *slot = set.position(name).ok_or_else(|| {
                IndicatorError::Unknown(format!("{name} (required by the baseline)"))
            })?;
        }
        Ok(Self { kind, inputs })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The decision for the context's candle.
    pub fn decide(&self, ctx: &Context<'_>) -> Decision {
        let side = ctx.position().map(|p| p.side);
        let entry = Order {
            stop_loss_pct: ctx
                .requires_stop_loss()
                .then_some(rules::SAFETY_DEFAULT_STOP_PCT),
            ..Order::default()
        };
        let say = |action, template: &'static str, a: f64, b: f64, confidence| {
            Decision::new(
                action,
                Reasoning::Baseline {
                    template,
                    values: [a, b, 0.0],
                },
                confidence,
                if action == Action::Long {
                    entry
                } else {
                    Order::default()
                },
            )
        };
        let values = ctx.indicators().values();
        let previous = ctx.indicators().previous();
        let close = ctx.candle().close;
        match self.kind {
            Kind::BuyAndHold => {
                if side.is_none() && ctx.trades_opened() == 0 {
                    say(
                        Action::Long,
                        "Buying at {} and holding to the end",
                        close,
                        0.0,
                        100,
                    )
                } else {
                    say(Action::Hold, "Holding; the price is {}", close, 0.0, 100)
                }
            }
            Kind::SmaCross => {
                let [f, s] = self.inputs;
                let (Some(fast), Some(slow)) = (values[f], values[s]) else {
                    return say(
                        Action::Hold,
                        "Waiting for SMA10 and SMA30 to warm up",
                        0.0,
                        0.0,
                        0,
                    );
                };
                let was_above = previous[f].zip(previous[s]).map(|(pf, ps)| pf > ps);
                let above = fast > slow;
                match (was_above, above, side) {
                    (Some(false), true, None) => say(
                        Action::Long,
                        "SMA10 {} crossed above SMA30 {}: going long",
                        fast,
                        slow,
                        65,
                    ),
                    (Some(true), false, Some(Side::Long)) => say(
                        Action::Close,
                        "SMA10 {} crossed below SMA30 {}: closing the long",
                        fast,
                        slow,
                        65,
                    ),
                    (_, true, _) => say(
                        Action::Hold,
                        "SMA10 {} is above SMA30 {} with no new cross: holding",
                        fast,
                        slow,
                        50,
                    ),
                    (_, false, _) => say(
                        Action::Hold,
                        "SMA10 {} is below SMA30 {} with no new cross: holding",
                        fast,
                        slow,
                        50,
                    ),
                }
            }
            Kind::RsiReversion => {
                let Some(rsi) = values[self.inputs[0]] else {
                    return say(Action::Hold, "Waiting for RSI14 to warm up", 0.0, 0.0, 0);
                };
                match side {
                    None if rsi < 30.0 => say(
                        Action::Long,
                        "RSI14 {} is below 30 (oversold): going long",
                        rsi,
                        0.0,
                        60,
                    ),
                    Some(Side::Long) if rsi > 70.0 => say(
                        Action::Close,
                        "RSI14 {} is above 70 (overbought): closing the long",
                        rsi,
                        0.0,
                        60,
                    ),
                    _ => say(
                        Action::Hold,
                        "RSI14 {} gives no signal: holding",
                        rsi,
                        0.0,
                        50,
                    ),
                }
            }
        }
    }
}
