//! Prompts: a pure function of the configuration (system prompt) and of the decision context
//! (candle prompt), so a decision can be cached and replayed by a hash of its prompt.
//!
//! Monk mode shows no dates and no asset symbol and rebases every price (first close = 100), so a
//! model cannot recognise a stretch of history it memorised; omni mode shows dates and the asset.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::engine::{Context, EngineConfig, Mode, Side};
use crate::indicators::{IndicatorError, IndicatorSet, Unit};
use crate::rules;

/// The JSON schema of a reply (also usable as an OpenRouter `response_format`).
pub fn response_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["action", "reasoning", "confidence"],
        "properties": {
            "action": { "type": "string", "enum": ["long", "short", "hold", "close"] },
            "reasoning": { "type": "string", "description": "why, in one to three sentences" },
            "confidence": { "type": "integer", "minimum": 0, "maximum": 100 },
            "order": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "leverage": { "type": "integer", "minimum": 1, "maximum": rules::MAX_LEVERAGE },
                    "stop_loss_pct": { "type": "number", "minimum": rules::MIN_STOP_PCT, "maximum": rules::MAX_STOP_PCT },
                    "take_profit_pct": { "type": "number", "minimum": rules::MIN_TAKE_PROFIT_PCT, "maximum": rules::MAX_TAKE_PROFIT_PCT },
                    "size": { "type": "number", "minimum": rules::MIN_SIZE, "maximum": 1 }
                }
            }
        }
    })
}

/// What an indicator output means, for the system prompt.
fn describe(name: &str) -> String {
    let period = |prefix: &str| name.strip_prefix(prefix).unwrap_or("?").to_owned();
    match name {
        "macd" => "MACD line: EMA(12) - EMA(26) of the close".into(),
        "macd_signal" => "MACD signal line: EMA(9) of the MACD line".into(),
        "macd_histogram" => "MACD histogram: MACD line - signal line".into(),
        "bb_upper" => "upper Bollinger band: SMA(20) + 2 standard deviations".into(),
        "bb_middle" => "middle Bollinger band: SMA(20)".into(),
        "bb_lower" => "lower Bollinger band: SMA(20) - 2 standard deviations".into(),
        "stoch_k" => "stochastic %K (14, 3), 0-100: above 80 overbought, below 20 oversold".into(),
        "stoch_d" => "stochastic %D: SMA(3) of %K".into(),
        "volume" => "the candle's traded volume".into(),
        "volume_sma_20" => "average volume of the last 20 candles".into(),
        "obv" => "on-balance volume: cumulative volume signed by the close's direction".into(),
        _ if name.starts_with("rsi_") => format!(
            "RSI({}), 0-100: above 70 overbought, below 30 oversold",
            period("rsi_")
        ),
        _ if name.starts_with("ema_") => format!("EMA({}) of the close", period("ema_")),
        _ if name.starts_with("sma_") => format!("SMA({}) of the close", period("sma_")),
        _ if name.starts_with("atr_") => {
            format!("ATR({}): average true range, in price", period("atr_"))
        }
        _ if name.starts_with("adx_") => format!(
            "ADX({}), 0-100: trend strength, above 25 trending",
            period("adx_")
        ),
        _ => name.to_owned(),
    }
}

fn pct(bps: f64) -> String {
    format!("{}%", bps / 100.0)
}

/// The system prompt of a session: its rules, the indicators it receives, the user's strategy
/// and the reply schema.
pub fn system_prompt(config: &EngineConfig, strategy: &str) -> Result<String, IndicatorError> {
    let set = IndicatorSet::new(&config.indicators)?;
    let mut p = String::new();
    let w = &mut p;
    let _ = match config.mode {
        Mode::Omni => writeln!(
            w,
            "You are a trading agent trading {} on {} candles in OMNI mode.",
            config.asset, config.timeframe
        ),
        Mode::Monk => writeln!(
            w,
            "You are a trading agent in MONK mode, trading an undisclosed asset on {} candles. \
             Dates are hidden and prices are rebased so that the first close is 100: judge the \
             chart, not what you may remember of history.",
            config.timeframe
        ),
    };
    let _ = writeln!(
        w,
        "Each message gives you one closed candle, indicator values and your position. Decide what \
         to do at that candle's close.\n"
    );
    let _ = writeln!(w, "Rules:");
    let _ = writeln!(
        w,
        "- One position at a time, long or short. Orders fill at the candle's close, paying a fee \
         of {} per side and {} slippage.",
        pct(config.fee_bps),
        pct(config.slippage_bps)
    );
    let _ = writeln!(
        w,
        "- Actions: long opens a long (closing a short first), short opens a short (closing a long \
         first), close closes the open position, hold does nothing."
    );
    let _ = writeln!(
        w,
        "- stop_loss_pct and take_profit_pct are distances from the entry in percent; they are \
         checked against the high and low of every later candle, the stop-loss first."
    );
    if config.allow_leverage && config.max_leverage > 1 {
        let _ = writeln!(
            w,
            "- leverage: 1 to {}. A leveraged position is liquidated when its loss reaches its \
             margin.",
            config.max_leverage
        );
    } else {
        let _ = writeln!(w, "- Leverage is not available: every order fills at 1x.");
    }
    match config.mode {
        Mode::Omni => {
            let _ = writeln!(
                w,
                "- size: the fraction of your equity to commit, from {} to 1 (default 1).",
                rules::MIN_SIZE
            );
        }
        Mode::Monk => {
            let _ = writeln!(
                w,
                "- Every long or short must carry stop_loss_pct. Its size is set for you: {}% of \
                 equity is at risk between the entry and the stop-loss.",
                rules::MONK_RISK_FRACTION * 100.0
            );
            let _ = writeln!(w, "- At most one trade may open per 4 hours.");
        }
    }
    if config.safety {
        let _ = writeln!(
            w,
            "- Safety mode: a {}% stop-loss is added when you give none, and sizes are reduced so \
             that no trade loses more than {}% of equity at its stop-loss.",
            rules::SAFETY_DEFAULT_STOP_PCT,
            rules::SAFETY_MAX_LOSS_FRACTION * 100.0
        );
    }
    let _ = writeln!(w, "\nIndicators you receive:");
    for name in set.names() {
        let _ = writeln!(w, "- {name}: {}", describe(name));
    }
    let _ = writeln!(w, "\nThe trader's strategy:\n{}\n", strategy.trim());
    let _ = writeln!(
        w,
        "Reply with one JSON object and nothing else, matching this JSON schema:\n{}",
        serde_json::to_string_pretty(&response_schema()).unwrap_or_default()
    );
    Ok(p)
}

/// A price for display: rebased in monk mode.
fn price(ctx: &Context<'_>, x: f64) -> String {
    let x = match ctx.mode() {
        Mode::Monk => x * 100.0 / ctx.first_close(),
        Mode::Omni => x,
    };
    number(x)
}

fn number(x: f64) -> String {
    if x.abs() >= 1.0 || x == 0.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.6}")
    }
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The prompt for the context's candle.
pub fn candle_prompt(ctx: &Context<'_>) -> String {
    let c = ctx.candle();
    let config = ctx.config();
    let mut p = String::new();
    let w = &mut p;
    let _ = match ctx.mode() {
        Mode::Omni => writeln!(
            w,
            "Candle {} of {} {}, closed at {}",
            ctx.index() + 1,
            config.asset,
            config.timeframe,
            date(c.time + config.timeframe.millis())
        ),
        Mode::Monk => writeln!(w, "Candle {}", ctx.index() + 1),
    };
    let _ = writeln!(
        w,
        "Open {}  High {}  Low {}  Close {}  Volume {}",
        price(ctx, c.open),
        price(ctx, c.high),
        price(ctx, c.low),
        price(ctx, c.close),
        number(c.volume)
    );
    let set = ctx.indicators();
    if !set.names().is_empty() {
        let _ = writeln!(w, "Indicators:");
        for ((name, unit), value) in set.names().iter().zip(set.units()).zip(set.values()) {
            let shown = match (value, unit) {
                (None, _) => "not yet available".to_owned(),
                (Some(v), Unit::Price) => price(ctx, *v),
                (Some(v), _) => number(*v),
            };
            let _ = writeln!(w, "  {name}: {shown}");
        }
    }
    if let Some(exit) = ctx.range_exit() {
        let _ = writeln!(
            w,
            "Your {} was closed on this candle by its {} at {}: PnL {:+.2} ({:+.2}%).",
            exit.side.as_str(),
            exit.exit_type.as_str().replace('_', "-"),
            price(ctx, exit.exit_price),
            exit.pnl,
            exit.pnl_pct
        );
    }
    match ctx.position() {
        None => {
            let _ = writeln!(w, "Position: none.");
        }
        Some(pos) => {
            let side = match pos.side {
                Side::Long => "long",
                Side::Short => "short",
            };
            let _ = write!(
                w,
                "Position: {side} since candle {}, entry {}, {}x",
                pos.entry_index + 1,
                price(ctx, pos.entry_price),
                pos.leverage
            );
            if let Some(sl) = pos.stop_loss {
                let _ = write!(w, ", stop-loss {}", price(ctx, sl));
            }
            if let Some(tp) = pos.take_profit {
                let _ = write!(w, ", take-profit {}", price(ctx, tp));
            }
            let pnl = ctx.unrealized_pnl().unwrap_or(0.0);
            let _ = writeln!(
                w,
                "; unrealized PnL {:+.2} ({:+.2}% of margin).",
                pnl,
                pnl / pos.margin * 100.0
            );
        }
    }
    let _ = writeln!(w, "Equity: {:.2}", ctx.equity());
    if let Some(until) = ctx.cooldown_until() {
        let candles = (until - c.time + config.timeframe.millis() - 1) / config.timeframe.millis();
        let _ = writeln!(w, "A new trade may open in {candles} candle(s).");
    }
    let _ = write!(w, "Your decision (JSON only):");
    p
}
