//! The engine's cycle (DESIGN section 5a): `observe(candle)` updates the indicators, settles
//! stop-loss, take-profit and liquidation on the candle's range and returns the decision
//! [`Context`]; `apply(decision)` validates the decision against the rules, fills it at the
//! candle's close and updates the portfolio. The decision itself is made outside, between the two.
//!
//! Portfolio rules: one position at a time, long or short. Fills pay the fee on their notional and
//! slippage against the trader. Equity is marked at each close at what the position would fetch if
//! closed there (fees and slippage included), so closing at the session's end changes nothing.

use serde::{Deserialize, Serialize};

use crate::decision::{Action, Decision, Order};
use crate::indicators::{IndicatorError, IndicatorSet};
use crate::metrics::{Metrics, Stats};
use crate::rules;
use crate::{Candle, Timeframe};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Disciplined: 1 % risk at the stop, stop-loss required, one trade per 4 h; prompts hide dates,
    /// symbol and absolute prices.
    Monk,
    /// Free: the order's size; prompts show dates and the asset.
    Omni,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "monk" => Some(Self::Monk),
            "omni" => Some(Self::Omni),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Long,
    Short,
}

impl Side {
    #[inline]
    fn sign(self) -> f64 {
        match self {
            Self::Long => 1.0,
            Self::Short => -1.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Long => "long",
            Self::Short => "short",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitType {
    Signal,
    StopLoss,
    TakeProfit,
    Liquidation,
    SessionEnd,
}

impl ExitType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signal => "signal",
            Self::StopLoss => "stop_loss",
            Self::TakeProfit => "take_profit",
            Self::Liquidation => "liquidation",
            Self::SessionEnd => "session_end",
        }
    }
}

/// How a session trades.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    pub asset: String,
    pub timeframe: Timeframe,
    pub initial_capital: f64,
    pub mode: Mode,
    /// Forces a stop-loss and caps the loss of any trade at the stop to 2 % of equity.
    pub safety: bool,
    /// The user's maximum leverage (1..=5).
    pub max_leverage: u8,
    /// When false every order is filled at leverage 1.
    pub allow_leverage: bool,
    pub fee_bps: f64,
    pub slippage_bps: f64,
    /// Indicator names (see [`crate::indicators`]).
    pub indicators: Vec<String>,
}

impl EngineConfig {
    /// Defaults: capital 10,000, omni, safety off, leverage 1, default fees and slippage, the
    /// default indicator set.
    pub fn new(asset: impl Into<String>, timeframe: Timeframe) -> Self {
        Self {
            asset: asset.into(),
            timeframe,
            initial_capital: 10_000.0,
            mode: Mode::Omni,
            safety: false,
            max_leverage: 1,
            allow_leverage: true,
            fee_bps: rules::DEFAULT_FEE_BPS,
            slippage_bps: rules::DEFAULT_SLIPPAGE_BPS,
            indicators: crate::indicators::DEFAULT_SET
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::Config(m.to_owned()));
        if !(self.initial_capital.is_finite() && self.initial_capital > 0.0) {
            return bad("initial capital must be a positive number");
        }
        if !(1..=rules::MAX_LEVERAGE).contains(&self.max_leverage) {
            return bad("max leverage must be between 1 and 5");
        }
        if !(self.fee_bps.is_finite() && (0.0..=1000.0).contains(&self.fee_bps)) {
            return bad("fee must be between 0 and 1000 bps");
        }
        if !(self.slippage_bps.is_finite() && (0.0..=1000.0).contains(&self.slippage_bps)) {
            return bad("slippage must be between 0 and 1000 bps");
        }
        Ok(())
    }
}

/// The open position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub trade_no: u32,
    pub side: Side,
    pub entry_time: i64,
    pub entry_index: u64,
    /// Fill price, slippage included.
    pub entry_price: f64,
    pub quantity: f64,
    pub leverage: u8,
    /// Equity committed: notional / leverage.
    pub margin: f64,
    pub entry_fee: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub liquidation_price: f64,
}

/// A closed trade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub trade_no: u32,
    pub side: Side,
    pub entry_time: i64,
    pub entry_index: u64,
    pub entry_price: f64,
    pub exit_time: i64,
    pub exit_index: u64,
    pub exit_price: f64,
    pub quantity: f64,
    pub leverage: u8,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// Net of both fees.
    pub pnl: f64,
    /// `pnl / margin * 100`.
    pub pnl_pct: f64,
    /// Entry plus exit fee.
    pub fees: f64,
    pub exit_type: ExitType,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Indicator(#[from] IndicatorError),
    #[error("invalid candle at {time}: {reason}")]
    Candle { time: i64, reason: &'static str },
    #[error("apply() needs a candle: call observe() first")]
    NoCandle,
    #[error("the session is finished")]
    Finished,
    #[error("unreadable checkpoint: {0}")]
    Checkpoint(String),
}

/// What a candle did once its decision was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// What was actually done (a refused action is a hold).
    pub action: Action,
    /// Why something was refused, clamped or adjusted.
    pub notes: Vec<String>,
    /// Every trade the candle closed, in order: a stop-loss, take-profit or liquidation on its
    /// range first, then the decision's close (a close, or the first half of a reversal).
    pub closed: Vec<Trade>,
    /// The position opened by the decision.
    pub opened: Option<Position>,
}

/// The checkpoint format this engine writes and reads (see [`Engine::checkpoint`]). Bump it with
/// any change to the serialised state: an older checkpoint is then refused, never misread.
pub const CHECKPOINT_VERSION: u32 = 3;

/// The whole engine state; `Clone` and serialisable: the checkpoint is this value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engine {
    config: EngineConfig,
    indicators: IndicatorSet,
    /// Cash: capital plus realised PnL minus fees.
    balance: f64,
    position: Option<Position>,
    candle: Option<Candle>,
    /// Candles observed so far.
    observed: u64,
    first_close: Option<f64>,
    last_open_time: Option<i64>,
    trades: u32,
    /// The trade the current candle's range closed (stop-loss, take-profit, liquidation).
    range_exit: Option<Trade>,
    /// A candle was observed and has not had its decision yet.
    awaiting: bool,
    finished: bool,
    stats: Stats,
    /// Open time of the last warm-up candle (see [`Engine::warm`]).
    #[serde(default)]
    warmed_until: Option<i64>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        config.validate()?;
        let indicators = IndicatorSet::new(&config.indicators)?;
        Ok(Self {
            balance: config.initial_capital,
            stats: Stats::new(config.initial_capital),
            config,
            indicators,
            position: None,
            candle: None,
            observed: 0,
            first_close: None,
            last_open_time: None,
            trades: 0,
            range_exit: None,
            awaiting: false,
            finished: false,
            warmed_until: None,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The session's indicator set (a baseline binds to it before the first candle).
    pub fn indicators(&self) -> &IndicatorSet {
        &self.indicators
    }

    /// A candle the engine may take next: finite, consistent values, after every candle seen.
    #[inline(always)]
    fn check(&self, candle: &Candle) -> Result<(), EngineError> {
        let invalid = |reason| EngineError::Candle {
            time: candle.time,
            reason,
        };
        let values = [
            candle.open,
            candle.high,
            candle.low,
            candle.close,
            candle.volume,
        ];
        if values.iter().any(|v| !v.is_finite()) {
            return Err(invalid("non-finite value"));
        }
        if candle.low <= 0.0 || candle.volume < 0.0 {
            return Err(invalid("prices must be positive and volume non-negative"));
        }
        if candle.low > candle.open.min(candle.close) || candle.high < candle.open.max(candle.close)
        {
            return Err(invalid("low/high do not contain open/close"));
        }
        let last = self.candle.map(|c| c.time).or(self.warmed_until);
        if last.is_some_and(|prev| candle.time <= prev) {
            return Err(invalid("candle times must increase"));
        }
        Ok(())
    }

    /// A warm-up candle: it updates the indicators only (no decision, fill, stop-loss check,
    /// statistic, curve point or candle count), so that the first observed candle has defined
    /// indicators and previous values. Only before the first observed candle, in time order.
    pub fn warm(&mut self, candle: Candle) -> Result<(), EngineError> {
        if self.finished {
            return Err(EngineError::Finished);
        }
        if self.observed > 0 {
            return Err(EngineError::Candle {
                time: candle.time,
                reason: "warm-up candles come before the first observed candle",
            });
        }
        self.check(&candle)?;
        self.indicators.update(&candle);
        self.warmed_until = Some(candle.time);
        Ok(())
    }

    /// Step 1 of the cycle: a new closed candle. A candle left without a decision counts as HOLD.
    #[inline(always)]
    pub fn observe(&mut self, candle: Candle) -> Result<Context<'_>, EngineError> {
        if self.finished {
            return Err(EngineError::Finished);
        }
        self.check(&candle)?;
        if self.awaiting {
            // the previous candle had no decision: a HOLD; its range exit, if any, stays pending
            // so that the next `apply` (or `finish`) still returns it
            self.settle_candle();
        } else {
            self.range_exit = None;
        }
        // counted first: a range exit happens on this candle and carries its index
        self.observed += 1;
        if self.position.is_some() {
            self.check_range_exits(&candle);
        }
        self.indicators.update(&candle);
        self.first_close.get_or_insert(candle.close);
        self.candle = Some(candle);
        self.awaiting = true;
        Ok(Context {
            engine: self,
            candle,
        })
    }

    /// The context of the current candle (as `observe` returned it).
    pub fn context(&self) -> Option<Context<'_>> {
        self.candle.map(|candle| Context {
            engine: self,
            candle,
        })
    }

    /// The whole cycle for one candle with a synchronous decider (a baseline, a replay): observe,
    /// decide, apply. The returned [`Applied::closed`] holds every trade the candle closed. The
    /// CLI, the benchmark and the tests drive the engine with it; an asynchronous decider (a model
    /// call) calls [`Engine::observe`] and [`Engine::apply`] itself, which return the same. (The
    /// decision is the decider's to keep: returning it too would copy it on every candle.)
    #[inline]
    pub fn step(
        &mut self,
        candle: Candle,
        decide: impl FnOnce(&Context<'_>) -> Decision,
    ) -> Result<Applied, EngineError> {
        let ctx = self.observe(candle)?;
        // a reference to the temporary: the decision is applied where the decider built it,
        // never moved (a 176-byte copy per candle showed in the benchmark)
        let decision = &decide(&ctx);
        self.apply(decision)
    }

    /// The engine as a versioned checkpoint (`{"version": .., "engine": ..}`), for storage as
    /// JSON between steps.
    pub fn checkpoint(&self) -> Result<serde_json::Value, EngineError> {
        Ok(serde_json::json!({
            "version": CHECKPOINT_VERSION,
            "engine": serde_json::to_value(self).map_err(|e| EngineError::Checkpoint(e.to_string()))?,
        }))
    }

    /// Restores an engine from [`Engine::checkpoint`]'s value. A checkpoint of another format
    /// version is refused with both versions named.
    pub fn restore(checkpoint: &serde_json::Value) -> Result<Self, EngineError> {
        let version = checkpoint
            .get("version")
            .and_then(serde_json::Value::as_u64);
        match version {
            Some(v) if v == u64::from(CHECKPOINT_VERSION) => {}
            Some(v) => {
                return Err(EngineError::Checkpoint(format!(
                    "format version {v}, this engine reads version {CHECKPOINT_VERSION}"
                )));
            }
            None => {
                return Err(EngineError::Checkpoint(format!(
                    "no format version (this engine reads version {CHECKPOINT_VERSION})"
                )));
            }
        }
        let engine = checkpoint
            .get("engine")
            .ok_or_else(|| EngineError::Checkpoint("no engine state".into()))?;
        Self::deserialize(engine).map_err(|e| EngineError::Checkpoint(e.to_string()))
    }

    /// Step 2 of the cycle: the decision for the observed candle, filled at its close.
    #[inline(always)]
    pub fn apply(&mut self, decision: &Decision) -> Result<Applied, EngineError> {
        self.apply_order(decision.action, &decision.order)
    }

    /// `apply_order` after closing any open position at the close (a `signal` exit): so a new
    /// position opens even on the side already held (a random agent of the evidence placing a
    /// trade right where its previous one ends).
    pub fn apply_fresh(&mut self, action: Action, order: &Order) -> Result<Applied, EngineError> {
        if self.finished {
            return Err(EngineError::Finished);
        }
        let candle = self
            .candle
            .filter(|_| self.awaiting)
            .ok_or(EngineError::NoCandle)?;
        let mut closed: Vec<Trade> = self.range_exit.take().into_iter().collect();
        let signal_close = self.position.is_some();
        if signal_close {
            closed.extend(self.close(&candle, candle.close, ExitType::Signal));
        }
        let mut applied = self.apply_order(action, order)?;
        closed.append(&mut applied.closed);
        applied.closed = closed;
        if signal_close && applied.action == Action::Hold {
            applied.action = Action::Close;
        }
        Ok(applied)
    }

    /// `apply` for an action and order without the rest of a decision.
    #[inline(always)]
    pub fn apply_order(&mut self, action: Action, order: &Order) -> Result<Applied, EngineError> {
        if self.finished {
            return Err(EngineError::Finished);
        }
        if !self.awaiting {
            return Err(EngineError::NoCandle);
        }
        let candle = self.candle.ok_or(EngineError::NoCandle)?;
        let mut notes = Vec::new();
        let mut closed: Vec<Trade> = Vec::new();
        if self.range_exit.is_some() {
            closed.extend(self.range_exit.take());
        }
        let mut opened = None;
        let mut signal_close = false;
        let side = match action {
            Action::Hold => None,
            Action::Close => {
                if self.position.is_some() {
                    closed.extend(self.close(&candle, candle.close, ExitType::Signal));
                    signal_close = true;
                } else {
                    notes.push("close ignored: no open position".into());
                }
                None
            }
            Action::Long => Some(Side::Long),
            Action::Short => Some(Side::Short),
        };
        if let Some(side) = side {
            match self.position.as_ref().map(|p| p.side) {
                Some(current) if current == side => {
                    notes.push(format!(
                        "{} ignored: already {}",
                        side.as_str(),
                        side.as_str()
                    ));
                }
                Some(_) => {
                    closed.extend(self.close(&candle, candle.close, ExitType::Signal));
                    signal_close = true;
                    opened = self.open(&candle, side, order, &mut notes);
                }
                None => opened = self.open(&candle, side, order, &mut notes),
            }
        }
        let action = match (&opened, signal_close) {
            (Some(p), _) => match p.side {
                Side::Long => Action::Long,
                Side::Short => Action::Short,
            },
            (None, true) => Action::Close,
            (None, false) => Action::Hold,
        };
        self.settle_candle();
        Ok(Applied {
            action,
            notes,
            closed,
            opened,
        })
    }

    /// Ends the session: a pending decision counts as HOLD, an open position closes at the last
    /// close (`session_end`), and the metrics are computed. Returns the trades this closed: a
    /// range exit not yet returned by `apply`, then the `session_end` close.
    pub fn finish(&mut self) -> Result<(Vec<Trade>, Metrics), EngineError> {
        if self.finished {
            return Err(EngineError::Finished);
        }
        if self.awaiting {
            self.settle_candle();
        }
        let mut closed: Vec<Trade> = self.range_exit.take().into_iter().collect();
        if let Some(c) = self.candle.filter(|_| self.position.is_some()) {
            closed.extend(self.close(&c, c.close, ExitType::SessionEnd));
        }
        self.finished = true;
        let metrics = self.stats.metrics(self.balance, self.config.timeframe);
        Ok((closed, metrics))
    }

    /// The open position, if any.
    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    /// The last decided candle's equity point (see [`Stats::last_point`]): a checkpointing
    /// caller stores one per candle, since the checkpoint leaves the equity curve out.
    pub fn last_point(&self) -> Option<crate::metrics::EquityPoint> {
        self.stats.last_point()
    }

    /// Gives a restored engine every candle's equity point back (see [`Stats::rebuild_curve`])
    /// before [`Engine::finish`], so its metrics carry the run's whole curve.
    pub fn rebuild_curve(&mut self, points: impl IntoIterator<Item = crate::metrics::EquityPoint>) {
        self.stats.rebuild_curve(points);
    }

    /// Metrics so far (for live stats), as if the session ended now at the last close.
    pub fn metrics(&self) -> Metrics {
        self.stats.metrics(self.equity(), self.config.timeframe)
    }

    /// Equity: balance plus what the open position would fetch if closed at the last close.
    pub fn equity(&self) -> f64 {
        match (&self.position, self.candle) {
            (Some(p), Some(c)) => {
                let (_, gross, fee) = self.exit_values(p, c.close, false);
                // the same expression as closing, so closing at the last close changes no bit
                self.balance + (gross - fee)
            }
            _ => self.balance,
        }
    }

    fn settle_candle(&mut self) {
        self.awaiting = false;
        if let Some(c) = self.candle {
            let equity = self.equity();
            self.stats
                .record_candle(c.time, c.close, equity, self.position.is_some());
        }
    }

    #[inline]
    fn slip(&self) -> f64 {
        self.config.slippage_bps / 10_000.0
    }

    #[inline]
    fn fee_rate(&self) -> f64 {
        self.config.fee_bps / 10_000.0
    }

    /// (fill price, gross PnL, exit fee) of closing `p` at `price`.
    fn exit_values(&self, p: &Position, price: f64, liquidation: bool) -> (f64, f64, f64) {
        let fill = price * (1.0 - p.side.sign() * self.slip());
        let gross = if liquidation {
            // a liquidation costs the whole margin (the maintenance remainder is the exchange's
            // liquidation fee), never more, even through a gap
            -p.margin
        } else {
            (fill - p.entry_price) * p.quantity * p.side.sign()
        };
        (fill, gross, fill * p.quantity * self.fee_rate())
    }

    fn close(&mut self, c: &Candle, price: f64, exit_type: ExitType) -> Option<Trade> {
        let p = self.position.take()?;
        let (fill, gross, fee) = self.exit_values(&p, price, exit_type == ExitType::Liquidation);
        self.balance += gross - fee;
        let pnl = gross - p.entry_fee - fee;
        let trade = Trade {
            trade_no: p.trade_no,
            side: p.side,
            entry_time: p.entry_time,
            entry_index: p.entry_index,
            entry_price: p.entry_price,
            exit_time: c.time,
            exit_index: self.observed.saturating_sub(1),
            exit_price: fill,
            quantity: p.quantity,
            leverage: p.leverage,
            stop_loss: p.stop_loss,
            take_profit: p.take_profit,
            pnl,
            pnl_pct: pnl / p.margin * 100.0,
            fees: p.entry_fee + fee,
            exit_type,
        };
        self.stats.record_trade(&trade, fee);
        Some(trade)
    }

    /// Stop-loss, take-profit and liquidation on the candle's range. A gap through a level fills
    /// at the open; when the stop and the target are both touched, the stop is taken first.
    fn check_range_exits(&mut self, c: &Candle) {
        let Some(p) = &self.position else { return };
        let s = p.side.sign();
        // "beyond" in the adverse direction: below for a long, above for a short
        let adverse = |price: f64, level: f64| (price - level) * s <= 0.0;
        let favourable = |price: f64, level: f64| (price - level) * s >= 0.0;
        let (worst, best) = match p.side {
            Side::Long => (c.low, c.high),
            Side::Short => (c.high, c.low),
        };
        let liq = p.liquidation_price;
        let exit = if adverse(c.open, liq) {
            Some((c.open, ExitType::Liquidation))
        } else if p.stop_loss.is_some_and(|sl| adverse(c.open, sl)) {
            Some((c.open, ExitType::StopLoss))
        } else if p.take_profit.is_some_and(|tp| favourable(c.open, tp)) {
            Some((c.open, ExitType::TakeProfit))
        } else {
            let stop_hit = p.stop_loss.filter(|&sl| adverse(worst, sl));
            let liq_hit = adverse(worst, liq);
            match stop_hit {
                // the stop is reached first when it lies between the open and the liquidation
                Some(sl) if !liq_hit || (sl - liq) * s >= 0.0 => Some((sl, ExitType::StopLoss)),
                _ if liq_hit => Some((liq, ExitType::Liquidation)),
                _ => p
                    .take_profit
                    .filter(|&tp| favourable(best, tp))
                    .map(|tp| (tp, ExitType::TakeProfit)),
            }
        };
        if let Some((price, exit_type)) = exit {
            self.range_exit = self.close(c, price, exit_type);
        }
    }

    fn open(
        &mut self,
        c: &Candle,
        side: Side,
        order: &Order,
        notes: &mut Vec<String>,
    ) -> Option<Position> {
        let mode = self.config.mode;
        if mode == Mode::Monk
            && let Some(last) = self.last_open_time
            && c.time < last + rules::MONK_COOLDOWN_MS
        {
            notes.push(format!(
                "{} refused: monk mode opens at most one trade per 4 hours",
                side.as_str()
            ));
            return None;
        }
        let mut stop_pct = order.stop_loss_pct;
        if stop_pct.is_none() && self.config.safety {
            stop_pct = Some(rules::SAFETY_DEFAULT_STOP_PCT);
            notes.push(format!(
                "safety mode: stop-loss set to {}%",
                rules::SAFETY_DEFAULT_STOP_PCT
            ));
        }
        if mode == Mode::Monk && stop_pct.is_none() {
            notes.push(format!(
                "{} refused: monk mode requires a stop-loss",
                side.as_str()
            ));
            return None;
        }
        let stop_pct = stop_pct.map(|s| {
            clamp_noted(
                s,
                rules::MIN_STOP_PCT,
                rules::MAX_STOP_PCT,
                "stop_loss_pct",
                notes,
            )
        });
        // a short's target lies below its entry and can never reach zero
        let max_tp = match side {
            Side::Long => rules::MAX_TAKE_PROFIT_PCT,
            Side::Short => rules::MAX_SHORT_TAKE_PROFIT_PCT,
        };
        let tp_pct = order.take_profit_pct.map(|t| {
            clamp_noted(
                t,
                rules::MIN_TAKE_PROFIT_PCT,
                max_tp,
                "take_profit_pct",
                notes,
            )
        });

        let allowed = if self.config.allow_leverage {
            self.config.max_leverage
        } else {
            1
        };
        let requested = order.leverage.unwrap_or(1).max(1);
        let leverage = if requested > allowed {
            notes.push(format!("leverage {requested} capped to {allowed}"));
            allowed
        } else {
            requested
        };
        let lev = f64::from(leverage);

        let equity = self.balance;
        // margin + entry fee may use at most all of the equity
        let max_margin = equity / (1.0 + lev * self.fee_rate());
        let mut margin = match mode {
            Mode::Omni => {
                let size = order.size.unwrap_or(1.0);
                clamp_noted(size, rules::MIN_SIZE, 1.0, "size", notes) * max_margin
            }
            Mode::Monk => {
                if order.size.is_some() {
                    notes.push("size ignored: monk mode sizes by risk".into());
                }
                // risk 1 % of equity between entry and stop
                let stop = stop_pct.unwrap_or(rules::MAX_STOP_PCT) / 100.0;
                let margin = rules::MONK_RISK_FRACTION * equity / stop / lev;
                if margin > max_margin {
                    notes.push("monk sizing capped by equity".into());
                }
                margin.min(max_margin)
            }
        };
        if self.config.safety
            && let Some(stop) = stop_pct
        {
            let cap = rules::SAFETY_MAX_LOSS_FRACTION * equity / (stop / 100.0) / lev;
            if margin > cap {
                notes.push(
                    "safety mode: size reduced so the loss at the stop is at most 2% of equity"
                        .into(),
                );
                margin = cap;
            }
        }
        if !(margin.is_finite() && margin > 0.0 && equity > 0.0) {
            notes.push(format!("{} refused: no equity to commit", side.as_str()));
            return None;
        }
        let notional = margin * lev;
        let fill = c.close * (1.0 + side.sign() * self.slip());
        let quantity = notional / fill;
        let fee = notional * self.fee_rate();
        self.balance -= fee;
        let s = side.sign();
        let mm = rules::MAINTENANCE_MARGIN;
        self.trades += 1;
        self.last_open_time = Some(c.time);
        let position = Position {
            trade_no: self.trades,
            side,
            entry_time: c.time,
            entry_index: self.observed - 1,
            entry_price: fill,
            quantity,
            leverage,
            margin: notional / lev,
            entry_fee: fee,
            stop_loss: stop_pct.map(|p| fill * (1.0 - s * p / 100.0)),
            take_profit: tp_pct.map(|p| fill * (1.0 + s * p / 100.0)),
            liquidation_price: fill * (1.0 - s * (1.0 / lev - mm)),
        };
        self.stats.record_fee(fee);
        self.position = Some(position.clone());
        Some(position)
    }
}

fn clamp_noted(v: f64, lo: f64, hi: f64, name: &str, notes: &mut Vec<String>) -> f64 {
    if v.is_nan() {
        notes.push(format!("{name} unreadable; {hi} used"));
        return hi;
    }
    if v < lo || v > hi {
        let c = v.clamp(lo, hi);
        notes.push(format!("{name} {v} clamped to {c}"));
        c
    } else {
        v
    }
}

/// Everything the prompt and the rules need about the current candle: a read-only view of the
/// engine.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    engine: &'a Engine,
    candle: Candle,
}

impl<'a> Context<'a> {
    pub fn candle(&self) -> Candle {
        self.candle
    }

    /// 0-based index of the candle in the session.
    pub fn index(&self) -> u64 {
        self.engine.observed.saturating_sub(1)
    }

    pub fn config(&self) -> &'a EngineConfig {
        &self.engine.config
    }

    pub fn mode(&self) -> Mode {
        self.engine.config.mode
    }

    pub fn indicators(&self) -> &'a IndicatorSet {
        &self.engine.indicators
    }

    pub fn position(&self) -> Option<&'a Position> {
        self.engine.position.as_ref()
    }

    /// Unrealised PnL of the open position at the close, exit costs included.
    pub fn unrealized_pnl(&self) -> Option<f64> {
        let p = self.engine.position.as_ref()?;
        let (_, gross, fee) = self.engine.exit_values(p, self.candle.close, false);
        Some(gross - fee - p.entry_fee)
    }

    pub fn equity(&self) -> f64 {
        self.engine.equity()
    }

    pub fn balance(&self) -> f64 {
        self.engine.balance
    }

    /// The close of the session's first candle (monk prompts rebase prices on it).
    pub fn first_close(&self) -> f64 {
        self.engine.first_close.unwrap_or(1.0)
    }

    /// Trades opened so far.
    pub fn trades_opened(&self) -> u32 {
        self.engine.trades
    }

    /// The trade this candle's range closed, if any (stop-loss, take-profit, liquidation).
    pub fn range_exit(&self) -> Option<&'a Trade> {
        self.engine.range_exit.as_ref()
    }

    /// Whether an opening order must carry a stop-loss (monk mode).
    pub fn requires_stop_loss(&self) -> bool {
        self.engine.config.mode == Mode::Monk
    }

    /// In monk mode, the candle time from which a new trade may open.
    pub fn cooldown_until(&self) -> Option<i64> {
        match self.engine.config.mode {
            Mode::Monk => self
                .engine
                .last_open_time
                .map(|t| t + rules::MONK_COOLDOWN_MS)
                .filter(|&t| t > self.candle().time),
            Mode::Omni => None,
        }
    }
}
