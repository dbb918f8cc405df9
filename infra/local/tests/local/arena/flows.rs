//! Baseline sessions: the whole flow, controls, tenancy, validation.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Arena, cli_metrics, watch_until_end};

fn start_body(agent: uuid::Uuid, start: &str, end: &str, speed: &str) -> Value {
    json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
           "start_date": start, "end_date": end, "speed": speed})
}

#[tokio::test]
async fn a_year_of_sma_cross_runs_over_many_steps_and_equals_the_cli_bit_for_bit() {
    // small chunks and a tiny budget: one chunk per step, so the year takes ~18 steps, each
    // restoring the engine from the previous one's checkpoint
    let mut arena = Arena::start(&[("STEP_CHUNK_CANDLES", "500"), ("STEP_BUDGET_MS", "1")]).await;
    let (token, user, agent, candles) = arena
        .baseline(
            "user_arena_year",
            "baseline/sma-cross",
            "2021-01-01",
            "2022-01-01",
        )
        .await;
    let id = arena
        .start_backtest(
            &token,
            start_body(agent, "2021-01-01", "2022-01-01T00:00:00Z", "instant"),
        )
        .await;
    let pending = arena.session(&token, id).await;
    assert_eq!(pending["status"], "pending");
    let mut watcher = arena.watch(&token, id).await;
    arena.run_steps().await;
    let watched = watch_until_end(&mut watcher, Duration::from_secs(60)).await;
    watched.assert_gapless();

    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(10))
        .await;
    assert_eq!(session["progress"]["cursor"], candles.len());
    assert_eq!(session["progress"]["total"], candles.len());
    let result = &session["result"];
    let cli = cli_metrics(&candles, "BTCUSDT");
    assert_eq!(
        result["metrics"], cli,
        "the step chain and the CLI agree bit for bit"
    );
    assert_eq!(
        result["can_generate_certificate"],
        result["metrics"]["total_return_pct"].as_f64().unwrap() >= 0.0
            && result["metrics"]["total_trades"].as_u64().unwrap() >= 1
    );

    // the live stream: one candle event per candle, in order; the completion carries the result
    let candle_events = watched.named("candle");
    assert_eq!(candle_events.len(), candles.len());
    for (i, e) in candle_events.iter().enumerate() {
        assert_eq!(e["data"]["progress"]["index"], i);
    }
    assert_eq!(watched.named("session_initialized").len(), 1);
    let completed = watched.named("session_completed");
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["data"]["result"], *result);
    // at instant, events travel packed: far fewer frames than events
    assert!(
        watched.frames * 20 < watched.events.len(),
        "{} frames for {} events",
        watched.frames,
        watched.events.len()
    );

    // the rows: trades as the metrics count them, one result, a notification and activity
    let trades: i64 = sqlx::query_scalar("SELECT count(*) FROM trades WHERE session_id = $1")
        .bind(id)
        .fetch_one(&arena.pool)
        .await
        .unwrap();
    assert_eq!(trades, cli["total_trades"].as_i64().unwrap());
    let closed = watched.named("position_closed").len() as i64;
    assert_eq!(closed, trades);
    // the completion notification names the session and its result
    let (data, result_id): (serde_json::Value, uuid::Uuid) = sqlx::query_as(
        "SELECT n.data, r.id FROM notifications n, test_results r
         WHERE n.user_id = $2 AND n.type = 'test_completed' AND r.session_id = $1",
    )
    .bind(id)
    .bind(user)
    .fetch_one(&arena.pool)
    .await
    .unwrap();
    assert_eq!(
        data,
        json!({"session_id": id.to_string(), "result_id": result_id.to_string()})
    );
    let (results, notes, activity): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM test_results WHERE session_id = $1),
                (SELECT count(*) FROM notifications WHERE user_id = $2 AND type = 'test_completed'),
                (SELECT count(*) FROM activity_log WHERE user_id = $2 AND entity_id = $1
                   AND action IN ('test_started', 'test_completed'))",
    )
    .bind(id)
    .bind(user)
    .fetch_one(&arena.pool)
    .await
    .unwrap();
    assert_eq!((results, notes, activity), (1, 1, 2));
    // no ai_thoughts rows for a baseline's decisions (DESIGN 5b)
    let thoughts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ai_thoughts WHERE session_id = $1")
            .bind(id)
            .fetch_one(&arena.pool)
            .await
            .unwrap();
    assert_eq!(thoughts, 0);
    // many steps ran, each deleted from the queue; nothing left behind
    let stats = &arena.poller().stats;
    let invocations = stats.invocations.load(std::sync::atomic::Ordering::SeqCst);
    assert!(invocations >= 17, "{invocations} invocations");
    assert_eq!(stats.died.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(arena.queue_depth().await, 0, "nothing left in the queue");
    // the list shows it
    let (status, list) = arena
        .call(Method::GET, "/api/arena/sessions", &token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["sessions"][0]["id"], id.to_string());
}

#[tokio::test]
async fn pause_resume_speed_and_stop_take_effect_mid_run() {
    let mut arena = Arena::start(&[]).await;
    let (token, _, agent, _) = arena
        .baseline(
            "user_arena_controls",
            "baseline/sma-cross",
            "2021-03-01",
            "2021-03-05",
        )
        .await;
    let id = arena
        .start_backtest(
            &token,
            start_body(agent, "2021-03-01", "2021-03-05", "fast"),
        )
        .await;
    let mut watcher = arena.watch(&token, id).await;
    arena.run_steps().await;
    // paced: candle by candle, each candle's events in one frame
    let first = super::next_frame(&mut watcher, Duration::from_secs(10))
        .await
        .unwrap();
    let names: Vec<&str> = first["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["session_initialized", "candle", "stats_update"],
        "{first}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, paused) = arena.control(&token, id, "pause", None).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["session"]["status"], "paused");
    // the running step stops at its next candle; then nothing moves
    tokio::time::sleep(Duration::from_millis(600)).await;
    let at = arena.session(&token, id).await["progress"]["cursor"].clone();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let still = arena.session(&token, id).await;
    assert_eq!(
        still["progress"]["cursor"], at,
        "a paused session does not advance"
    );
    assert!(at.as_i64().unwrap() > 0 && at.as_i64().unwrap() < 96);
    // pausing twice is refused
    let (status, body) = arena.control(&token, id, "pause", None).await;
    assert_eq!(status, 409, "{body}");
    // speed while paused: stays paused
    let (status, body) = arena
        .control(&token, id, "speed", Some(json!({"speed": "instant"})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["status"], "paused");
    assert_eq!(body["session"]["speed"], "instant");
    let (status, body) = arena
        .control(&token, id, "speed", Some(json!({"speed": "warp"})))
        .await;
    assert_eq!(status, 422, "{body}");
    // resume over the WebSocket: the same service; it sends the next step
    super::send(&mut watcher, json!({"action": "resume", "session_id": id})).await;
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(20))
        .await;
    assert_eq!(session["progress"]["cursor"], 96);
    let watched = watch_until_end(&mut watcher, Duration::from_secs(10)).await;
    let names: Vec<&str> = watched
        .events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"session_paused") && names.contains(&"session_resumed"),
        "{names:?}"
    );
    // a finished session refuses controls
    let (status, _) = arena.control(&token, id, "resume", None).await;
    assert_eq!(status, 409);

    // stop mid-run: the position closes at the last close and the result is written
    let id = arena
        .start_backtest(
            &token,
            start_body(agent, "2021-03-01", "2021-03-05", "fast"),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = arena.control(&token, id, "stop", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["status"], "stopped");
    let stopped = arena
        .wait_for(&token, id, &["stopped"], Duration::from_secs(10))
        .await;
    let cursor = stopped["progress"]["cursor"].as_i64().unwrap();
    assert!(cursor > 0 && cursor < 96, "stopped at {cursor}");
    assert_eq!(stopped["result"]["metrics"]["candles"], cursor);
    assert_eq!(stopped["reason"], "stopped by the user");
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM trades WHERE session_id = $1 AND exit_time IS NULL",
    )
    .bind(id)
    .fetch_one(&arena.pool)
    .await
    .unwrap();
    assert_eq!(open, 0);
}

#[tokio::test]
async fn two_users_sessions_never_see_each_others_events_or_rows() {
    let mut arena = Arena::start(&[]).await;
    arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-05-01T00:00:00Z",
            "2021-05-11T00:00:00Z",
        )
        .await;
    let (alice, alice_id) = arena.user("user_arena_alice").await;
    let (bob, bob_id) = arena.user("user_arena_bob").await;
    let a_agent = arena.agent(alice_id, "baseline/sma-cross", None).await;
    let b_agent = arena.agent(bob_id, "baseline/rsi-reversion", None).await;
    let a = arena
        .start_backtest(
            &alice,
            start_body(a_agent, "2021-05-01", "2021-05-11", "instant"),
        )
        .await;
    let b = arena
        .start_backtest(
            &bob,
            start_body(b_agent, "2021-05-01", "2021-05-11", "instant"),
        )
        .await;
    // Bob cannot watch, read or control Alice's session: it does not exist for him
    let (mut bob_client, _) =
        tokio_tungstenite::connect_async(format!("{}?token={bob}", arena.gateway.ws_url))
            .await
            .unwrap();
    super::send(
        &mut bob_client,
        json!({"action": "subscribe", "session_id": a}),
    )
    .await;
    let refused = super::next_frame(&mut bob_client, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(refused["data"]["code"], "not_found", "{refused}");
    let (status, _) = arena
        .call(Method::GET, &format!("/api/arena/sessions/{a}"), &bob, None)
        .await;
    assert_eq!(status, 404);
    for verb in ["pause", "resume", "stop"] {
        let (status, body) = arena
            .call(
                Method::POST,
                &format!("/api/arena/backtest/{a}/{verb}"),
                &bob,
                None,
            )
            .await;
        assert_eq!(status, 404, "{verb}: {body}");
    }
    let mut alice_client = arena.watch(&alice, a).await;
    super::send(
        &mut bob_client,
        json!({"action": "subscribe", "session_id": b}),
    )
    .await;
    let ok = super::next_frame(&mut bob_client, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ok["event"], "subscribed");
    arena.run_steps().await;
    let (wa, wb) = tokio::join!(
        watch_until_end(&mut alice_client, Duration::from_secs(30)),
        watch_until_end(&mut bob_client, Duration::from_secs(30))
    );
    assert!(wa.events.iter().all(|e| e["session_id"] == a.to_string()));
    assert!(wb.events.iter().all(|e| e["session_id"] == b.to_string()));
    wa.assert_gapless();
    wb.assert_gapless();
    // the lists and rows are each one's own
    let (_, list) = arena
        .call(Method::GET, "/api/arena/sessions", &bob, None)
        .await;
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.to_string()]);
    let foreign: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM trades t JOIN test_sessions s ON s.id = t.session_id
         WHERE t.user_id <> s.user_id",
    )
    .fetch_one(&arena.pool)
    .await
    .unwrap();
    assert_eq!(foreign, 0);
}

#[tokio::test]
async fn start_refuses_each_invalid_field_by_name_and_sends_nothing() {
    let arena = Arena::start(&[]).await;
    let (token, user) = arena.user("user_arena_validation").await;
    let (_, other) = arena.user("user_arena_other").await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    let llm_without_key = arena.agent(user, "openai/gpt-4o-mini", None).await;
    let foreign = arena.agent(other, "baseline/sma-cross", None).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"agent_id": foreign}), "agent_id"),
        (json!({"agent_id": llm_without_key}), "agent_id"),
        (json!({"asset": "DOGEUSDT"}), "asset"),
        (json!({"timeframe": "2h"}), "timeframe"),
        (json!({"start_date": "yesterday"}), "start_date"),
        (
            json!({"start_date": "2017-01-01", "end_date": "2017-09-01"}),
            "start_date",
        ),
        (json!({"end_date": "2020-12-01"}), "end_date"),
        (json!({"end_date": "2099-01-01"}), "end_date"),
        (
            json!({"timeframe": "1m", "start_date": "2020-01-01", "end_date": "2021-01-01"}),
            "end_date",
        ),
        (json!({"initial_capital": -5}), "initial_capital"),
        (json!({"speed": "warp"}), "speed"),
        (json!({"fee_bps": 5000}), "fee_bps"),
        (json!({"slippage_bps": -1}), "slippage_bps"),
        (json!({"leverage": 3}), "leverage"),
    ];
    for (change, field) in cases {
        let mut body = json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
                              "start_date": "2021-01-01", "end_date": "2021-02-01"});
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = arena
            .call(
                Method::POST,
                "/api/arena/backtest/start",
                &token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 422, "{body} -> {answer}");
        let fields: Vec<&str> = answer["error"]["details"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{body} -> {answer}");
    }
    let (status, answer) = arena
        .call(
            Method::POST,
            "/api/arena/backtest/start",
            &token,
            Some(json!({"agent_id": agent, "surprise": 1})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM test_sessions")
        .fetch_one(&arena.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    assert_eq!(arena.queue_depth().await, 0, "nothing left in the queue");
}

#[tokio::test]
async fn a_range_missing_from_the_cache_is_fetched_by_the_first_step_with_its_gaps() {
    let mut arena = Arena::start(&[]).await;
    let (token, user) = arena.user("user_arena_fetch").await;
    let agent = arena.agent(user, "baseline/buy-and-hold", None).await;
    // the mock exchange has hourly candles from 2022-01-01 with hours 100..105 missing
    let id = arena
        .start_backtest(
            &token,
            start_body(agent, "2022-01-01", "2022-01-08", "instant"),
        )
        .await;
    assert!(
        arena.binance.requests().is_empty(),
        "nothing fetched within the request"
    );
    arena.run_steps().await;
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(session["progress"]["total"], 168 - 5, "the gap stays a gap");
    assert_eq!(session["result"]["metrics"]["candles"], 163);
    assert_eq!(arena.binance.requests().len(), 1);
    let cached: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM market_data_cache WHERE asset = 'BTCUSDT' AND timeframe = '1h'",
    )
    .fetch_one(&arena.pool)
    .await
    .unwrap();
    assert_eq!(cached, 163);
    // a second session over the same range reads the cache only
    let again = arena
        .start_backtest(
            &token,
            start_body(agent, "2022-01-02", "2022-01-07", "instant"),
        )
        .await;
    arena
        .wait_for(&token, again, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(arena.binance.requests().len(), 1);
}

#[tokio::test]
async fn a_step_that_keeps_failing_backs_off_and_fails_the_session_on_its_last_delivery_in_product_words()
 {
    // three receives, 1 s then 4 s apart (in AWS: five, 5 s to 5 minutes apart)
    let mut arena = Arena::start(&[
        ("STEP_RETRY_BASE_SECS", "1"),
        ("STEP_MAX_RECEIVE_COUNT", "3"),
    ])
    .await;
    // a long visibility timeout: only the step's own backoff brings a failed record back soon
    arena.mapping.visibility_secs = 120;
    arena.binance.fail_next(&[500; 50]);
    let (token, user) = arena.user("user_arena_unavailable").await;
    let agent = arena.agent(user, "baseline/buy-and-hold", None).await;
    let id = arena
        .start_backtest(
            &token,
            start_body(agent, "2022-01-01", "2022-01-08", "instant"),
        )
        .await;
    let started = std::time::Instant::now();
    arena.run_steps().await;
    let session = arena
        .wait_for(&token, id, &["failed"], Duration::from_secs(30))
        .await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5),
        "1 s and 4 s between the receives: {waited:?}"
    );
    let reason = session["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the market data provider did not answer for ")
            && reason.contains("(reference "),
        "{reason}"
    );
    assert!(!reason.contains("Binance answered"), "{reason}");
    let stats = &arena.poller().stats;
    assert_eq!(
        stats
            .reported_failures
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    assert_eq!(stats.timed_out.load(std::sync::atomic::Ordering::SeqCst), 0);
    let notes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND type = 'test_failed'",
    )
    .bind(user)
    .fetch_one(&arena.pool)
    .await
    .unwrap();
    assert_eq!(notes, 1);
}

#[tokio::test]
async fn a_paced_session_nobody_watches_runs_at_instant() {
    let mut arena = Arena::start(&[]).await;
    let (token, _, agent, _) = arena
        .baseline(
            "user_arena_idle",
            "baseline/sma-cross",
            "2021-04-01",
            "2021-04-05",
        )
        .await;
    let id = arena
        .start_backtest(
            &token,
            start_body(agent, "2021-04-01", "2021-04-05", "slow"),
        )
        .await;
    // last watched three minutes ago (a start counts as watched: the client has two minutes to
    // subscribe before pacing stops)
    sqlx::query(
        "UPDATE test_sessions SET last_watched_at = now() - interval '3 minutes' WHERE id = $1",
    )
    .bind(id)
    .execute(&arena.pool)
    .await
    .unwrap();
    arena.run_steps().await;
    // 96 candles at slow would take 96 s
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(
        session["speed"], "slow",
        "the speed setting itself is unchanged"
    );
    assert_eq!(session["progress"]["cursor"], 96);
}

#[tokio::test]
async fn stopping_a_paused_session_finishes_it_without_a_resume() {
    let mut arena = Arena::start(&[]).await;
    let (token, user, agent, _) = arena
        .baseline(
            "user_arena_stop_paused",
            "baseline/sma-cross",
            "2021-03-01",
            "2021-03-05",
        )
        .await;
    let id = arena
        .start_backtest(
            &token,
            start_body(agent, "2021-03-01", "2021-03-05", "fast"),
        )
        .await;
    arena.run_steps().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, _) = arena.control(&token, id, "pause", None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = arena.control(&token, id, "stop", None).await;
    assert_eq!(status, 200);
    let stopped = arena
        .wait_for(&token, id, &["stopped"], Duration::from_secs(10))
        .await;
    let cursor = stopped["progress"]["cursor"].as_i64().unwrap();
    assert!(cursor > 0 && cursor < 96, "{stopped}");
    assert_eq!(stopped["result"]["metrics"]["candles"], cursor);
    // not the test that was asked for: never certifiable, whatever its return
    assert_eq!(stopped["result"]["can_generate_certificate"], false);
    // the user pressed stop: the activity log has it, no notification tells them
    let (notes, activity): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM notifications WHERE user_id = $1),
                (SELECT count(*) FROM activity_log WHERE user_id = $1 AND action = 'test_stopped')",
    )
    .bind(user)
    .fetch_one(&arena.pool)
    .await
    .unwrap();
    assert_eq!((notes, activity), (0, 1));
}

#[tokio::test]
async fn a_start_whose_first_step_cannot_be_queued_answers_503_and_leaves_nothing() {
    let missing = super::missing_queue();
    let mut arena = Arena::start(&[("STEPS_QUEUE_URL", missing.as_str())]).await;
    let (token, user) = arena.user("user_arena_no_queue").await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    let (status, body) = arena
        .call(
            Method::POST,
            "/api/arena/backtest/start",
            &token,
            Some(start_body(agent, "2021-03-01", "2021-03-05", "instant")),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let (sessions, started): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM test_sessions),
                (SELECT count(*) FROM activity_log WHERE action = 'test_started')",
    )
    .fetch_one(&arena.pool)
    .await
    .unwrap();
    assert_eq!((sessions, started), (0, 0));
    // not the template's queue: AWS would deny the send too (three tries)
    let denied = arena.iam["ArenaFunction"].denied();
    assert_eq!(denied.len(), 3, "{denied:?}");
    assert!(denied.iter().all(|c| c.action == "sqs:SendMessage"));
    arena.iam.clear();
}

#[tokio::test]
async fn warmup_candles_warm_the_indicators_before_the_start_and_count_nowhere() {
    let mut arena = Arena::start(&[("STEP_CHUNK_CANDLES", "200")]).await;
    arena.run_steps().await;
    // the bundled candles from a day before the range: the warm-up reads them from the cache
    let cached = arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-01-31T00:00:00Z",
            "2021-03-01T00:00:00Z",
        )
        .await;
    let candles: Vec<engine::Candle> = cached
        .into_iter()
        .filter(|c| c.time >= 1_612_137_600_000)
        .collect();
    let (token, user) = arena.user("user_arena_warmup").await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    let mut body = start_body(agent, "2021-02-01", "2021-03-01", "instant");
    body["warmup_candles"] = json!(30);
    let id = arena.start_backtest(&token, body).await;
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(session["config"]["warmup_candles"], 30);
    assert_eq!(
        session["progress"]["total"],
        candles.len(),
        "warm-up not counted"
    );

    // the reference: the engine warmed on the 30 bundled candles before the start
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/market/BTCUSDT-1h.csv");
    let all = engine::parse_csv(&std::fs::read_to_string(file).unwrap()).unwrap();
    let at = all.iter().position(|c| c.time == candles[0].time).unwrap();
    let config: engine::EngineConfig =
        serde_json::from_value(session["config"]["engine"].clone()).unwrap();
    let mut engine = engine::Engine::new(config.clone()).unwrap();
    for c in &all[at - 30..at] {
        engine.warm(*c).unwrap();
    }
    let baseline =
        engine::baseline::Baseline::new(engine::baseline::Kind::SmaCross, engine.indicators())
            .unwrap();
    for c in &candles {
        engine.step(*c, |ctx| baseline.decide(ctx)).unwrap();
    }
    let (_, metrics) = engine.finish().unwrap();
    assert_eq!(
        session["result"]["metrics"],
        store::steps::metrics_json(&metrics),
        "the step chain warms up as the engine does"
    );
    // and it is not the unwarmed run: sma_30 is defined from the first candle
    let (_, cold) = super::reference(config, &candles, |_| String::new());
    assert_ne!(
        session["result"]["metrics"],
        store::steps::metrics_json(&cold)
    );
    let (status, bad) = arena
        .call(
            Method::POST,
            "/api/arena/backtest/start",
            &token,
            Some(
                json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
                        "start_date": "2021-02-01", "end_date": "2021-03-01",
                        "warmup_candles": 1001}),
            ),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(
        bad["error"]["details"]["fields"][0]["field"],
        "warmup_candles"
    );
}
