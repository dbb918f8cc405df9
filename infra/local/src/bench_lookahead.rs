//! `alphalab bench-lookahead`: an LLM agent through the local stack (arena function over HTTP,
//! moto SQS with the local event source mapping, backtest-step, Postgres) against a local
//! OpenRouter-format server that answers after a fixed latency, HOLD about 90 % of the time
//! (a pure function of the prompt), at each lookahead asked for. Reports wall time, model
//! calls, the share of speculative calls wasted, and the speed-up over lookahead 1.
//!
//! `cargo run --release --bin alphalab -- bench-lookahead` (2,000 candles, 1 s per call: the
//! lookahead-1 run alone takes about 35 minutes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use alphalab_devstack::openrouter::{MockOpenRouter, Reply};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub(crate) struct BenchLookaheadArgs {
    /// Hourly BTCUSDT candles from 2021-01-01.
    #[arg(long, default_value_t = 2_000)]
    candles: usize,
    /// The model's latency per call, milliseconds.
    #[arg(long, default_value_t = 1_000)]
    latency_ms: u64,
    /// Lookaheads to run, in order (the speed-up is over lookahead 1, when it runs).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    lookaheads: Vec<u32>,
}

/// About 90 % HOLD, else long, short or close: a pure function of the prompt.
fn reply(prompt: &str) -> String {
    let action = match alphalab_devstack::openrouter::prompt_number(prompt) % 30 {
        0 => "long",
        1 => "short",
        2 => "close",
        _ => "hold",
    };
    json!({"action": action, "reasoning": "bench", "confidence": 60,
           "order": {"stop_loss_pct": 2.0, "take_profit_pct": 4.0}})
    .to_string()
}

pub(crate) async fn run(args: BenchLookaheadArgs) -> Result<()> {
    let mock = MockOpenRouter::start().await?;
    mock.set_latency(Duration::from_millis(args.latency_ms));
    mock.set_script(Some(Arc::new(|call| Reply::Content(reply(&call.prompt)))));
    let stack = crate::bench_stack::BenchStack::start(&[
        ("OPENROUTER_BASE_URL", mock.base_url.as_str()),
        ("RATE_LIMIT_PER_MINUTE", "0"),
    ])
    .await?;
    let candles = stack
        .btc_hours(|all| {
            all.into_iter()
                .filter(|c| c.time >= 1_609_459_200_000) // 2021-01-01
                .take(args.candles)
                .collect()
        })
        .await?;
    let last = candles.last().context("no candles")?;
    let end = chrono::DateTime::from_timestamp_millis(last.time + 3_600_000)
        .context("end")?
        .to_rfc3339();

    // the key first (the agent names it), for the user the agent will belong to
    let clerk = "user_bench_lookahead";
    let user = store::users::provision(&stack.pool, clerk)
        .await?
        .context("provisioning")?;
    let key_id = crate::secrets::store_key(
        &stack.pool,
        &stack.vars,
        user,
        "bench",
        "sk-or-v1-bench-0123456789abcdef",
    )
    .await?;
    let (_, _, agent) = stack
        .agent(
            clerk,
            json!({"name": "bench llm", "mode": "omni", "model": "openai/gpt-4o-mini",
                   "strategy_prompt": "Trend following.", "indicators": ["rsi_14", "sma_20"],
                   "api_key_id": key_id}),
        )
        .await?;
    let mapping = crate::steps::mapping("BacktestStepFunction", None, 720)?;
    let (_poller, _worker) = crate::steps::start(&stack.vars, mapping).await?;

    println!(
        "{} candles of BTCUSDT 1h, model latency {} ms, HOLD about 90 %",
        candles.len(),
        args.latency_ms
    );
    println!("lookahead | wall | model calls | wasted | wasted share | trades");
    let mut walls: Vec<(u32, Duration)> = Vec::new();
    let mut results: Vec<Value> = Vec::new();
    for k in &args.lookaheads {
        let token = stack.env.token(clerk);
        let started = Instant::now();
        let (status, body) = stack
            .server
            .call(
                reqwest::Method::POST,
                "/api/arena/backtest/start",
                Some(&token),
                Some(
                    json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
                            "start_date": "2021-01-01", "end_date": end, "speed": "instant",
                            "lookahead": k, "fresh_decisions": true}),
                ),
            )
            .await?;
        if status != 201 {
            bail!("start answered {status}: {body}");
        }
        let id = body["session"]["id"].as_str().context("id")?.to_owned();
        let session = loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            // a fresh token each time: a run outlives a session token
            let token = stack.env.token(clerk);
            let (code, read) = stack
                .server
                .call(
                    reqwest::Method::GET,
                    &format!("/api/arena/sessions/{id}"),
                    Some(&token),
                    None,
                )
                .await?;
            if code != 200 {
                bail!("reading the session answered {code}: {read}");
            }
            match read["session"]["status"].as_str() {
                Some("completed") => break read["session"].clone(),
                Some("failed" | "stopped") => bail!("session ended: {read}"),
                _ => {}
            }
        };
        let wall = started.elapsed();
        let calls = session["model_calls"].as_f64().unwrap_or(0.0);
        let wasted = session["speculative_calls_wasted"].as_f64().unwrap_or(0.0);
        println!(
            "{k} | {:.1} s | {calls} | {wasted} | {:.1} % | {}",
            wall.as_secs_f64(),
            if calls > 0.0 {
                wasted / calls * 100.0
            } else {
                0.0
            },
            session["result"]["metrics"]["total_trades"]
        );
        walls.push((*k, wall));
        results.push(session["result"]["metrics"].clone());
    }
    if let Some((_, one)) = walls.iter().find(|(k, _)| *k == 1) {
        for (k, wall) in walls.iter().filter(|(k, _)| *k != 1) {
            println!(
                "speed-up of lookahead {k} over 1: {:.2}x",
                one.as_secs_f64() / wall.as_secs_f64()
            );
        }
    }
    if results.windows(2).any(|w| w[0] != w[1]) {
        bail!("the lookaheads disagree on the metrics");
    }
    println!("every lookahead gave the same metrics");
    Ok(())
}
