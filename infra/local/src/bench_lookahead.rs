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

use alphalab_devstack::TestEnv;
use alphalab_devstack::openrouter::{MockOpenRouter, Reply};
use anyhow::{Context, Result, bail};
use platform::{Env, FromEnv};
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
    let mut env = TestEnv::new().await?;
    let mock = MockOpenRouter::start().await?;
    mock.set_latency(Duration::from_millis(args.latency_ms));
    mock.set_script(Some(Arc::new(|call| Reply::Content(reply(&call.prompt)))));
    let local = crate::local_ws::LocalWs::start(([127, 0, 0, 1], 0).into()).await?;
    env.set("WEBSOCKET_API_ENDPOINT", local.gateway.endpoint.clone())
        .set(
            "ENCRYPTION_KEYS",
            adapters::crypto::Keyring::generate_text(),
        )
        .set("OPENROUTER_BASE_URL", mock.base_url.clone())
        .set("RATE_LIMIT_PER_MINUTE", "0")
        .set("LOG_FORMAT", "json");
    let e = Env::from_lookup(env.owned_lookup());
    let arena = alphalab_arena_api::State::new(&alphalab_arena_api::Config::from_env(&e)?).await?;
    let server = alphalab_devstack::TestServer::serve(alphalab_arena_api::router(arena)).await?;
    let pool = sqlx::PgPool::connect(&env.db.url).await?;

    let file = crate::workspace_root().join("data/market/BTCUSDT-1h.csv");
    let candles: Vec<engine::Candle> = engine::parse_csv(&std::fs::read_to_string(&file)?)?
        .into_iter()
        .filter(|c| c.time >= 1_609_459_200_000) // 2021-01-01
        .take(args.candles)
        .collect();
    let Some(last) = candles.last() else {
        bail!("no candles");
    };
    let end = chrono::DateTime::from_timestamp_millis(last.time + 3_600_000)
        .context("end")?
        .to_rfc3339();
    let rows: Vec<store::market_data::CandleRow> = candles
        .iter()
        .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
        .collect();
    store::market_data::insert(&pool, "BTCUSDT", "1h", "binance", &rows).await?;

    let user = store::users::provision(&pool, "user_bench_lookahead")
        .await?
        .context("provisioning")?;
    let keys = adapters::crypto::Keyring::parse(&e.require("ENCRYPTION_KEYS")?)
        .map_err(|e| anyhow::anyhow!(e))?;
    let key_id = uuid::Uuid::new_v4();
    let plaintext = "sk-or-v1-bench-0123456789abcdef";
    let sealed = keys.seal(user, key_id, plaintext)?;
    store::api_keys::insert(
        &pool,
        user,
        &store::api_keys::NewKey {
            id: key_id,
            name: "bench",
            masked_key: &store::api_keys::mask(plaintext),
            encrypted_key: &sealed.bytes,
            key_version: sealed.version,
        },
    )
    .await?;
    let new: store::agents::NewAgent = serde_json::from_value(json!({
        "name": "bench llm", "mode": "omni", "model": "openai/gpt-4o-mini",
        "strategy_prompt": "Trend following.", "indicators": ["rsi_14", "sma_20"],
        "api_key_id": key_id}))?;
    let fields = new.fields().map_err(|e| anyhow::anyhow!("agent: {e:?}"))?;
    let agent = store::agents::create(&pool, user, &fields, None).await?.id;
    let (_poller, _worker) = crate::steps::start_with(&e, 720).await?;

    println!(
        "{} candles of BTCUSDT 1h, model latency {} ms, HOLD about 90 %",
        candles.len(),
        args.latency_ms
    );
    println!(
        "lookahead | wall | model calls | wasted | wasted share | trades | speed-up over the first"
    );
    let mut first: Option<(u32, Duration)> = None;
    let mut results: Vec<Value> = Vec::new();
    for k in &args.lookaheads {
        let token = env.token("user_bench_lookahead");
        let started = Instant::now();
        let (status, body) = server
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
            let token = env.token("user_bench_lookahead");
            let (code, read) = server
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
        let speedup = match first {
            Some((_, base)) => format!("{:.2}x", base.as_secs_f64() / wall.as_secs_f64()),
            None => "-".into(),
        };
        println!(
            "{k} | {:.1} s | {calls} | {wasted} | {:.1} % | {} | {speedup}",
            wall.as_secs_f64(),
            if calls > 0.0 {
                wasted / calls * 100.0
            } else {
                0.0
            },
            session["result"]["metrics"]["total_trades"]
        );
        if first.is_none() {
            first = Some((*k, wall));
        }
        results.push(session["result"]["metrics"].clone());
    }
    if results.windows(2).any(|w| w[0] != w[1]) {
        bail!("the lookaheads disagree on the metrics");
    }
    println!("every lookahead gave the same metrics");
    Ok(())
}
