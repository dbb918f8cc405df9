//! `alphalab bench-arena`: a year of hourly candles (8,760) of `baseline/sma-cross` at instant
//! speed through the local stack: the arena function over HTTP, the steps queue on moto with the
//! local event source mapping, the backtest-step function, Postgres, and one WebSocket
//! subscriber behind the local gateway. Reports wall time (start request until the subscriber
//! has `session_completed`), steps, WebSocket messages and bytes against the fewest 32 KB frames
//! could carry, and the overhead per candle beyond the engine's own time.
//!
//! `cargo run --release --bin alphalab -- bench-arena` (its own Postgres and moto; ~1 minute).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use platform::FromEnv;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args)]
pub(crate) struct BenchArenaArgs {
    /// First candle (inclusive), within the bundled BTCUSDT 1h data.
    #[arg(long, default_value = "2021-01-01")]
    start: String,
    /// Last candle (exclusive).
    #[arg(long, default_value = "2022-01-01")]
    end: String,
    /// Runs (the figures of each are printed).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub(crate) async fn run(args: BenchArenaArgs) -> Result<()> {
    let stack = crate::bench_stack::BenchStack::start(&[]).await?;
    let ws = alphalab_ws::Ws::new(&alphalab_ws::Config::from_env(&stack.vars)?).await?;
    stack.local.serve(ws);
    let day = |d: &str| -> Result<i64> {
        Ok(chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .with_context(|| format!("{d}: expected YYYY-MM-DD"))?
            .and_hms_opt(0, 0, 0)
            .context("midnight")?
            .and_utc()
            .timestamp_millis())
    };
    let (from, to) = (day(&args.start)?, day(&args.end)?);
    let candles = stack
        .btc_hours(|all| {
            all.into_iter()
                .filter(|c| c.time >= from && c.time < to)
                .collect()
        })
        .await?;

    // the engine alone on the same candles, for the overhead per candle
    let engine_time = {
        let mut config = engine::EngineConfig::new("BTCUSDT", engine::Timeframe::H1);
        config.indicators = vec!["sma_10".into(), "sma_30".into()];
        let started = Instant::now();
        let mut engine = engine::Engine::new(config)?;
        let baseline =
            engine::baseline::Baseline::new(engine::baseline::Kind::SmaCross, engine.indicators())?;
        for c in &candles {
            engine.step(*c, |ctx| baseline.decide(ctx))?;
        }
        engine.finish()?;
        started.elapsed()
    };

    let (token, _, agent) = stack
        .agent(
            "user_bench_arena",
            json!({"name": "bench", "mode": "omni", "model": "baseline/sma-cross"}),
        )
        .await?;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}?token={token}", stack.local.gateway.ws_url))
            .await?;

    println!(
        "{} candles of BTCUSDT 1h, baseline/sma-cross, instant; engine alone: {:.1} ms",
        candles.len(),
        engine_time.as_secs_f64() * 1e3
    );
    println!(
        "run | wall | steps | ws messages | ws bytes | fewest 32 KB frames | messages/fewest | events | overhead/candle | checkpoint bytes (text / stored) | equity appended (commits / stored bytes)"
    );
    // one event source mapping for every run (as in AWS); each run counts its own invocations
    let mapping = crate::steps::mapping("BacktestStepFunction", None, 720)?;
    let (poller, _worker) = crate::steps::start(&stack.vars, mapping).await?;
    for run in 1..=args.runs {
        let invocations_before = poller.stats.invocations.load(Ordering::SeqCst);
        let started = Instant::now();
        let (status, body) = stack
            .server
            .call(
                reqwest::Method::POST,
                "/api/arena/backtest/start",
                Some(&token),
                Some(
                    json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
                            "start_date": args.start, "end_date": args.end, "speed": "instant"}),
                ),
            )
            .await?;
        if status != 201 {
            bail!("start answered {status}: {body}");
        }
        let session = body["session"]["id"]
            .as_str()
            .context("session id")?
            .to_owned();
        socket
            .send(Message::Text(
                json!({"action": "subscribe", "session_id": session})
                    .to_string()
                    .into(),
            ))
            .await?;
        let (mut messages, mut bytes, mut events, mut next_seq) = (0usize, 0usize, 0usize, 1u64);
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(60), socket.next())
                .await
                .context("no frame within 60 s")?
                .context("socket closed")??;
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text)?;
            if value["event"] == "subscribed" {
                continue;
            }
            messages += 1;
            bytes += text.len();
            let list = if value["event"] == "batch" {
                value["data"]["events"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            } else {
                vec![value]
            };
            let mut done = false;
            for event in list {
                if event["seq"].as_u64() != Some(next_seq) {
                    bail!("expected seq {next_seq}, got {}", event["seq"]);
                }
                next_seq += 1;
                events += 1;
                done |= event["event"] == "session_completed";
            }
            if done {
                break;
            }
        }
        let wall = started.elapsed();
        let steps = poller.stats.invocations.load(Ordering::SeqCst) - invocations_before;
        let fewest = bytes.div_ceil(realtime::publisher::FRAME_LIMIT);
        let overhead = (wall.saturating_sub(engine_time)).as_secs_f64() / candles.len() as f64;
        // what the last commit wrote as the checkpoint: its JSON text and its stored size
        let (text, stored): (i32, i32) = sqlx::query_as(
            "SELECT octet_length(checkpoint::text), pg_column_size(checkpoint)
             FROM test_sessions WHERE id = $1::uuid",
        )
        .bind(&session)
        .fetch_one(&stack.pool)
        .await?;
        // what the commits appended beside it: every candle's equity
        let (commits, appended): (i64, i64) = sqlx::query_as(
            "SELECT count(*), coalesce(sum(pg_column_size(times) + pg_column_size(equity)), 0)::bigint
             FROM session_equity WHERE session_id = $1::uuid",
        )
        .bind(&session)
        .fetch_one(&stack.pool)
        .await?;
        println!(
            "{run} | {:.2} s | {steps} | {messages} | {bytes} | {fewest} | {:.3} | {events} | {:.1} µs | {text} / {stored} | {commits} / {appended}",
            wall.as_secs_f64(),
            messages as f64 / fewest as f64,
            overhead * 1e6
        );
    }
    Ok(())
}
