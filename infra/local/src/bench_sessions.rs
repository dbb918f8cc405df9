//! `alphalab bench-sessions`: `GET /api/arena/sessions` for a user with 20 finished model
//! sessions of 45,024 decisions each (the whole bundled BTCUSDT 1h history decided by a model),
//! through the arena function over HTTP, on its own Postgres and moto. Reports the latency of
//! the page of 20 (p50, p95, mean over `--requests` requests, after a warm-up).
//!
//! `cargo run --release --bin alphalab -- bench-sessions` (about a minute: most of it inserts
//! the 900,480 decisions).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

#[derive(clap::Args)]
pub(crate) struct BenchSessionsArgs {
    /// Sessions of the user.
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Decisions (`ai_thoughts` rows) per session.
    #[arg(long, default_value_t = 45_024)]
    decisions: i64,
    /// Timed requests (after 5 untimed ones).
    #[arg(long, default_value_t = 200)]
    requests: usize,
}

pub(crate) async fn run(args: BenchSessionsArgs) -> Result<()> {
    let stack = crate::bench_stack::BenchStack::start(&[("RATE_LIMIT_PER_MINUTE", "0")]).await?;
    let (token, user, agent) = stack
        .agent(
            "user_bench_sessions",
            json!({"name": "bench", "mode": "omni", "model": "openai/gpt-4o-mini",
                   "indicators": ["rsi_14"], "strategy_prompt": "Follow the trend."}),
        )
        .await?;
    let started = Instant::now();
    for _ in 0..args.sessions {
        // a finished model session as the step worker leaves it: decisions, calls and cost
        let session: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO test_sessions (user_id, agent_id, type, status, asset, timeframe,
                 start_date, end_date, starting_capital, speed, agent_snapshot, config, cursor,
                 total_candles, model_calls, model_cost_usd, completed_at, started_at)
             VALUES ($1, $2, 'backtest', 'completed', 'BTCUSDT', '1h', '2017-08-17', '2022-10-12',
                 10000, 'instant', '{\"name\": \"bench\", \"model\": \"openai/gpt-4o-mini\"}',
                 '{}', $3, $3, $3, 1.5, now(), now())
             RETURNING id",
        )
        .bind(user)
        .bind(agent)
        .bind(args.decisions)
        .fetch_one(&stack.pool)
        .await?;
        sqlx::query(
            "INSERT INTO ai_thoughts (session_id, user_id, candle_index, candle_time, prompt_hash,
                 action, reasoning, confidence, prompt_tokens, completion_tokens, cost_usd,
                 latency_ms)
             SELECT $1, $2, i, timestamptz '2017-08-17 04:00Z' + i * interval '1 hour',
                    md5(i::text) || md5(i::text), 'hold', 'no clear signal; holding', 55, 900, 40,
                    0.00003, 800
             FROM generate_series(0, $3 - 1) AS i",
        )
        .bind(session)
        .bind(user)
        .bind(args.decisions)
        .execute(&stack.pool)
        .await?;
        // the counter the step worker keeps as it stores decisions
        sqlx::query("UPDATE test_sessions SET decisions = $2 WHERE id = $1")
            .bind(session)
            .bind(args.decisions)
            .execute(&stack.pool)
            .await?;
    }
    sqlx::query("ANALYZE").execute(&stack.pool).await?;
    println!(
        "{} sessions of {} decisions each inserted in {:.1} s",
        args.sessions,
        args.decisions,
        started.elapsed().as_secs_f64()
    );
    let path = format!("/api/arena/sessions?limit={}", args.sessions.min(100));
    let mut times = Vec::with_capacity(args.requests);
    for i in 0..args.requests + 5 {
        let started = Instant::now();
        let (status, body) = stack
            .server
            .call(reqwest::Method::GET, &path, Some(&token), None)
            .await?;
        let elapsed = started.elapsed();
        if status != 200 {
            bail!("{path} answered {status}: {body}");
        }
        let listed = body["sessions"].as_array().context("sessions")?.len();
        if listed != args.sessions.min(100) {
            bail!("{listed} sessions listed");
        }
        if i >= 5 {
            times.push(elapsed);
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "GET {path}: p50 {:.2} ms, p95 {:.2} ms, mean {:.2} ms over {} requests",
        ms(at(0.5)),
        ms(at(0.95)),
        ms(mean),
        times.len()
    );
    Ok(())
}
