//! The trading rules, one place per number.

/// Leverage bounds of any order.
pub const MAX_LEVERAGE: u8 = 5;
/// Stop-loss distance bounds, percent of the entry price.
pub const MIN_STOP_PCT: f64 = 0.1;
pub const MAX_STOP_PCT: f64 = 50.0;
/// Take-profit distance bounds, percent of the entry price.
pub const MIN_TAKE_PROFIT_PCT: f64 = 0.1;
pub const MAX_TAKE_PROFIT_PCT: f64 = 1000.0;
/// A short's take-profit lies below the entry: at most this far, so its price stays positive.
pub const MAX_SHORT_TAKE_PROFIT_PCT: f64 = 99.0;
/// Smallest fraction of equity an order may commit.
pub const MIN_SIZE: f64 = 0.01;

/// Default fee per side, basis points.
pub const DEFAULT_FEE_BPS: f64 = 10.0;
/// Default slippage per fill, basis points, always against the trader.
pub const DEFAULT_SLIPPAGE_BPS: f64 = 5.0;

/// Maintenance margin: a position is liquidated when its margin plus unrealised PnL falls to this
/// fraction of its notional value.
pub const MAINTENANCE_MARGIN: f64 = 0.005;

/// Monk mode risks at most this fraction of equity between entry and stop-loss.
pub const MONK_RISK_FRACTION: f64 = 0.01;
/// Monk mode opens at most one trade per this much candle time.
pub const MONK_COOLDOWN_MS: i64 = 4 * 3_600_000;

/// Safety mode's stop-loss when an order has none, percent.
pub const SAFETY_DEFAULT_STOP_PCT: f64 = 2.0;
/// Safety mode caps the loss of any trade at the stop to this fraction of equity.
pub const SAFETY_MAX_LOSS_FRACTION: f64 = 0.02;
