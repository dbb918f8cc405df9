//! `alphalab bench-ws`: publish-to-receive latency and delivered events per second through the
//! local WebSocket gateway, for 1 and 100 subscribers of one session. Everything is real and on
//! this machine: a throwaway Postgres, moto for the registry, the gateway, the ws function, the
//! publisher posting to `@connections`, and WebSocket clients.
//!
//! `cargo run --release --bin alphalab -- bench-ws` (about a minute).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alphalab_devstack::TestEnv;
use anyhow::{Context, Result};
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use platform::{Env, FromEnv};
use realtime::Envelope;
use realtime::events::{AiThinking, Event};
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args)]
pub(crate) struct BenchWsArgs {
    /// Single-event publishes timed for latency.
    #[arg(long, default_value_t = 200)]
    latency_samples: u64,
    /// Events sent for throughput, in publishes of `--chunk` events.
    #[arg(long, default_value_t = 5_000)]
    events: u64,
    #[arg(long, default_value_t = 100)]
    chunk: u64,
}

/// (seq, when) of every event a client received.
type Received = Arc<Mutex<Vec<(u64, Instant)>>>;

pub(crate) async fn run(args: BenchWsArgs) -> Result<()> {
    let mut env = TestEnv::new().await?;
    let local = crate::local_ws::LocalWs::start(([127, 0, 0, 1], 0).into()).await?;
    let gateway = &local.gateway;
    env.set("WEBSOCKET_API_ENDPOINT", gateway.endpoint.clone());
    env.set("DATABASE_MAX_CONNECTIONS", "10");
    let config = alphalab_ws::Config::from_env(&Env::from_lookup(env.lookup()))?;
    let ws = alphalab_ws::Ws::new(&config).await?;
    local.serve(ws.clone());
    let pool = sqlx::PgPool::connect(&env.db.url).await?;
    let token = env.token("user_bench");

    println!("subscribers | latency p50 | p99 | max | events/s delivered | posts | bytes/event");
    for subscribers in [1usize, 100] {
        let mut clients = Vec::new();
        for _ in 0..subscribers {
            let (socket, _) =
                tokio_tungstenite::connect_async(format!("{}?token={token}", gateway.ws_url))
                    .await
                    .context("connecting")?;
            clients.push(socket);
        }
        let user: uuid::Uuid =
            sqlx::query_scalar("SELECT id FROM users WHERE clerk_id = 'user_bench'")
                .fetch_one(&pool)
                .await?;
        let session: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO test_sessions (user_id, type, status, asset, timeframe, starting_capital, agent_snapshot, config)
             VALUES ($1, 'backtest', 'running', 'BTCUSDT', '1h', 10000, '{}', '{}') RETURNING id",
        )
        .bind(user)
        .fetch_one(&pool)
        .await?;
        let mut received: Vec<Received> = Vec::new();
        for mut socket in clients {
            let subscribe =
                serde_json::json!({"action": "subscribe", "session_id": session}).to_string();
            socket.send(Message::Text(subscribe.into())).await?;
            socket.next().await.context("subscribed")??;
            let log: Received = Arc::default();
            received.push(log.clone());
            tokio::spawn(async move {
                while let Some(Ok(Message::Text(text))) = socket.next().await {
                    let now = Instant::now();
                    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    match value["event"].as_str() {
                        Some("batch") => {
                            for e in value["data"]["events"].as_array().into_iter().flatten() {
                                log.push((e["seq"].as_u64().unwrap_or_default(), now));
                            }
                        }
                        _ => log.push((value["seq"].as_u64().unwrap_or_default(), now)),
                    }
                }
            });
        }
        let event = |seq: u64| {
            Envelope::session(
                session,
                seq,
                &Event::AiThinking(AiThinking { index: seq }),
                Utc::now(),
            )
        };
        let wait_for = |count: usize| {
            let received = received.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                while received
                    .iter()
                    .any(|r| r.lock().unwrap_or_else(|p| p.into_inner()).len() < count)
                {
                    anyhow::ensure!(Instant::now() < deadline, "events lost");
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                Ok(())
            }
        };

        // latency: one event at a time, until every subscriber has it
        let mut latencies = Vec::new();
        for seq in 1..=args.latency_samples {
            let start = Instant::now();
            ws.publisher.publish(session, &[event(seq)]).await;
            wait_for(seq as usize).await?;
            for log in &received {
                let log = log.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((_, at)) = log.iter().find(|(s, _)| *s == seq) {
                    latencies.push(at.duration_since(start));
                }
            }
        }
        latencies.sort();
        let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];

        // throughput: chunks of events, as a step at instant speed publishes them
        let first = args.latency_samples + 1;
        let last = args.latency_samples + args.events;
        let start = Instant::now();
        let (mut posts, mut bytes) = (0, 0);
        let mut seq = first;
        while seq <= last {
            let end = (seq + args.chunk - 1).min(last);
            let chunk: Vec<Envelope> = (seq..=end).map(event).collect();
            let report = ws.publisher.publish(session, &chunk).await;
            posts += report.posts;
            bytes += report.bytes;
            seq = end + 1;
        }
        wait_for(last as usize).await?;
        let elapsed = start.elapsed();
        let delivered = args.events as f64 * subscribers as f64;
        println!(
            "{subscribers:>11} | {:>11.2?} | {:.2?} | {:.2?} | {:>18.0} | {posts} | {:.0}",
            pick(0.5),
            pick(0.99),
            latencies.last().copied().unwrap_or_default(),
            delivered / elapsed.as_secs_f64(),
            bytes as f64 / delivered,
        );
    }
    Ok(())
}
