//! `alphalab backtest` and `alphalab indicators`: the engine on a CSV of candles, offline.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use engine::baseline::{Baseline, Kind};
use engine::{Candle, Engine, EngineConfig, IndicatorSet, Mode, Timeframe, Trade};
use serde_json::json;

#[derive(clap::Args)]
pub(crate) struct BacktestArgs {
    /// Candles in the `time,open,high,low,close,volume` format (data/market/ holds real ones).
    #[arg(long)]
    csv: PathBuf,
    /// The agent (offline backtests run the baselines).
    #[arg(long, default_value = "baseline/sma-cross", value_parser = Kind::NAMES)]
    agent: String,
    /// Starting capital (> 0).
    #[arg(long, default_value_t = 10_000.0, allow_negative_numbers = true, value_parser = positive)]
    capital: f64,
    /// Fee per fill in basis points (0..1000).
    #[arg(long, default_value_t = engine::rules::DEFAULT_FEE_BPS, allow_negative_numbers = true, value_parser = bps)]
    fee_bps: f64,
    /// Slippage per fill in basis points (0..1000).
    #[arg(long, default_value_t = engine::rules::DEFAULT_SLIPPAGE_BPS, allow_negative_numbers = true, value_parser = bps)]
    slippage_bps: f64,
    /// Maximum leverage (1..5).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u8).range(1..=i64::from(engine::rules::MAX_LEVERAGE)))]
    leverage: u8,
    /// Trading mode.
    #[arg(long, default_value = "omni", value_parser = ["omni", "monk"])]
    mode: String,
    /// Safety mode: forced stop-loss, loss at the stop capped at 2% of equity.
    #[arg(long)]
    safety: bool,
    /// Candle timeframe (default: inferred from the candles' spacing).
    #[arg(long, value_parser = Timeframe::ALL.map(Timeframe::as_str))]
    timeframe: Option<String>,
    /// Asset name (default: the file name up to its first `-`).
    #[arg(long)]
    asset: Option<String>,
    /// Indicators besides the agent's own (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    indicators: Vec<String>,
    /// Write the trades as CSV to this file (its directory is created).
    #[arg(long)]
    trades_out: Option<PathBuf>,
    /// Include the (downsampled) equity curve in the printed metrics.
    #[arg(long)]
    with_curve: bool,
}

/// A number greater than zero.
fn positive(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err("must be greater than 0".into()),
        Err(_) => Err("expected a number".into()),
    }
}

/// Basis points between 0 and 1000.
fn bps(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=1000.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be between 0 and 1000 basis points".into()),
        Err(_) => Err("expected a number of basis points".into()),
    }
}

fn read_candles(path: &Path) -> Result<Vec<Candle>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    engine::parse_csv(&text).with_context(|| format!("parsing {}", path.display()))
}

pub(crate) fn backtest(args: BacktestArgs) -> Result<()> {
    let candles = read_candles(&args.csv)?;
    // clap has checked the name against Kind::NAMES
    let kind = Kind::from_model(&args.agent).context("unknown agent")?;
    if candles.is_empty() {
        bail!("{} holds no candles", args.csv.display());
    }
    let timeframe = match &args.timeframe {
        Some(t) => Timeframe::parse(t).with_context(|| format!("unknown timeframe `{t}`"))?,
        None => {
            Timeframe::infer(&candles).context("cannot infer the timeframe: pass --timeframe")?
        }
    };
    let asset = args.asset.clone().unwrap_or_else(|| {
        args.csv
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.split('-').next())
            .unwrap_or("ASSET")
            .to_owned()
    });
    let mut config = EngineConfig::new(asset.clone(), timeframe);
    config.initial_capital = args.capital;
    config.fee_bps = args.fee_bps;
    config.slippage_bps = args.slippage_bps;
    config.max_leverage = args.leverage;
    config.safety = args.safety;
    config.mode =
        Mode::parse(&args.mode).with_context(|| format!("unknown mode `{}`", args.mode))?;
    config.indicators = kind
        .required_indicators()
        .iter()
        .map(|s| s.to_string())
        .chain(args.indicators.iter().cloned())
        .collect();

    let mut engine = Engine::new(config)?;
    let baseline = Baseline::new(kind, engine.indicators())?;
    let mut trades: Vec<Trade> = Vec::new();
    for candle in &candles {
        trades.extend(engine.step(*candle, |ctx| baseline.decide(ctx))?.closed);
    }
    let (last, metrics) = engine.finish()?;
    trades.extend(last);

    if let Some(path) = &args.trades_out {
        write_trades(path, &trades)?;
    }
    let mut metrics = serde_json::to_value(&metrics)?;
    if !args.with_curve
        && let Some(m) = metrics.as_object_mut()
    {
        m.remove("equity_curve");
    }
    let out = json!({
        "agent": args.agent,
        "asset": asset,
        "timeframe": timeframe,
        "mode": args.mode,
        "safety": args.safety,
        "fee_bps": args.fee_bps,
        "slippage_bps": args.slippage_bps,
        "first_candle": rfc3339(candles[0].time),
        "last_candle": rfc3339(candles[candles.len() - 1].time),
        "metrics": metrics,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn write_trades(path: &Path, trades: &[Trade]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record([
        "trade_no",
        "side",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "quantity",
        "leverage",
        "stop_loss",
        "take_profit",
        "pnl",
        "pnl_pct",
        "fees",
        "exit_type",
    ])?;
    for t in trades {
        w.write_record([
            t.trade_no.to_string(),
            t.side.as_str().to_owned(),
            rfc3339(t.entry_time),
            t.entry_price.to_string(),
            rfc3339(t.exit_time),
            t.exit_price.to_string(),
            t.quantity.to_string(),
            t.leverage.to_string(),
            opt(t.stop_loss),
            opt(t.take_profit),
            t.pnl.to_string(),
            t.pnl_pct.to_string(),
            t.fees.to_string(),
            t.exit_type.as_str().to_owned(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct IndicatorsArgs {
    /// Candles in the `time,open,high,low,close,volume` format.
    #[arg(long)]
    csv: PathBuf,
    /// Comma-separated indicator names (rsi_14,macd,...).
    #[arg(long, value_delimiter = ',', required = true)]
    indicators: Vec<String>,
}

/// Writes `time,<every output>` and one row per candle; empty where not yet defined.
pub(crate) fn indicators(args: IndicatorsArgs) -> Result<()> {
    let candles = read_candles(&args.csv)?;
    let mut set = IndicatorSet::new(&args.indicators)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "time,{}", set.names().join(","))?;
    let mut line = String::new();
    for candle in &candles {
        set.update(candle);
        line.clear();
        line.push_str(&candle.time.to_string());
        for v in set.values() {
            line.push(',');
            if let Some(v) = v {
                line.push_str(&v.to_string());
            }
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
