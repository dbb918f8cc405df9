//! The fill rules on real BTCUSDT candles: fees and slippage, stop-loss and take-profit in one
//! candle, gaps, liquidation, monk sizing and cooldown, safety mode, leverage caps, refusals.

use crate::common::btc_1h;
use engine::engine::Applied;
use engine::{
    Action, Candle, Decision, Engine, EngineConfig, ExitType, Mode, Order, Side, Timeframe,
};

fn config() -> EngineConfig {
    let mut c = EngineConfig::new("BTCUSDT", Timeframe::H1);
    c.indicators = vec![];
    c
}

fn close_enough(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Feeds candles `range` with HOLD except `decide` at the first, returning what that did.
fn open_at(engine: &mut Engine, candle: Candle, action: Action, order: Order) -> Applied {
    engine.observe(candle).unwrap();
    engine.apply_order(action, &order).unwrap()
}

/// One candle with a HOLD decision, through the engine's driver; the trade its range closed.
fn hold(engine: &mut Engine, candle: Candle) -> Option<engine::Trade> {
    let mut closed = engine
        .step(candle, |_| Decision::hold("waiting"))
        .unwrap()
        .closed;
    assert!(closed.len() <= 1, "a hold closes at most the range exit");
    closed.pop()
}

#[test]
fn fees_and_slippage_are_paid_on_every_fill() {
    let data = btc_1h();
    let (a, b) = (data[100], data[101]);
    let mut engine = Engine::new(config()).unwrap();
    let opened = open_at(&mut engine, a, Action::Long, Order::default())
        .opened
        .unwrap();
    let (fee, slip) = (0.001, 0.0005);
    assert!(close_enough(opened.entry_price, a.close * (1.0 + slip)));
    let notional = opened.quantity * opened.entry_price;
    // margin + entry fee = all of the equity
    assert!(close_enough(notional * (1.0 + fee), 10_000.0));
    assert!(close_enough(opened.entry_fee, notional * fee));

    engine.observe(b).unwrap();
    let mut closed = engine
        .apply_order(Action::Close, &Order::default())
        .unwrap()
        .closed;
    assert_eq!(closed.len(), 1);
    let closed = closed.remove(0);
    assert_eq!(closed.exit_type, ExitType::Signal);
    let exit = b.close * (1.0 - slip);
    assert!(close_enough(closed.exit_price, exit));
    let exit_fee = exit * closed.quantity * fee;
    assert!(close_enough(closed.fees, opened.entry_fee + exit_fee));
    let pnl = (exit - opened.entry_price) * closed.quantity - opened.entry_fee - exit_fee;
    assert!(close_enough(closed.pnl, pnl));
    let (_, metrics) = engine.finish().unwrap();
    assert!(close_enough(metrics.final_equity, 10_000.0 + pnl));
    assert!(close_enough(metrics.fees_paid, closed.fees));

    // a short pays slippage the other way
    let mut engine = Engine::new(config()).unwrap();
    let short = open_at(&mut engine, a, Action::Short, Order::default())
        .opened
        .unwrap();
    assert!(close_enough(short.entry_price, a.close * (1.0 - slip)));
}

#[test]
fn zero_fees_and_slippage_fill_at_the_close() {
    let data = btc_1h();
    let mut cfg = config();
    cfg.fee_bps = 0.0;
    cfg.slippage_bps = 0.0;
    let mut engine = Engine::new(cfg).unwrap();
    let p = open_at(&mut engine, data[5], Action::Long, Order::default())
        .opened
        .unwrap();
    assert_eq!(p.entry_price, data[5].close);
    assert_eq!(p.entry_fee, 0.0);
}

/// The first candle after `from` whose range contains both levels around the previous close.
fn find_wide_candle(data: &[Candle], from: usize) -> usize {
    (from..data.len() - 1)
        .find(|&i| {
            let (prev, next) = (data[i].close, data[i + 1]);
            next.high > prev * 1.01
                && next.low < prev * 0.99
                && (next.open - prev).abs() < prev * 0.001
        })
        .expect("a candle moving more than 1% both ways")
}

#[test]
fn stop_loss_is_taken_first_when_both_levels_are_touched_in_one_candle() {
    let data = btc_1h();
    for side in [Action::Long, Action::Short] {
        let i = find_wide_candle(data, 1000);
        let mut engine = Engine::new(config()).unwrap();
        let order = Order {
            stop_loss_pct: Some(0.8),
            take_profit_pct: Some(0.8),
            ..Order::default()
        };
        let p = open_at(&mut engine, data[i], side, order).opened.unwrap();
        let trade = hold(&mut engine, data[i + 1]).expect("the candle closes the trade");
        assert_eq!(trade.exit_type, ExitType::StopLoss, "{side:?}");
        // the exit happened on the second candle of the session, and says so
        assert_eq!((trade.entry_index, trade.exit_index), (0, 1));
        assert_eq!(trade.exit_time, data[i + 1].time);
        let sign = if p.side == Side::Long { 1.0 } else { -1.0 };
        assert!(close_enough(
            trade.exit_price,
            p.stop_loss.unwrap() * (1.0 - sign * 0.0005)
        ));
        assert!(trade.pnl < 0.0);
    }
}

#[test]
fn take_profit_fills_at_its_level_when_only_it_is_touched() {
    let data = btc_1h();
    let i = (1000..data.len() - 1)
        .find(|&i| {
            data[i + 1].high > data[i].close * 1.01 && data[i + 1].low > data[i].close * 0.995
        })
        .unwrap();
    let mut engine = Engine::new(config()).unwrap();
    let order = Order {
        stop_loss_pct: Some(2.0),
        take_profit_pct: Some(0.8),
        ..Order::default()
    };
    let p = open_at(&mut engine, data[i], Action::Long, order)
        .opened
        .unwrap();
    let trade = hold(&mut engine, data[i + 1]).unwrap();
    assert_eq!(trade.exit_type, ExitType::TakeProfit);
    assert!(close_enough(
        trade.exit_price,
        p.take_profit.unwrap() * (1.0 - 0.0005)
    ));
}

#[test]
fn a_gap_through_the_stop_fills_at_the_open() {
    let data = btc_1h();
    // real gaps: candles after an exchange outage open far from the previous close
    let i = (0..data.len() - 1)
        .find(|&i| data[i + 1].open < data[i].close * 0.98 && data[i + 1].low < data[i + 1].open)
        .expect("a gap down of more than 2%");
    let mut engine = Engine::new(config()).unwrap();
    let order = Order {
        stop_loss_pct: Some(1.0),
        ..Order::default()
    };
    open_at(&mut engine, data[i], Action::Long, order);
    let trade = hold(&mut engine, data[i + 1]).unwrap();
    assert_eq!(trade.exit_type, ExitType::StopLoss);
    assert!(close_enough(
        trade.exit_price,
        data[i + 1].open * (1.0 - 0.0005)
    ));

    // and a gap through the target fills at the (better) open too
    let j = (0..data.len() - 1)
        .find(|&i| data[i + 1].open > data[i].close * 1.01)
        .expect("a gap up of more than 1%");
    let mut engine = Engine::new(config()).unwrap();
    let order = Order {
        take_profit_pct: Some(0.5),
        ..Order::default()
    };
    open_at(&mut engine, data[j], Action::Long, order);
    let trade = hold(&mut engine, data[j + 1]).unwrap();
    assert_eq!(trade.exit_type, ExitType::TakeProfit);
    assert!(close_enough(
        trade.exit_price,
        data[j + 1].open * (1.0 - 0.0005)
    ));
}

#[test]
fn a_5x_long_into_the_march_2020_crash_is_liquidated_losing_its_margin() {
    let data = btc_1h();
    // 2020-03-12 00:00 UTC
    let start = data
        .iter()
        .position(|c| c.time == 1_583_971_200_000)
        .unwrap();
    let mut cfg = config();
    cfg.max_leverage = 5;
    let mut engine = Engine::new(cfg).unwrap();
    let order = Order {
        leverage: Some(5),
        size: Some(0.5),
        ..Order::default()
    };
    let p = open_at(&mut engine, data[start], Action::Long, order)
        .opened
        .unwrap();
    assert_eq!(p.leverage, 5);
    assert!(close_enough(
        p.liquidation_price,
        p.entry_price * (1.0 - 0.2 + 0.005)
    ));
    let trade = data[start + 1..start + 48]
        .iter()
        .find_map(|c| hold(&mut engine, *c))
        .expect("liquidated within two days");
    assert_eq!(trade.exit_type, ExitType::Liquidation);
    assert!(trade.exit_price <= p.liquidation_price);
    // the loss is the margin plus both fees, never more
    assert!(close_enough(trade.pnl, -p.margin - trade.fees));
    let (_, metrics) = engine.finish().unwrap();
    assert!(metrics.final_equity > 0.0);
    assert!(close_enough(
        metrics.final_equity,
        10_000.0 - p.margin - trade.fees
    ));
}

#[test]
fn monk_risks_one_percent_at_the_stop_needs_a_stop_and_waits_four_hours() {
    let data = btc_1h();
    let mut cfg = config();
    cfg.mode = Mode::Monk;
    let mut engine = Engine::new(cfg).unwrap();

    let refused = open_at(&mut engine, data[10], Action::Long, Order::default());
    assert_eq!(refused.action, Action::Hold);
    assert!(
        refused.notes[0].contains("requires a stop-loss"),
        "{:?}",
        refused.notes
    );

    engine.observe(data[11]).unwrap();
    let stop = Order {
        stop_loss_pct: Some(2.0),
        ..Order::default()
    };
    let p = engine
        .apply_order(Action::Long, &stop)
        .unwrap()
        .opened
        .unwrap();
    // 1% of equity at a 2% stop: a notional of half the equity
    assert!(close_enough(
        p.quantity * p.entry_price,
        0.01 * 10_000.0 / 0.02
    ));
    engine.observe(data[12]).unwrap();
    engine
        .apply_order(Action::Close, &Order::default())
        .unwrap();

    // one trade per 4 hours of candle time: refused at +2 h and +3 h, allowed at +4 h
    for (k, candle) in data.iter().enumerate().take(15).skip(13) {
        engine.observe(*candle).unwrap();
        let applied = engine.apply_order(Action::Short, &stop).unwrap();
        assert_eq!(applied.action, Action::Hold, "candle {k}");
        assert!(applied.notes[0].contains("one trade per 4 hours"));
    }
    engine.observe(data[15]).unwrap();
    assert_eq!(data[15].time - data[11].time, 4 * 3_600_000);
    let applied = engine.apply_order(Action::Short, &stop).unwrap();
    assert_eq!(applied.action, Action::Short, "{:?}", applied.notes);
}

#[test]
fn safety_mode_forces_a_stop_and_caps_the_loss_at_the_stop_to_two_percent() {
    let data = btc_1h();
    let mut cfg = config();
    cfg.safety = true;
    let mut engine = Engine::new(cfg.clone()).unwrap();
    let applied = open_at(&mut engine, data[200], Action::Long, Order::default());
    let p = applied.opened.unwrap();
    assert!(close_enough(p.stop_loss.unwrap(), p.entry_price * 0.98));
    assert!(
        applied
            .notes
            .iter()
            .any(|n| n.contains("stop-loss set to 2%"))
    );

    // a 5% stop on all of the equity would risk 5%: the size is cut to risk 2%
    let mut engine = Engine::new(cfg).unwrap();
    let order = Order {
        stop_loss_pct: Some(5.0),
        ..Order::default()
    };
    let p = open_at(&mut engine, data[200], Action::Long, order)
        .opened
        .unwrap();
    let loss_at_stop = (p.entry_price - p.stop_loss.unwrap()) * p.quantity;
    assert!(close_enough(loss_at_stop, 0.02 * 10_000.0));
}

#[test]
fn leverage_is_capped_by_the_users_max_and_forced_to_1_when_not_allowed() {
    let data = btc_1h();
    let mut cfg = config();
    cfg.max_leverage = 2;
    let order = Order {
        leverage: Some(5),
        ..Order::default()
    };
    let mut engine = Engine::new(cfg.clone()).unwrap();
    let applied = open_at(&mut engine, data[300], Action::Long, order);
    assert_eq!(applied.opened.unwrap().leverage, 2);
    assert!(applied.notes.iter().any(|n| n == "leverage 5 capped to 2"));

    cfg.allow_leverage = false;
    let mut engine = Engine::new(cfg).unwrap();
    let applied = open_at(&mut engine, data[300], Action::Long, order);
    assert_eq!(applied.opened.unwrap().leverage, 1);
}

#[test]
fn actions_that_cannot_apply_are_holds_with_a_note_and_opposite_signals_reverse() {
    let data = btc_1h();
    let mut engine = Engine::new(config()).unwrap();
    let applied = open_at(&mut engine, data[400], Action::Close, Order::default());
    assert_eq!(applied.action, Action::Hold);
    assert_eq!(applied.notes, ["close ignored: no open position"]);

    open_at(&mut engine, data[401], Action::Long, Order::default());
    let applied = open_at(&mut engine, data[402], Action::Long, Order::default());
    assert_eq!(applied.action, Action::Hold);
    assert_eq!(applied.notes, ["long ignored: already long"]);

    let applied = open_at(&mut engine, data[403], Action::Short, Order::default());
    assert_eq!(applied.closed.len(), 1);
    assert_eq!(applied.closed[0].exit_type, ExitType::Signal);
    assert_eq!(applied.opened.unwrap().side, Side::Short);
    assert_eq!(applied.action, Action::Short);
}

#[test]
fn the_session_end_closes_the_position_at_the_last_close_without_changing_equity() {
    let data = btc_1h();
    let mut engine = Engine::new(config()).unwrap();
    open_at(&mut engine, data[500], Action::Long, Order::default());
    for c in &data[501..600] {
        hold(&mut engine, *c);
    }
    let marked = engine.equity();
    let (mut closed, metrics) = engine.finish().unwrap();
    assert_eq!(closed.len(), 1);
    let closed = closed.remove(0);
    assert_eq!(closed.exit_type, ExitType::SessionEnd);
    assert_eq!(closed.exit_index, 99);
    assert!(close_enough(
        closed.exit_price,
        data[599].close * (1.0 - 0.0005)
    ));
    assert_eq!(metrics.final_equity, marked);
    assert_eq!(metrics.equity_curve.last().unwrap().equity, marked);
    assert_eq!(metrics.total_trades, 1);
    assert!(
        engine.observe(data[600]).is_err(),
        "a finished session takes no candle"
    );
}

#[test]
fn bad_candles_and_bad_configs_are_errors_not_panics() {
    let data = btc_1h();
    let mut engine = Engine::new(config()).unwrap();
    assert!(engine.apply_order(Action::Long, &Order::default()).is_err());
    engine.observe(data[1]).unwrap();
    assert!(engine.observe(data[0]).is_err(), "time must increase");
    let mut nan = data[2];
    nan.close = f64::NAN;
    assert!(engine.observe(nan).is_err());
    let mut cfg = config();
    cfg.max_leverage = 9;
    assert!(Engine::new(cfg).is_err());
    let mut cfg = config();
    cfg.indicators = vec!["vwap".into()];
    assert!(
        Engine::new(cfg)
            .unwrap_err()
            .to_string()
            .contains("valid: rsi")
    );
}

#[test]
fn a_shorts_take_profit_stays_above_zero() {
    let data = btc_1h();
    let mut engine = Engine::new(config()).unwrap();
    let order = Order {
        take_profit_pct: Some(500.0),
        ..Order::default()
    };
    let applied = open_at(&mut engine, data[700], Action::Short, order);
    let p = applied.opened.unwrap();
    let tp = p.take_profit.unwrap();
    assert!(tp > 0.0, "take-profit {tp}");
    assert!(close_enough(
        tp,
        p.entry_price * (1.0 - engine::rules::MAX_SHORT_TAKE_PROFIT_PCT / 100.0)
    ));
    assert!(applied.notes.iter().any(|n| n.contains("take_profit_pct")));
    // a long may still aim far
    let mut engine = Engine::new(config()).unwrap();
    let p = open_at(&mut engine, data[700], Action::Long, order)
        .opened
        .unwrap();
    assert!(close_enough(p.take_profit.unwrap(), p.entry_price * 6.0));
}

#[test]
fn the_driver_returns_every_trade_a_candle_closed() {
    let data = btc_1h();
    let i = find_wide_candle(data, 1000);
    let mut engine = Engine::new(config()).unwrap();
    let tight = Order {
        stop_loss_pct: Some(0.8),
        ..Order::default()
    };
    // a long at candle i, a short with a tight stop at i + 1 (reversal: the long closes)...
    engine.step(data[i - 1], |_| Decision::hold("")).unwrap();
    let long = engine
        .step(data[i], |_| {
            Decision::new(
                Action::Long,
                engine::decision::Reasoning::Text(String::new()),
                50,
                tight,
            )
        })
        .unwrap();
    assert!(long.opened.is_some());
    // the wide candle i + 1 stops the long out on its range, then the decision opens a short
    let step = engine
        .step(data[i + 1], |ctx| {
            assert!(ctx.range_exit().is_some(), "the prompt sees the range exit");
            Decision::new(
                Action::Short,
                engine::decision::Reasoning::Text(String::new()),
                50,
                Order::default(),
            )
        })
        .unwrap();
    let kinds: Vec<ExitType> = step.closed.iter().map(|t| t.exit_type).collect();
    assert_eq!(kinds, [ExitType::StopLoss]);
    assert_eq!(step.closed[0].exit_index, 2);
    assert_eq!(step.opened.as_ref().unwrap().side, Side::Short);
    // the next candle reverses the short into a long: the signal close comes back too
    let step = engine
        .step(data[i + 2], |_| {
            Decision::new(
                Action::Long,
                engine::decision::Reasoning::Text(String::new()),
                50,
                Order::default(),
            )
        })
        .unwrap();
    let kinds: Vec<ExitType> = step.closed.iter().map(|t| t.exit_type).collect();
    assert_eq!(kinds, [ExitType::Signal]);
    assert_eq!(step.action, Action::Long);
    // and the session's end closes the rest
    let (closed, _) = engine.finish().unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].exit_type, ExitType::SessionEnd);
}
