//! The session events a step produces, built from the engine (the realtime contract in the
//! README).

use chrono::{DateTime, SecondsFormat};
use engine::{Action, Applied, Candle, Decision, Engine, Position, Trade};
use realtime::events::{
    AiDecision, CandleData, Event, PositionClosed, PositionOpened, Progress, StatsUpdate,
};

/// A candle time (epoch ms) as RFC 3339, to the second.
pub fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The live figures after the last candle (`stats_update`, the session's `stats`).
pub fn stats_of(engine: &Engine) -> StatsUpdate {
    let m = engine.metrics();
    StatsUpdate {
        equity: m.final_equity,
        total_return_pct: m.total_return_pct,
        total_trades: m.total_trades,
        win_rate_pct: m.win_rate_pct,
        max_drawdown_pct: m.max_drawdown_pct,
    }
}

/// A position as `position_opened` says it (also the session's `position`).
pub fn opened(p: &Position) -> PositionOpened {
    PositionOpened {
        trade_no: p.trade_no,
        side: p.side.as_str().into(),
        time: rfc3339(p.entry_time),
        entry_price: p.entry_price,
        quantity: p.quantity,
        leverage: p.leverage,
        stop_loss: p.stop_loss,
        take_profit: p.take_profit,
    }
}

pub fn closed(t: &Trade) -> Event {
    Event::PositionClosed(PositionClosed {
        trade_no: t.trade_no,
        side: t.side.as_str().into(),
        time: rfc3339(t.exit_time),
        entry_price: t.entry_price,
        exit_price: t.exit_price,
        pnl: t.pnl,
        pnl_pct: t.pnl_pct,
        exit_type: t.exit_type.as_str().into(),
    })
}

/// The events of candle `index` of `total` (`None`: a forward session) once its decision is
/// applied: the candle with its indicator values and the exchange's missing intervals before it,
/// the decision (every candle of a model agent, a baseline's only when it acts), the trades it
/// closed and the position it opened.
#[allow(clippy::too_many_arguments)]
pub fn of_candle(
    engine: &Engine,
    candle: Candle,
    index: i64,
    total: Option<i64>,
    gap_before: i64,
    decision: &Decision,
    applied: &Applied,
    is_model: bool,
) -> Vec<Event> {
    let indicators = engine.indicators();
    let mut events = vec![Event::Candle(CandleData {
        time: rfc3339(candle.time),
        open: candle.open,
        high: candle.high,
        low: candle.low,
        close: candle.close,
        volume: candle.volume,
        indicators: indicators
            .names()
            .iter()
            .cloned()
            .zip(indicators.values().iter().copied())
            .collect(),
        progress: Progress {
            index: index as u64,
            total: total.map(|t| t.max(0) as u64),
        },
        gap_before: gap_before.max(0) as u64,
    })];
    if is_model || applied.action != Action::Hold {
        events.push(Event::AiDecision(AiDecision {
            index: index as u64,
            action: applied.action.as_str().into(),
            confidence: decision.confidence,
            reasoning: decision.reasoning.text().into_owned(),
            notes: applied.notes.clone(),
        }));
    }
    events.extend(applied.closed.iter().map(closed));
    if let Some(p) = &applied.opened {
        events.push(Event::PositionOpened(opened(p)));
    }
    events
}
