//! Performance metrics, accumulated in O(1) per candle and per trade so the checkpoint stays
//! small (the equity curve is downsampled as it grows).
//!
//! Formulas (`e_t`: equity at the close of candle t after its decision, marked at what the open
//! position would fetch; `e_{-1}` the initial capital; `r_t = e_t / e_{t-1} - 1`; `N` candles;
//! `P` candles per 365-day year of the timeframe):
//!
//! - total return % = `(e_final / capital - 1) * 100`
//! - buy & hold return % = `(close_last / close_first - 1) * 100` over the same candles
//! - max drawdown % = `max_t (peak_t - e_t) / peak_t * 100`, `peak_t = max(capital, e_0..e_t)`
//! - win rate % = `wins / trades * 100`; a trade wins when its net PnL is > 0 (zero is a loss)
//! - profit factor = `sum(winning PnL) / |sum(losing PnL)|` (none without losses)
//! - expectancy = `sum(PnL) / trades`; average win / loss; largest win / loss (net PnL)
//! - average trade duration = mean of `exit_time - entry_time`, in hours
//! - exposure % = candles ending with an open position / `N` * 100
//! - Sharpe = `mean(r) / stdev(r) * sqrt(P)` (sample deviation, risk-free 0)
//! - Sortino = `mean(r) / sqrt(sum(min(r, 0)^2) / N) * sqrt(P)`
//! - CAGR % = `((e_final / capital)^(1 / Y) - 1) * 100` with `Y` the elapsed candle time in
//!   365-day years (first candle's open to last candle's close, gaps included); Calmar =
//!   `CAGR % / max drawdown %`. Both are `None` for a span shorter than 30 days, where an
//!   annualised figure says nothing.
//!
//! A ratio with too few points or a zero denominator is `None`, never infinity.

use serde::{Deserialize, Serialize};

use crate::Timeframe;
use crate::engine::Trade;

/// Most points of the equity curve.
pub const MAX_CURVE_POINTS: usize = 1000;

/// Shortest span of candle time with an annualised return (CAGR, Calmar).
pub const MIN_ANNUALISED_SPAN_MS: i64 = 30 * DAY_MS;
const DAY_MS: i64 = 86_400_000;
const YEAR_MS: f64 = 365.0 * DAY_MS as f64;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EquityPoint {
    pub time: i64,
    pub equity: f64,
}

/// The equity curve, keeping every `stride`-th candle; when it exceeds
/// [`MAX_CURVE_POINTS`] it drops every other point and doubles the stride. Not part of a
/// checkpoint: whoever checkpoints the engine keeps every candle's [`Stats::last_point`] and
/// gives them back with [`Stats::rebuild_curve`] before the metrics are final.
#[derive(Debug, Clone, PartialEq)]
struct Curve {
    stride: u64,
    seen: u64,
    points: Vec<EquityPoint>,
}

impl Default for Curve {
    fn default() -> Self {
        Self {
            stride: 1,
            seen: 0,
            points: Vec::new(),
        }
    }
}

impl Curve {
    fn push(&mut self, point: EquityPoint) {
        if self.seen.is_multiple_of(self.stride) {
            self.points.push(point);
            if self.points.len() > MAX_CURVE_POINTS {
                let mut i = 0;
                self.points.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
        }
        self.seen += 1;
    }
}

/// The running sums behind [`Metrics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    capital: f64,
    candles: u64,
    exposed: u64,
    last_equity: f64,
    peak: f64,
    max_drawdown: f64,
    /// Welford's mean and sum of squared deviations of per-candle returns.
    mean: f64,
    m2: f64,
    downside_sq: f64,
    first_close: Option<f64>,
    last_close: f64,
    first_time: Option<i64>,
    last_time: i64,
    trades: u32,
    wins: u32,
    gross_profit: f64,
    gross_loss: f64,
    pnl_sum: f64,
    largest_win: Option<f64>,
    largest_loss: Option<f64>,
    duration_ms: i64,
    fees: f64,
    #[serde(skip)]
    curve: Curve,
}

impl Stats {
    pub fn new(capital: f64) -> Self {
        Self {
            capital,
            candles: 0,
            exposed: 0,
            last_equity: capital,
            peak: capital,
            max_drawdown: 0.0,
            mean: 0.0,
            m2: 0.0,
            downside_sq: 0.0,
            first_close: None,
            last_close: 0.0,
            first_time: None,
            last_time: 0,
            trades: 0,
            wins: 0,
            gross_profit: 0.0,
            gross_loss: 0.0,
            pnl_sum: 0.0,
            largest_win: None,
            largest_loss: None,
            duration_ms: 0,
            fees: 0.0,
            curve: Curve::default(),
        }
    }

    /// The last candle's equity point (its open time and the equity at its close), once a
    /// candle was recorded: what a checkpointing caller keeps per candle.
    pub fn last_point(&self) -> Option<EquityPoint> {
        (self.candles > 0).then_some(EquityPoint {
            time: self.last_time,
            equity: self.last_equity,
        })
    }

    /// Replaces the equity curve with `points` (every candle's, in order), downsampled exactly
    /// as recording them one by one would have: bit for bit the curve of an uninterrupted run.
    pub fn rebuild_curve(&mut self, points: impl IntoIterator<Item = EquityPoint>) {
        self.curve = Curve::default();
        for point in points {
            self.curve.push(point);
        }
    }

    pub(crate) fn record_candle(&mut self, time: i64, close: f64, equity: f64, exposed: bool) {
        let r = if self.last_equity > 0.0 {
            equity / self.last_equity - 1.0
        } else {
            0.0
        };
        self.candles += 1;
        let delta = r - self.mean;
        self.mean += delta / self.candles as f64;
        self.m2 += delta * (r - self.mean);
        if r < 0.0 {
            self.downside_sq += r * r;
        }
        self.last_equity = equity;
        if equity > self.peak {
            self.peak = equity;
        } else if self.peak > 0.0 {
            let dd = (self.peak - equity) / self.peak;
            if dd > self.max_drawdown {
                self.max_drawdown = dd;
            }
        }
        if exposed {
            self.exposed += 1;
        }
        self.first_close.get_or_insert(close);
        self.last_close = close;
        self.first_time.get_or_insert(time);
        self.last_time = time;
        self.curve.push(EquityPoint { time, equity });
    }

    pub(crate) fn record_fee(&mut self, fee: f64) {
        self.fees += fee;
    }

    /// A closed trade and its exit fee.
    pub(crate) fn record_trade(&mut self, t: &Trade, exit_fee: f64) {
        self.fees += exit_fee;
        self.trades += 1;
        self.pnl_sum += t.pnl;
        if t.pnl > 0.0 {
            self.wins += 1;
            self.gross_profit += t.pnl;
            self.largest_win = Some(self.largest_win.map_or(t.pnl, |w| w.max(t.pnl)));
        } else {
            self.gross_loss -= t.pnl;
            self.largest_loss = Some(self.largest_loss.map_or(t.pnl, |l| l.min(t.pnl)));
        }
        self.duration_ms += t.exit_time - t.entry_time;
    }

    /// The metrics with `final_equity` as the session's last equity.
    pub fn metrics(&self, final_equity: f64, timeframe: Timeframe) -> Metrics {
        let n = self.candles as f64;
        let per_year = timeframe.candles_per_year();
        let trades = f64::from(self.trades);
        let losses = self.trades - self.wins;
        let positive = |x: f64| (x.is_finite() && x > 0.0).then_some(x);
        let stdev = (self.candles >= 2)
            .then(|| (self.m2 / (n - 1.0)).sqrt())
            .and_then(positive);
        let downside = (self.candles >= 1)
            .then(|| (self.downside_sq / n).sqrt())
            .and_then(positive);
        let max_drawdown_pct = self.max_drawdown * 100.0;
        // elapsed candle time: from the first open to the last close
        let span_ms = self
            .first_time
            .map(|first| self.last_time - first + timeframe.millis())
            .filter(|&span| span >= MIN_ANNUALISED_SPAN_MS);
        let cagr_pct = span_ms
            .filter(|_| final_equity > 0.0)
            .map(|span| ((final_equity / self.capital).powf(YEAR_MS / span as f64) - 1.0) * 100.0)
            .filter(|x| x.is_finite());
        let mut equity_curve = self.curve.points.clone();
        if self.candles > 0 {
            let last = EquityPoint {
                time: self.last_time,
                equity: final_equity,
            };
            let full = equity_curve.len() >= MAX_CURVE_POINTS;
            match equity_curve.last_mut() {
                // the final point replaces the last kept one when it is the same candle or the
                // curve is full
                Some(p) if p.time == last.time || full => *p = last,
                _ => equity_curve.push(last),
            }
        }
        Metrics {
            initial_capital: self.capital,
            final_equity,
            total_return_pct: (final_equity / self.capital - 1.0) * 100.0,
            buy_hold_return_pct: self
                .first_close
                .map(|first| (self.last_close / first - 1.0) * 100.0),
            max_drawdown_pct,
            total_trades: self.trades,
            winning_trades: self.wins,
            losing_trades: losses,
            win_rate_pct: (self.trades > 0).then(|| f64::from(self.wins) / trades * 100.0),
            profit_factor: positive(self.gross_loss).map(|loss| self.gross_profit / loss),
            expectancy: (self.trades > 0).then(|| self.pnl_sum / trades),
            avg_win: (self.wins > 0).then(|| self.gross_profit / f64::from(self.wins)),
            avg_loss: (losses > 0).then(|| -self.gross_loss / f64::from(losses)),
            largest_win: self.largest_win,
            largest_loss: self.largest_loss,
            avg_trade_duration_hours: (self.trades > 0)
                .then(|| self.duration_ms as f64 / trades / 3_600_000.0),
            exposure_pct: if self.candles > 0 {
                self.exposed as f64 / n * 100.0
            } else {
                0.0
            },
            sharpe_ratio: stdev.map(|sd| self.mean / sd * per_year.sqrt()),
            sortino_ratio: downside.map(|dd| self.mean / dd * per_year.sqrt()),
            cagr_pct,
            calmar_ratio: cagr_pct.zip(positive(max_drawdown_pct)).map(|(c, d)| c / d),
            fees_paid: self.fees,
            candles: self.candles,
            equity_curve,
        }
    }
}

/// The result of a session. See the module documentation for each formula.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub initial_capital: f64,
    pub final_equity: f64,
    pub total_return_pct: f64,
    pub buy_hold_return_pct: Option<f64>,
    pub max_drawdown_pct: f64,
    pub total_trades: u32,
    pub winning_trades: u32,
    pub losing_trades: u32,
    pub win_rate_pct: Option<f64>,
    pub profit_factor: Option<f64>,
    pub expectancy: Option<f64>,
    pub avg_win: Option<f64>,
    pub avg_loss: Option<f64>,
    pub largest_win: Option<f64>,
    pub largest_loss: Option<f64>,
    pub avg_trade_duration_hours: Option<f64>,
    pub exposure_pct: f64,
    pub sharpe_ratio: Option<f64>,
    pub sortino_ratio: Option<f64>,
    pub cagr_pct: Option<f64>,
    pub calmar_ratio: Option<f64>,
    pub fees_paid: f64,
    pub candles: u64,
    pub equity_curve: Vec<EquityPoint>,
}

impl Metrics {
    /// The metrics as a JSON object without the equity curve: what a result, its ledger's seal
    /// and its certificate state.
    pub fn summary_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(m) = value.as_object_mut() {
            m.remove("equity_curve");
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_never_exceeds_1000_points_and_keeps_the_ends() {
        let mut stats = Stats::new(100.0);
        for i in 0..45_024i64 {
            stats.record_candle(i, 1.0, 100.0 + (i % 7) as f64, false);
        }
        let m = stats.metrics(123.0, Timeframe::H1);
        assert!(m.equity_curve.len() <= MAX_CURVE_POINTS);
        assert!(m.equity_curve.len() > MAX_CURVE_POINTS / 2);
        assert_eq!(m.equity_curve[0].time, 0);
        assert_eq!(m.equity_curve.last().unwrap().time, 45_023);
        assert_eq!(m.equity_curve.last().unwrap().equity, 123.0);
    }

    #[test]
    fn cagr_and_calmar_use_elapsed_time_and_need_30_days() {
        const HOUR: i64 = 3_600_000;
        // 29 days of hourly candles: too short to annualise
        let mut stats = Stats::new(100.0);
        for i in 0..(29 * 24) {
            stats.record_candle(i * HOUR, 1.0, 100.0 + (i % 3) as f64, true);
        }
        let m = stats.metrics(110.0, Timeframe::H1);
        assert_eq!(m.cagr_pct, None);
        assert_eq!(m.calmar_ratio, None);

        // 100 candles spread over 365 days (a gap of ~361 days): one year elapsed, not 100 hours
        let mut stats = Stats::new(100.0);
        for i in 0..99 {
            stats.record_candle(i * HOUR, 1.0, 100.0, false);
        }
        stats.record_candle(365 * DAY_MS - HOUR, 1.0, 90.0, false);
        let m = stats.metrics(110.0, Timeframe::H1);
        assert!(
            (m.cagr_pct.unwrap() - 10.0).abs() < 1e-9,
            "{:?}",
            m.cagr_pct
        );
        assert!((m.calmar_ratio.unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn known_series_give_known_ratios() {
        let mut stats = Stats::new(100.0);
        // +10 %, -10 %, +10 %
        for (i, e) in [110.0, 99.0, 108.9].into_iter().enumerate() {
            stats.record_candle(i as i64, 1.0 + i as f64, e, true);
        }
        let m = stats.metrics(108.9, Timeframe::D1);
        assert!((m.total_return_pct - 8.9).abs() < 1e-9);
        assert!((m.max_drawdown_pct - 10.0).abs() < 1e-9);
        assert_eq!(m.buy_hold_return_pct, Some(200.0));
        assert_eq!(m.exposure_pct, 100.0);
        // returns 0.1, -0.1, 0.1: mean 1/30, sample sd sqrt(0.04/3 * ... )
        let mean = 0.1 / 3.0;
        let sd = ((2.0 * (0.1f64 - mean).powi(2) + (-0.1 - mean).powi(2)) / 2.0).sqrt();
        let sharpe = mean / sd * 365f64.sqrt();
        assert!((m.sharpe_ratio.unwrap() - sharpe).abs() < 1e-9);
        let sortino = mean / (0.01f64 / 3.0).sqrt() * 365f64.sqrt();
        assert!((m.sortino_ratio.unwrap() - sortino).abs() < 1e-9);
        assert_eq!(m.win_rate_pct, None);
        assert_eq!(m.profit_factor, None);
    }
}
