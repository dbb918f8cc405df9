//! `alphalab bench-results`: what issue 23 promised to measure, through the local stack.
//!
//! 1. The whole bundled BTCUSDT 1h history (45,024 candles) backtested with
//!    `baseline/sma-cross` through the arena function and the step chain, then its exports
//!    through the export function over HTTP: equity CSV, equity JSON and trades CSV, every page
//!    (wall time, bytes, pages, largest page), and its signed ledger (every page); the finishing
//!    step logs how long its evidence and ledger took and how long writing the result took.
//! 2. `GET /api/results` for a user with `--results` results (copies of that run's result, each
//!    with its own session), the first page and the 100th at `limit=100`.
//!
//! `cargo run --release --bin alphalab -- bench-results` (about a minute).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use platform::{ApiConfig, ApiState, FromEnv};
use serde_json::json;

#[derive(clap::Args)]
pub(crate) struct BenchResultsArgs {
    /// Results of the second user (for the list's pages).
    #[arg(long, default_value_t = 10_000)]
    results: i64,
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

pub(crate) async fn run(args: BenchResultsArgs) -> Result<()> {
    // the finishing step's two lines: the evidence and ledger built, the result written
    platform::telemetry::init_with_writer(
        platform::config::LogFormat::Pretty,
        std::io::stderr,
        Some("warn,step_worker::seal=info,step_worker::commit=info"),
    );
    let stack = crate::bench_stack::BenchStack::start(&[("RATE_LIMIT_PER_MINUTE", "0")]).await?;
    let api = ApiState::new(&ApiConfig::from_env(&stack.vars)?).await?;
    let readers = alphalab_devstack::TestServer::serve(platform::http::service(
        alphalab_results::routes(api.clone()).merge(alphalab_export::routes(api)),
        (),
    ))
    .await?;
    let candles = stack.btc_hours(|all| all).await?;
    let (token, user, agent) = stack
        .agent(
            "user_bench_results",
            json!({"name": "bench", "mode": "omni", "model": "baseline/sma-cross"}),
        )
        .await?;
    let mapping = crate::steps::mapping("BacktestStepFunction", None, 720)?;
    let (_poller, _worker) = crate::steps::start(&stack.vars, mapping).await?;
    let last = candles.last().context("candles")?.time + 3_600_000;
    let end = store::candle_time::format_ms(last).context("end")?;
    let (status, body) = stack
        .server
        .call(
            reqwest::Method::POST,
            "/api/arena/backtest/start",
            Some(&token),
            Some(
                json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
                        "start_date": "2017-08-17T04:00:00Z", "end_date": end, "speed": "instant"}),
            ),
        )
        .await?;
    if status != 201 {
        bail!("start answered {status}: {body}");
    }
    let session = body["session"]["id"].as_str().context("id")?.to_owned();
    let started = Instant::now();
    let result = loop {
        let (_, body) = stack
            .server
            .call(
                reqwest::Method::GET,
                &format!("/api/arena/sessions/{session}"),
                Some(&token),
                None,
            )
            .await?;
        match body["session"]["status"].as_str() {
            Some("completed") => break body["session"]["result"].clone(),
            Some("failed") => bail!("the backtest failed: {body}"),
            _ if started.elapsed() > Duration::from_secs(300) => bail!("not done in 300 s"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let id = result["id"].as_str().context("result id")?.to_owned();
    println!(
        "{} candles of BTCUSDT 1h, baseline/sma-cross: {} trades, backtest {:.1} s through the step chain",
        candles.len(),
        result["metrics"]["total_trades"],
        started.elapsed().as_secs_f64()
    );

    let (status, detail) = readers
        .call(
            reqwest::Method::GET,
            &format!("/api/results/{id}"),
            Some(&token),
            None,
        )
        .await?;
    if status != 200 || detail["result"]["evidence"].is_null() {
        bail!("the result has no evidence: {detail}");
    }
    println!(
        "evidence: {}",
        detail["result"]["evidence"]["verdict"]["summary"]
    );
    println!("export | median wall (all pages) | bytes | pages | largest page");
    for (format, part) in [
        ("csv", "equity"),
        ("json", "equity"),
        ("csv", "trades"),
        ("ndjson", "ledger"),
    ] {
        let mut walls = Vec::new();
        let (mut bytes, mut pages, mut largest) = (0, 0, 0);
        for _ in 0..args.runs {
            let started = Instant::now();
            (bytes, pages, largest) = (0, 0, 0);
            let mut cursor: Option<String> = None;
            loop {
                let mut path = match part {
                    "ledger" => format!("/api/results/{id}/ledger?limit=100000"),
                    _ => format!("/api/export/results/{id}?format={format}&part={part}"),
                };
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let response = readers
                    .request(reqwest::Method::GET, &path, Some(&token))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("{path}: {}", response.status());
                }
                cursor = response
                    .headers()
                    .get("x-next-cursor")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response.bytes().await?;
                bytes += body.len();
                largest = largest.max(body.len());
                pages += 1;
                if cursor.is_none() {
                    break;
                }
            }
            walls.push(started.elapsed());
        }
        walls.sort();
        println!(
            "{part} {format} | {:.1} ms | {bytes} | {pages} | {largest} (limit {})",
            walls[walls.len() / 2].as_secs_f64() * 1e3,
            4 * 1024 * 1024
        );
    }

    // a user with many results: copies of this run's session and result
    let (other_token, other, other_agent) = stack
        .agent(
            "user_bench_many_results",
            json!({"name": "many", "mode": "omni", "model": "baseline/sma-cross"}),
        )
        .await?;
    let inserted = Instant::now();
    sqlx::query(
        "WITH s AS (
             INSERT INTO test_sessions (user_id, agent_id, type, status, asset, timeframe,
                 start_date, end_date, starting_capital, speed, agent_snapshot, config, cursor,
                 total_candles, completed_at, started_at)
             SELECT $2, $3, type, status, asset, timeframe, start_date, end_date,
                    starting_capital, speed, agent_snapshot, config, cursor, total_candles,
                    completed_at, started_at
             FROM test_sessions, generate_series(1, $4)
             WHERE user_id = $5 AND id = $1::uuid
             RETURNING id)
         INSERT INTO test_results (session_id, user_id, agent_id, type, mode, asset, timeframe,
             start_date, end_date, starting_capital, final_equity, total_pnl, total_pnl_pct,
             buy_hold_return_pct, max_drawdown_pct, win_rate, profit_factor, sharpe_ratio,
             total_trades, winning_trades, losing_trades, fees_paid, metrics, equity_curve,
             agent_snapshot, config, duration_seconds, created_at)
         SELECT s.id, $2, $3, r.type, r.mode, r.asset, r.timeframe, r.start_date, r.end_date,
                r.starting_capital, r.final_equity, r.total_pnl,
                -- a spread of returns, with ties
                r.total_pnl_pct + (row_number() OVER () % 500),
                r.buy_hold_return_pct, r.max_drawdown_pct, r.win_rate, r.profit_factor,
                r.sharpe_ratio, r.total_trades, r.winning_trades, r.losing_trades, r.fees_paid,
                r.metrics, r.equity_curve, r.agent_snapshot, r.config, r.duration_seconds,
                now() - (row_number() OVER ()) * interval '1 minute'
         FROM s, test_results r WHERE r.user_id = $5 AND r.id = $6::uuid",
    )
    .bind(&session)
    .bind(other)
    .bind(other_agent)
    .bind(args.results)
    .bind(user)
    .bind(&id)
    .execute(&stack.pool)
    .await?;
    sqlx::query("ANALYZE").execute(&stack.pool).await?;
    println!(
        "{} results inserted for a second user in {:.1} s",
        args.results,
        inserted.elapsed().as_secs_f64()
    );
    println!("GET /api/results (limit 100) | page | median | p95 (of 50)");
    for sort in ["created_at", "total_return_pct"] {
        let base = format!("/api/results?limit=100&sort={sort}");
        // the cursor of page 99, to time page 100
        let mut cursor = String::new();
        for _ in 0..99 {
            let (_, page) = readers
                .call(
                    reqwest::Method::GET,
                    &format!("{base}&cursor={cursor}"),
                    Some(&other_token),
                    None,
                )
                .await?;
            cursor = page["next_cursor"]
                .as_str()
                .context("fewer than 100 pages")?
                .to_owned();
        }
        for (page, path) in [(1, base.clone()), (100, format!("{base}&cursor={cursor}"))] {
            let mut times = Vec::new();
            for i in 0..55 {
                let started = Instant::now();
                let (status, body) = readers
                    .call(reqwest::Method::GET, &path, Some(&other_token), None)
                    .await?;
                let elapsed = started.elapsed();
                if status != 200 || body["results"].as_array().map(Vec::len) != Some(100) {
                    bail!("{path}: {status}");
                }
                if i >= 5 {
                    times.push(elapsed);
                }
            }
            times.sort();
            println!(
                "sort={sort} | {page} | {:.2} ms | {:.2} ms",
                times[times.len() / 2].as_secs_f64() * 1e3,
                times[times.len() * 95 / 100].as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
