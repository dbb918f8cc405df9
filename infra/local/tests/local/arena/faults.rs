//! At-least-once delivery and dying invocations (DESIGN section 5): a duplicate or a replay
//! changes nothing, a step killed anywhere resumes to the same result, and no decided candle
//! is paid for twice.

use std::time::Duration;

use serde_json::json;
use step_worker::KillPoint;

use super::{Arena, cli_metrics, watch_until_end};

/// Runs a model session of 48 hourly candles in steps of 10 candles, with `prepare` applied to
/// the arena before the steps run, and checks it against the uninterrupted reference.
async fn llm_session_matches_the_reference(
    prepare: impl FnOnce(&mut Arena),
    deliveries: usize,
) -> Arena {
    // short steps, and a 3 s timeout: a killed step is back after the 3 s visibility
    let mut arena = Arena::start(&[
        ("STEP_CHUNK_CANDLES", "10"),
        ("STEP_BUDGET_MS", "1"),
        ("STEP_TIMEOUT_SECS", "3"),
    ])
    .await;
    let candles = arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-07-01T00:00:00Z",
            "2021-07-03T00:00:00Z",
        )
        .await;
    let (token, user) = arena.user("user_arena_faults").await;
    let key = arena.key(user, "sk-or-v1-faults-0123456789abcdef").await;
    let agent = arena.agent(user, "openai/gpt-4o-mini", Some(key)).await;
    prepare(&mut arena);
    let id = arena
        .start_backtest(
            &token,
            json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
                   "start_date": "2021-07-01", "end_date": "2021-07-03", "speed": "instant",
                   "lookahead": 1}),
        )
        .await;
    let mut watcher = arena.watch(&token, id).await;
    arena.run_steps_delivering(deliveries).await;
    let watched = watch_until_end(&mut watcher, Duration::from_secs(60)).await;
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(10))
        .await;
    assert_eq!(session["progress"]["cursor"], 48);

    arena
        .assert_reference(
            &session,
            &candles,
            alphalab_devstack::openrouter::decision_for,
        )
        .await;
    // no candle skipped or decided twice, and each was paid for once
    let indexes: Vec<i64> = sqlx::query_scalar(
        "SELECT candle_index FROM ai_thoughts WHERE session_id = $1 ORDER BY candle_index",
    )
    .bind(id)
    .fetch_all(&arena.pool)
    .await
    .unwrap();
    assert_eq!(indexes, (0..48).collect::<Vec<i64>>());
    let answered = arena.openrouter.answered_prompts();
    assert_eq!(answered.len(), 48, "one distinct prompt per candle");
    assert!(answered.values().all(|&n| n == 1), "{answered:?}");
    assert_eq!(session["model_calls"], 48);
    // a watcher saw every candle, in order (replays publish again; seq numbers never repeat)
    let mut seen: Vec<u64> = watched
        .named("candle")
        .iter()
        .map(|e| e["data"]["progress"]["index"].as_u64().unwrap())
        .collect();
    seen.dedup();
    assert_eq!(seen.len(), 48);
    arena
}

#[tokio::test]
async fn every_step_delivered_twice_changes_nothing() {
    let arena = llm_session_matches_the_reference(|_| {}, 2).await;
    let stats = &arena.poller().stats;
    assert!(stats.invocations.load(std::sync::atomic::Ordering::SeqCst) >= 5);
}

#[tokio::test]
async fn a_step_killed_after_the_model_call_mid_chunk_or_before_the_send_resumes_to_the_same_result()
 {
    let arena = llm_session_matches_the_reference(
        |arena| {
            arena.worker.faults.arm(KillPoint::AfterModelCall(7));
            arena.worker.faults.arm(KillPoint::MidChunk(23));
            arena.worker.faults.arm(KillPoint::AfterCommitBeforeSend(3));
        },
        1,
    )
    .await;
    let died = arena
        .poller()
        .stats
        .died
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(died, 3, "three invocations died and were redelivered");
}

#[tokio::test]
async fn a_baseline_session_killed_and_duplicated_still_equals_the_cli() {
    let mut arena = Arena::start(&[
        ("STEP_CHUNK_CANDLES", "100"),
        ("STEP_BUDGET_MS", "1"),
        ("STEP_TIMEOUT_SECS", "3"),
    ])
    .await;
    let candles = arena
        .load(
            "ETHUSDT",
            "1h",
            "2021-02-01T00:00:00Z",
            "2021-03-01T00:00:00Z",
        )
        .await;
    let (token, user) = arena.user("user_arena_baseline_faults").await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    arena.worker.faults.arm(KillPoint::MidChunk(150));
    arena.worker.faults.arm(KillPoint::AfterCommitBeforeSend(4));
    let id = arena
        .start_backtest(
            &token,
            json!({"agent_id": agent, "asset": "ETHUSDT", "timeframe": "1h",
                   "start_date": "2021-02-01", "end_date": "2021-03-01", "speed": "instant"}),
        )
        .await;
    arena.run_steps_delivering(2).await;
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(60))
        .await;
    assert_eq!(session["progress"]["cursor"], candles.len());
    assert_eq!(
        session["result"]["metrics"],
        cli_metrics(&candles, "ETHUSDT")
    );
    let results: i64 =
        sqlx::query_scalar("SELECT count(*) FROM test_results WHERE session_id = $1")
            .bind(id)
            .fetch_one(&arena.pool)
            .await
            .unwrap();
    assert_eq!(results, 1);
}
