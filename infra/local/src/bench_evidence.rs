//! `alphalab bench-evidence`: the evidence of the bundled 45,024-candle BTCUSDT 1h
//! `baseline/sma-cross` result (1,000 random agents and 2,000 bootstrap resamples by default),
//! and the ledger of the same run written, sealed and verified (replay and evidence included).

use std::time::Instant;

use anyhow::{Context, Result};
use engine::baseline::{Baseline, Kind};
use engine::{Engine, EngineConfig, Timeframe};
use evidence::ledger::{self, Applied, Entry, Header, SigningKey, Source};

#[derive(clap::Args)]
pub(crate) struct BenchEvidenceArgs {
    /// Random agents.
    #[arg(long, default_value_t = evidence::DEFAULT_NULL_AGENTS)]
    null_agents: u32,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = evidence::DEFAULT_RESAMPLES)]
    resamples: u32,
    /// Runs to take the median of.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Decided candles of the ledger to verify (the last ones of the file; 8,760 is a year of
    /// hours).
    #[arg(long, default_value_t = 8_760)]
    ledger_candles: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn run(args: BenchEvidenceArgs) -> Result<()> {
    let path = crate::workspace_root().join("data/market/BTCUSDT-1h.csv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let candles = engine::parse_csv(&text)?;
    let mut config = EngineConfig::new("BTCUSDT", Timeframe::H1);
    config.indicators = Kind::SmaCross
        .required_indicators()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let settings = evidence::Settings {
        null_agents: args.null_agents,
        resamples: args.resamples,
    };
    let threads = evidence::threads();
    let key = SigningKey::from_base64(&SigningKey::generate_seed())?;

    // the run, as the ledger records it
    let run = |candles: &[engine::Candle]| -> Result<(Header, Vec<Entry>)> {
        let mut engine = Engine::new(config.clone())?;
        let baseline = Baseline::new(Kind::SmaCross, engine.indicators())?;
        let mut entries = Vec::with_capacity(candles.len());
        for (n, c) in candles.iter().enumerate() {
            let ctx = engine.observe(*c)?;
            let d = baseline.decide(&ctx);
            engine.apply(&d)?;
            entries.push(Entry {
                n: n as i64,
                candle: *c,
                decision: Some(Applied {
                    action: d.action,
                    order: matches!(d.action, engine::Action::Long | engine::Action::Short)
                        .then_some(d.order),
                    source: Source::Baseline,
                    prompt_sha256: None,
                    answer_sha256: None,
                }),
            });
        }
        let header = Header {
            version: ledger::VERSION,
            result_id: "00000000-0000-4000-8000-000000000000".into(),
            session_id: "00000000-0000-4000-8000-000000000001".into(),
            config: config.clone(),
            seed: evidence::seed_of(&[0; 16]).to_string(),
            null_agents: settings.null_agents,
            resamples: settings.resamples,
            model_cutoff: None,
        };
        Ok((header, entries))
    };

    let (header, entries) = run(&candles)?;
    let replay =
        ledger::replay(header.clone(), &entries).map_err(|(i, e)| anyhow::anyhow!("{i}: {e}"))?;
    let mut walls = Vec::new();
    let mut evidence = None;
    for _ in 0..args.runs.max(1) {
        let started = Instant::now();
        evidence = Some(replay.evidence(threads).map_err(anyhow::Error::msg)?);
        walls.push(started.elapsed().as_secs_f64());
    }
    let evidence = evidence.context("no run")?;
    println!(
        "evidence of BTCUSDT 1h baseline/sma-cross: {} candles, {} trades, {} random agents, {} resamples, {} threads",
        replay.candles.len(),
        replay.trades.len(),
        settings.null_agents,
        settings.resamples,
        threads
    );
    println!(
        "  median {:.3} s (min {:.3} s, {} runs)",
        median(walls.clone()),
        walls.iter().copied().fold(f64::INFINITY, f64::min),
        walls.len()
    );
    println!("  {}", serde_json::to_string(&evidence)?);

    // a ledger of the last `ledger_candles` candles: written, sealed, verified
    let tail = &candles[candles.len().saturating_sub(args.ledger_candles)..];
    let (header, entries) = run(tail)?;
    let replay =
        ledger::replay(header.clone(), &entries).map_err(|(i, e)| anyhow::anyhow!("{i}: {e}"))?;
    let ev = serde_json::to_value(replay.evidence(threads).map_err(anyhow::Error::msg)?)?;
    let started = Instant::now();
    let mut w = ledger::Writer::new(&header);
    for e in &entries {
        w.entry(e);
    }
    let (lines, _) = w.seal(&header.result_id, &replay.metrics.summary_json(), &ev, &key);
    let text = lines.join("\n");
    let written = started.elapsed().as_secs_f64();
    let mut walls = Vec::new();
    for _ in 0..args.runs.max(1) {
        let started = Instant::now();
        ledger::verify(&text, &key.public_key, threads)?;
        walls.push(started.elapsed().as_secs_f64());
    }
    println!(
        "ledger of {} decisions ({} bytes): written and sealed in {:.3} s; verify-ledger median {:.3} s",
        entries.len(),
        text.len(),
        written,
        median(walls)
    );
    Ok(())
}
