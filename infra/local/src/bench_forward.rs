//! `alphalab bench-forward`: 500 forward sessions (50 users x 10) of `baseline/sma-cross` on
//! BTCUSDT 1h through the local stack (the arena function over HTTP, forward-tick, the steps
//! queue on moto with the local event source mapping, the backtest-step function, Postgres, one
//! WebSocket subscriber per user) and the local exchange (real candles of February 2021 under a
//! clock the benchmark moves). Each run releases one candle and reports the time from the tick
//! (its clock and klines requests) to the last of the sessions' `candle` events, the exchange
//! requests it took and the steps it sent.
//!
//! `cargo run --release --bin alphalab -- bench-forward` (its own Postgres and moto).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use platform::FromEnv;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args)]
pub(crate) struct BenchForwardArgs {
    /// Users, each with `--sessions` forward sessions.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Forward sessions per user (at most FORWARD_MAX_ACTIVE, 10 by default).
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Candles released, one per run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const HOUR: i64 = 3_600_000;
/// The exchange's clock at the start: 2021-02-10T12:30Z (the 12:00 candle forming).
const START: i64 = 1_612_960_200_000;

pub(crate) async fn run(args: BenchForwardArgs) -> Result<()> {
    let file = crate::workspace_root().join("data/market/BTCUSDT-1h.csv");
    let rows = engine::parse_csv(&std::fs::read_to_string(&file)?)?
        .into_iter()
        .filter(|c| (1_612_137_600_000..1_614_556_800_000).contains(&c.time))
        .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
        .collect();
    let exchange =
        alphalab_devstack::binance::MockBinance::recorded("BTCUSDT", "1h", rows, START).await?;
    let limit = args.sessions.to_string();
    let stack = crate::bench_stack::BenchStack::start(&[
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("BINANCE_BASE_URL", &exchange.base_url),
        ("FORWARD_MAX_ACTIVE", &limit),
        ("DATABASE_MAX_CONNECTIONS", "20"),
    ])
    .await?;
    let ws = alphalab_ws::Ws::new(&alphalab_ws::Config::from_env(&stack.vars)?).await?;
    stack.local.serve(ws);
    let mapping = crate::steps::mapping("BacktestStepFunction", None, 720)?;
    let (poller, _worker) = crate::steps::start(&stack.vars, mapping).await?;
    let ticker =
        alphalab_forward_tick::ticker(&alphalab_forward_tick::Config::from_env(&stack.vars)?)
            .await?;

    // the sessions, started through the API; one subscriber per user
    let started = Instant::now();
    let mut sockets = Vec::new();
    let mut ids = HashSet::new();
    for u in 0..args.users {
        let (token, _, agent) = stack
            .agent(
                &format!("user_bench_forward_{u}"),
                json!({"name": "bench", "mode": "omni", "model": "baseline/sma-cross"}),
            )
            .await?;
        let (mut socket, _) = tokio_tungstenite::connect_async(format!(
            "{}?token={token}",
            stack.local.gateway.ws_url
        ))
        .await?;
        for _ in 0..args.sessions {
            let (status, body) = stack
                .server
                .call(
                    reqwest::Method::POST,
                    "/api/arena/forward/start",
                    Some(&token),
                    Some(json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h"})),
                )
                .await?;
            if status != 201 {
                bail!("start answered {status}: {body}");
            }
            let id = body["session"]["id"].as_str().context("id")?.to_owned();
            socket
                .send(Message::Text(
                    json!({"action": "subscribe", "session_id": id})
                        .to_string()
                        .into(),
                ))
                .await?;
            ids.insert(id);
        }
        sockets.push(socket);
    }
    let total = ids.len();
    // every session anchored and warmed (its first step)
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let anchored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM test_sessions WHERE type = 'forward' AND status = 'running'
               AND warmup IS NOT NULL",
        )
        .fetch_one(&stack.pool)
        .await?;
        if anchored as usize == total {
            break;
        }
        if Instant::now() > deadline {
            bail!("{anchored} of {total} sessions anchored after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{total} forward sessions ({} users x {}) of baseline/sma-cross on BTCUSDT 1h started and warmed up in {:.1} s",
        args.users,
        args.sessions,
        started.elapsed().as_secs_f64()
    );
    // what the subscribers received so far (the subscription answers, session_initialized)
    for socket in &mut sockets {
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), socket.next()).await
        {
        }
    }
    println!(
        "run | candle | tick to last candle event | tick | klines requests | exchange requests | steps sent | step invocations"
    );
    for run in 1..=args.runs {
        exchange.set_now(START + run as i64 * HOUR);
        let (klines_before, all_before) =
            (exchange.requests().len(), exchange.all_requests().len());
        let invocations_before = poller.stats.invocations.load(Ordering::SeqCst);
        let t0 = Instant::now();
        let report = ticker
            .tick(tokio::time::Instant::now() + Duration::from_secs(47))
            .await?;
        let tick = t0.elapsed();
        // every session's candle event, on its user's connection
        let mut seen: HashSet<String> = HashSet::new();
        let mut time = String::new();
        let wait = Instant::now() + Duration::from_secs(120);
        let mut streams = futures::stream::select_all(sockets.iter_mut().map(|s| s.by_ref()));
        while seen.len() < total {
            let left = wait.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, streams.next())
                .await
                .with_context(|| format!("{} of {total} candle events within 120 s", seen.len()))?
                .context("a socket closed")??;
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text)?;
            let events = match value["event"].as_str() {
                Some("batch") => value["data"]["events"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                _ => vec![value],
            };
            for e in events {
                if e["event"] == "candle" {
                    time = e["data"]["time"].as_str().unwrap_or_default().to_owned();
                    seen.insert(e["session_id"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        let elapsed = t0.elapsed();
        drop(streams);
        // the rest of the events of this candle (stats_update), before the next run
        tokio::time::sleep(Duration::from_millis(300)).await;
        for socket in &mut sockets {
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(20), socket.next()).await
            {}
        }
        println!(
            "{run} | {time} | {:.2} s | {:.0} ms | {} | {} | {} | {}",
            elapsed.as_secs_f64(),
            tick.as_secs_f64() * 1e3,
            exchange.requests().len() - klines_before,
            exchange.all_requests().len() - all_before,
            report.steps_sent,
            poller.stats.invocations.load(Ordering::SeqCst) - invocations_before,
        );
    }
    Ok(())
}
