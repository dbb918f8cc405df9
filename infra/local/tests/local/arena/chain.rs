//! The step chain under Lambda's, SQS's and API Gateway's real limits (issue 22): every test here
//! runs with the function timeout enforced by the local event source mapping, one record per
//! invocation, each function's AWS calls allowed only what its template policies allow, and
//! fails without the fix it names.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alphalab_devstack::openrouter::{Reply, decision_for};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Arena, cli_metrics, next_frame, send, watch_until_end};

fn body(agent: Uuid, start: &str, end: &str, speed: &str) -> Value {
    json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
           "start_date": start, "end_date": end, "speed": speed})
}

async fn cursor(arena: &Arena, token: &str, id: Uuid) -> i64 {
    arena.session(token, id).await["progress"]["cursor"]
        .as_i64()
        .unwrap()
}

/// Waits until the session has decided at least `n` candles.
async fn until_cursor(arena: &Arena, token: &str, id: Uuid, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while cursor(arena, token, id).await < n {
        assert!(Instant::now() < deadline, "never reached candle {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A model agent of a new user `clerk` over the bundled hours of 2021-07-01 (24 candles).
async fn model_user(arena: &Arena, clerk: &str) -> (String, Uuid, Uuid) {
    let (token, user) = arena.user(clerk).await;
    let key = arena.key(user, "sk-or-v1-chain-0123456789abcdef").await;
    let agent = arena.agent(user, "openai/gpt-4o-mini", Some(key)).await;
    (token, user, agent)
}

#[tokio::test]
async fn a_slow_model_that_fails_every_first_attempt_completes_within_a_6_s_timeout_identical_and_never_asked_twice()
 {
    // a call may take 4 s, and the model takes 3 s to answer, a 500 on the first attempt of
    // every prompt: a window's calls take 3 s + a backoff + 3 s, more than a step's 6 s. Without
    // the deadline the invocation is abandoned mid-call (and the answer in flight asked again);
    // with it the retry is left to the next step.
    let mut arena = Arena::start(&[
        ("STEP_TIMEOUT_SECS", "6"),
        ("STEP_BUDGET_MS", "3000"),
        ("OPENROUTER_CHAT_TIMEOUT_SECS", "4"),
    ])
    .await;
    let candles = arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-07-01T00:00:00Z",
            "2021-07-02T00:00:00Z",
        )
        .await;
    arena.openrouter.set_latency(Duration::from_secs(3));
    arena
        .openrouter
        .set_script(Some(Arc::new(|call| match call.attempt {
            1 => Reply::Status(500, None),
            _ => Reply::Decide,
        })));
    let (token, _, agent) = model_user(&arena, "user_chain_slow").await;
    let id = arena
        .start_backtest(&token, body(agent, "2021-07-01", "2021-07-02", "instant"))
        .await;
    arena.run_steps().await;
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(180))
        .await;
    arena
        .assert_reference(&session, &candles, decision_for)
        .await;
    let stats = &arena.poller().stats;
    assert_eq!(
        stats.timed_out.load(Ordering::SeqCst),
        0,
        "no invocation abandoned"
    );
    assert_eq!(stats.redelivered.load(Ordering::SeqCst), 0);
    assert!(
        stats.invocations.load(Ordering::SeqCst) > 2,
        "the work was spread over steps"
    );
    let answered = arena.openrouter.answered_prompts();
    assert!(
        answered.values().all(|&n| n == 1),
        "no answered call asked twice: {answered:?}"
    );
}

#[tokio::test]
async fn ten_model_sessions_started_together_complete_without_a_visibility_timeout_wait() {
    let mut arena = Arena::start(&[]).await;
    arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-07-01T00:00:00Z",
            "2021-07-02T00:00:00Z",
        )
        .await;
    arena.openrouter.set_latency(Duration::from_millis(200));
    let mut sessions = Vec::new();
    for u in 0..2 {
        let (token, _, agent) = model_user(&arena, &format!("user_chain_ten_{u}")).await;
        for _ in 0..5 {
            let id = arena
                .start_backtest(&token, body(agent, "2021-07-01", "2021-07-02", "instant"))
                .await;
            sessions.push((token.clone(), id));
        }
    }
    let started = Instant::now();
    arena.run_steps().await;
    for (token, id) in &sessions {
        arena
            .wait_for(token, *id, &["completed"], Duration::from_secs(60))
            .await;
    }
    let took = started.elapsed();
    let stats = &arena.poller().stats;
    assert_eq!(
        stats.redelivered.load(Ordering::SeqCst),
        0,
        "no record waited out a visibility timeout"
    );
    assert_eq!(stats.timed_out.load(Ordering::SeqCst), 0);
    assert_eq!(stats.died.load(Ordering::SeqCst), 0);
    assert!(
        stats.most_at_once.load(Ordering::SeqCst) >= 5,
        "sessions advance together"
    );
    // one after the other, ten sessions of six or more 200 ms windows would take 12 s at least
    assert!(took < Duration::from_secs(12), "{took:?}");
}

#[tokio::test]
async fn three_paced_sessions_started_together_all_advance_at_once() {
    let mut arena = Arena::start(&[]).await;
    let (token, _, agent, _) = arena
        .baseline(
            "user_chain_paced",
            "baseline/sma-cross",
            "2021-03-01",
            "2021-03-05",
        )
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            arena
                .start_backtest(&token, body(agent, "2021-03-01", "2021-03-05", "fast"))
                .await,
        );
    }
    arena.run_steps().await;
    // at 0.2 s per candle, each has decided several candles within 3 s
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &ids {
        let at = cursor(&arena, &token, *id).await;
        assert!(at >= 5, "{id} at candle {at}");
    }
}

#[tokio::test]
async fn a_client_subscribing_after_the_start_gets_where_the_session_stands_and_every_later_event_in_order()
 {
    let mut arena = Arena::start(&[]).await;
    let (token, _, agent, candles) = arena
        .baseline(
            "user_chain_late",
            "baseline/sma-cross",
            "2021-03-01",
            "2021-03-03",
        )
        .await;
    let id = arena
        .start_backtest(&token, body(agent, "2021-03-01", "2021-03-03", "fast"))
        .await;
    arena.run_steps().await;
    until_cursor(&arena, &token, id, 5).await;
    let (mut client, _) =
        tokio_tungstenite::connect_async(format!("{}?token={token}", arena.gateway.ws_url))
            .await
            .unwrap();
    send(
        &mut client,
        json!({"action": "subscribe", "session_id": id}),
    )
    .await;
    let subscribed = next_frame(&mut client, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(subscribed["event"], "subscribed", "{subscribed}");
    let standing = &subscribed["data"]["session"];
    assert_eq!(standing["status"], "running", "{standing}");
    assert_eq!(standing["finished"], false);
    let at = standing["progress"]["cursor"].as_u64().unwrap();
    assert!(at >= 5, "{standing}");
    assert_eq!(standing["progress"]["total"], candles.len());
    assert!(standing["stats"]["equity"].is_number(), "{standing}");
    let last = standing["last_seq"].as_u64().unwrap();
    assert!(last > 5, "{standing}");
    // every event after `last_seq` arrives, in order, none missing
    let watched = watch_until_end(&mut client, Duration::from_secs(60)).await;
    let later: Vec<u64> = watched
        .events
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .filter(|&s| s > last)
        .collect();
    let expected: Vec<u64> = (last + 1..=last + later.len() as u64).collect();
    assert_eq!(later, expected);
    // the candles after the standing's cursor are all there
    let indexes: Vec<u64> = watched
        .named("candle")
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > last)
        .map(|e| e["data"]["progress"]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        indexes,
        (at..candles.len() as u64).collect::<Vec<u64>>(),
        "every candle after the standing"
    );
}

#[tokio::test]
async fn controls_sent_while_a_step_publishes_reach_a_subscriber_in_seq_order() {
    // many small commits at instant: the step publishes all the time
    let mut arena = Arena::start(&[("STEP_CHUNK_CANDLES", "25")]).await;
    let (token, _, agent, _) = arena
        .baseline(
            "user_chain_order",
            "baseline/sma-cross",
            "2021-01-01",
            "2021-04-01",
        )
        .await;
    let id = arena
        .start_backtest(&token, body(agent, "2021-01-01", "2021-04-01", "instant"))
        .await;
    let mut watcher = arena.watch(&token, id).await;
    arena.run_steps().await;
    // speed changes (instant to instant: the run itself is unchanged) as fast as they go
    let controls = async {
        let mut sent = 0;
        for _ in 0..40 {
            let (status, _) = arena
                .control(&token, id, "speed", Some(json!({"speed": "instant"})))
                .await;
            if status != 200 {
                break;
            }
            sent += 1;
        }
        sent
    };
    let (sent, watched) = tokio::join!(
        controls,
        watch_until_end(&mut watcher, Duration::from_secs(60))
    );
    watched.assert_gapless();
    let announced = watched.named("session_speed_changed").len();
    assert!(sent > 0 && announced == sent, "{announced} of {sent}");
}

#[tokio::test]
async fn the_sixth_active_session_of_a_user_answers_409() {
    let arena = Arena::start(&[]).await;
    let (token, user) = arena.user("user_chain_limit").await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    let start = || body(agent, "2021-03-01", "2021-03-05", "instant");
    let mut ids = Vec::new();
    // no steps run: the five stay pending
    for _ in 0..5 {
        ids.push(arena.start_backtest(&token, start()).await);
    }
    let (status, answer) = arena
        .call(
            Method::POST,
            "/api/arena/backtest/start",
            &token,
            Some(start()),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "session_limit_reached");
    // another user is not limited by this one's sessions
    let (other, other_id) = arena.user("user_chain_limit_other").await;
    let other_agent = arena.agent(other_id, "baseline/sma-cross", None).await;
    arena
        .start_backtest(
            &other,
            body(other_agent, "2021-03-01", "2021-03-05", "instant"),
        )
        .await;
    // a stopped one frees its place
    let (status, _) = arena
        .call(
            Method::POST,
            &format!("/api/arena/backtest/{}/stop", ids[0]),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    arena.start_backtest(&token, start()).await;
}

#[tokio::test]
async fn a_subscriber_whose_socket_died_is_pruned_by_the_step_function_and_the_paced_session_goes_instant()
 {
    let mut arena = Arena::start(&[("STEP_IDLE_AFTER_SECS", "3")]).await;
    let (token, _, agent, _) = arena
        .baseline(
            "user_chain_gone",
            "baseline/sma-cross",
            "2021-04-01",
            "2021-04-05",
        )
        .await;
    let id = arena
        .start_backtest(&token, body(agent, "2021-04-01", "2021-04-05", "slow"))
        .await;
    let mut watcher = arena.watch(&token, id).await;
    arena.run_steps().await;
    // paced: a candle a second while watched
    let first = next_frame(&mut watcher, Duration::from_secs(10)).await;
    assert!(first.is_some());
    until_cursor(&arena, &token, id, 2).await;
    // the client vanishes: API Gateway answers 410 for it and sends no $disconnect
    assert_eq!(arena.gateway.lose_connections(), 1);
    let lost_at = Instant::now();
    // 96 candles at slow take 96 s; unwatched for 3 s, the rest runs at instant
    arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(30))
        .await;
    assert!(
        lost_at.elapsed() < Duration::from_secs(25),
        "{:?}",
        lost_at.elapsed()
    );
    // the step function pruned it, with the permissions template.yaml gives it
    let left = arena
        .worker
        .publisher
        .registry()
        .subscribers(&format!("session#{id}"))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let pruning: Vec<_> = arena.iam["BacktestStepFunction"]
        .calls()
        .into_iter()
        .filter(|c| c.action == "dynamodb:DeleteItem")
        .collect();
    assert!(
        pruning
            .iter()
            .any(|c| c.resource == "SubscriptionsTable" && c.allowed),
        "{pruning:?}"
    );
    assert!(pruning.iter().all(|c| c.allowed), "{pruning:?}");
}

#[tokio::test]
async fn a_step_message_lost_mid_run_is_sent_again_by_the_watchdog_and_the_result_is_identical() {
    let mut arena = Arena::start(&[("STEP_STALL_SECS", "3")]).await;
    let (token, _, agent, candles) = arena
        .baseline(
            "user_chain_lost",
            "baseline/sma-cross",
            "2021-05-01",
            "2021-05-03",
        )
        .await;
    let id = arena
        .start_backtest(&token, body(agent, "2021-05-01", "2021-05-03", "fast"))
        .await;
    arena.run_steps().await;
    until_cursor(&arena, &token, id, 8).await;
    // the step dies with its invocation and its message is deleted: nothing will deliver it
    arena.stop_steps();
    arena.purge_steps().await;
    assert_eq!(arena.queue_depth().await, 0);
    let stalled_at = cursor(&arena, &token, id).await;
    arena.run_steps().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cursor(&arena, &token, id).await,
        stalled_at,
        "nothing moves it"
    );
    arena.run_watchdog(Duration::from_millis(500)).await;
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(60))
        .await;
    assert_eq!(session["progress"]["cursor"], candles.len());
    assert_eq!(
        session["result"]["metrics"],
        cli_metrics(&candles, "BTCUSDT")
    );
}

#[tokio::test]
async fn a_resume_whose_send_failed_is_picked_up_by_the_watchdog_and_the_users_retry_works() {
    let mut arena = Arena::start(&[("STEP_STALL_SECS", "3")]).await;
    let candles = arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-05-01T00:00:00Z",
            "2021-05-03T00:00:00Z",
        )
        .await;
    // the arena function of a moment when the queue did not answer
    let missing = super::missing_queue();
    let vars = arena.env.owned_lookup();
    let broken = platform::Env::from_lookup(move |name| match name {
        "STEPS_QUEUE_URL" => Some(missing.clone()),
        _ => vars(name),
    });
    let broken = alphalab_devstack::TestServer::serve(alphalab_arena::router(
        alphalab_arena::State::new(
            &<alphalab_arena::Config as platform::FromEnv>::from_env(&broken).unwrap(),
        )
        .await
        .unwrap(),
    ))
    .await
    .unwrap();
    let (token, user) = arena.user("user_chain_resume").await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    let resume = async |server: &alphalab_devstack::TestServer, id: Uuid| {
        server
            .call(
                Method::POST,
                &format!("/api/arena/backtest/{id}/resume"),
                Some(&token),
                None,
            )
            .await
            .unwrap()
    };
    let pause_then_resume_broken = async |arena: &Arena, id: Uuid| {
        until_cursor(arena, &token, id, 5).await;
        let (status, _) = arena.control(&token, id, "pause", None).await;
        assert_eq!(status, 200);
        arena
            .wait_for(&token, id, &["paused"], Duration::from_secs(10))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, answer) = resume(&broken, id).await;
        assert_eq!(status, 503, "{answer}");
        // the resume took effect; its step was not sent
        assert_eq!(arena.session(&token, id).await["status"], "running");
    };
    // the user retries: the same resume answers 200 and sends the step
    let retried = arena
        .start_backtest(&token, body(agent, "2021-05-01", "2021-05-03", "fast"))
        .await;
    arena.run_steps().await;
    pause_then_resume_broken(&arena, retried).await;
    let (status, answer) = resume(&arena.server, retried).await;
    assert_eq!(status, 200, "{answer}");
    let session = arena
        .wait_for(&token, retried, &["completed"], Duration::from_secs(60))
        .await;
    assert_eq!(
        session["result"]["metrics"],
        cli_metrics(&candles, "BTCUSDT")
    );
    // nobody retries: the watchdog finds it stalled and sends its step
    let left = arena
        .start_backtest(&token, body(agent, "2021-05-01", "2021-05-03", "fast"))
        .await;
    pause_then_resume_broken(&arena, left).await;
    arena.run_watchdog(Duration::from_millis(500)).await;
    let session = arena
        .wait_for(&token, left, &["completed"], Duration::from_secs(60))
        .await;
    assert_eq!(
        session["result"]["metrics"],
        cli_metrics(&candles, "BTCUSDT")
    );
    // the broken sends were to a queue that is not the template's: AWS would deny them too
    arena.iam.clear();
}

#[tokio::test]
async fn a_stale_duplicate_failing_on_its_last_delivery_leaves_a_running_session_running() {
    let arena = Arena::start(&[]).await;
    let (token, user) = arena.user("user_chain_stale").await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    let id = arena
        .start_backtest(&token, body(agent, "2021-03-01", "2021-03-05", "instant"))
        .await;
    // a running session whose step of version 2 ended at version 3 and sent its successor
    sqlx::query(
        "UPDATE test_sessions SET status = 'running', version = 3, step_version = 2,
             chain_version = 3 WHERE id = $1",
    )
    .bind(id)
    .execute(&arena.pool)
    .await
    .unwrap();
    // a step function whose queue does not answer: the old message's resend fails
    let missing = super::missing_queue();
    let vars = arena.env.owned_lookup();
    let env = platform::Env::from_lookup(move |name| match name {
        "STEPS_QUEUE_URL" => Some(missing.clone()),
        _ => vars(name),
    });
    let broken = alphalab_backtest_step::worker(
        &<alphalab_backtest_step::Config as platform::FromEnv>::from_env(&env).unwrap(),
    )
    .await
    .unwrap();
    let record = |version: i64| {
        let mut r = aws_lambda_events::event::sqs::SqsMessage::default();
        r.message_id = Some(format!("m{version}"));
        r.body = Some(json!({"session_id": id, "user_id": user, "version": version}).to_string());
        r.attributes = [("ApproximateReceiveCount".to_owned(), "5".to_owned())].into();
        r
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // its last delivery fails (the resend), and the session is not failed for it
    assert!(broken.handle(record(1), deadline).await.is_ok());
    let session = arena.session(&token, id).await;
    assert_eq!(session["status"], "running", "{session}");
    assert!(session["reason"].is_null());
    // a stale dead letter fails nothing either; the current one does, in product words
    let vars = arena.env.owned_lookup();
    let env = platform::Env::from_lookup(move |name| vars(name));
    let watchdog = alphalab_step_watchdog::watchdog(
        &<alphalab_step_watchdog::Config as platform::FromEnv>::from_env(&env).unwrap(),
    )
    .await
    .unwrap();
    sqlx::query("UPDATE test_sessions SET chain_version = 2 WHERE id = $1")
        .bind(id)
        .execute(&arena.pool)
        .await
        .unwrap();
    watchdog.dead_letter(record(1)).await.unwrap();
    assert_eq!(arena.session(&token, id).await["status"], "running");
    watchdog.dead_letter(record(3)).await.unwrap();
    let session = arena.session(&token, id).await;
    assert_eq!(session["status"], "failed");
    assert!(
        session["reason"]
            .as_str()
            .unwrap()
            .starts_with("the backtest stopped advancing"),
        "{session}"
    );
}

#[tokio::test]
async fn a_forced_failures_reason_event_notification_and_activity_hold_no_internal_text() {
    let mut arena = Arena::start(&[("STEP_MAX_RECEIVE_COUNT", "1")]).await;
    let (token, user, agent, _) = arena
        .baseline(
            "user_chain_internal",
            "baseline/sma-cross",
            "2021-03-01",
            "2021-03-05",
        )
        .await;
    let id = arena
        .start_backtest(&token, body(agent, "2021-03-01", "2021-03-05", "instant"))
        .await;
    // a checkpoint the engine cannot read (its error names Rust types and JSON paths)
    sqlx::query(
        "UPDATE test_sessions SET checkpoint = '{\"version\": 3, \"engine\": {\"config\": 7}}',
             total_candles = 96 WHERE id = $1",
    )
    .bind(id)
    .execute(&arena.pool)
    .await
    .unwrap();
    let mut watcher = arena.watch(&token, id).await;
    arena.run_steps().await;
    let watched = watch_until_end(&mut watcher, Duration::from_secs(30)).await;
    let session = arena
        .wait_for(&token, id, &["failed"], Duration::from_secs(10))
        .await;
    let reason = session["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("internal error, reference "), "{reason}");
    let event = watched.named("session_failed")[0]["data"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    let texts: (String, String) = sqlx::query_as(
        "SELECT (SELECT message FROM notifications WHERE user_id = $1 AND type = 'test_failed'),
                (SELECT details::text FROM activity_log WHERE user_id = $1 AND action = 'test_failed')",
    )
    .bind(user)
    .fetch_one(&arena.pool)
    .await
    .unwrap();
    for text in [&reason, &event, &texts.0, &texts.1] {
        for internal in [
            "http",
            "127.0.0.1",
            "localhost",
            "SELECT",
            "INSERT",
            "UPDATE",
            "::",
            ".rs",
            "sqlx",
            "serde",
            "invalid type",
            "column",
            "line ",
        ] {
            assert!(!text.contains(internal), "{internal:?} in {text:?}");
        }
    }
    assert!(texts.0.contains(&reason), "{}", texts.0);
}

#[tokio::test]
async fn a_hole_of_a_day_in_the_cached_range_is_fetched_and_the_exchanges_gaps_are_not_asked_again()
{
    use alphalab_devstack::binance::{GAP, HOUR_MS, START_MS, candle};
    let mut arena = Arena::start(&[]).await;
    // a week of the exchange's hours cached, but for its third day
    let week: Vec<engine::Candle> = (0..168)
        .filter(|h| !GAP.contains(h))
        .map(|h| step_worker::candles::candle(candle(h)))
        .collect();
    let rows: Vec<store::market_data::CandleRow> = week
        .iter()
        .filter(|c| !(48..72).contains(&((c.time - START_MS) / HOUR_MS)))
        .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
        .collect();
    store::market_data::insert(&arena.pool, "BTCUSDT", "1h", "binance", &rows)
        .await
        .unwrap();
    let (token, user) = arena.user("user_chain_hole").await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    let id = arena
        .start_backtest(&token, body(agent, "2022-01-01", "2022-01-08", "fast"))
        .await;
    arena.run_steps().await;
    until_cursor(&arena, &token, id, 2).await;
    // a later fill of the cache (another source's candle where the exchange has none) does not
    // change the running session
    let fill = candle(GAP.start + 1);
    store::market_data::insert(&arena.pool, "BTCUSDT", "1h", "test", &[fill])
        .await
        .unwrap();
    let (status, _) = arena
        .control(&token, id, "speed", Some(json!({"speed": "instant"})))
        .await;
    assert_eq!(status, 200);
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(60))
        .await;
    assert_eq!(session["progress"]["total"], week.len());
    assert_eq!(session["progress"]["cursor"], week.len());
    assert_eq!(session["result"]["metrics"], cli_metrics(&week, "BTCUSDT"));
    // the day and the gap were asked for (two stretches), the gap remembered
    let asked = arena.binance.requests();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked
            .iter()
            .any(|q| q.contains(&format!("startTime={}", START_MS + 48 * HOUR_MS))),
        "{asked:?}"
    );
    let gaps: i64 = sqlx::query_scalar("SELECT count(*) FROM market_data_gaps")
        .fetch_one(&arena.pool)
        .await
        .unwrap();
    assert_eq!(gaps, GAP.end - GAP.start);
    // a second session over the week asks nobody
    sqlx::query("DELETE FROM market_data_cache WHERE source = 'test'")
        .execute(&arena.pool)
        .await
        .unwrap();
    let again = arena
        .start_backtest(&token, body(agent, "2022-01-01", "2022-01-08", "instant"))
        .await;
    arena
        .wait_for(&token, again, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(arena.binance.requests().len(), 2);
}

#[tokio::test]
async fn postgres_stopped_for_60_s_mid_run_is_survived_with_an_identical_result() {
    // a cluster of the test's own: the others' tests keep theirs
    let cluster = alphalab_devstack::pg::PgCluster::start_throwaway().unwrap();
    let admin = cluster.url("postgres");
    alphalab_devstack::pg::ensure_database(&admin, "outage")
        .await
        .unwrap();
    let url = cluster.url("outage");
    alphalab_devstack::pg::migrate(&url).await.unwrap();
    let env = alphalab_devstack::TestEnv::on(alphalab_devstack::pg::TestDatabase {
        name: "outage".into(),
        url,
    })
    .await
    .unwrap();
    let mut arena = Arena::start_on(env, &[]).await;
    let (token, _, agent, candles) = arena
        .baseline(
            "user_chain_outage",
            "baseline/sma-cross",
            "2021-06-01",
            "2021-06-03",
        )
        .await;
    let id = arena
        .start_backtest(&token, body(agent, "2021-06-01", "2021-06-03", "fast"))
        .await;
    arena.run_steps().await;
    until_cursor(&arena, &token, id, 8).await;
    cluster.stop().unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    cluster.start_server().unwrap();
    // the failed step comes back after 5 s, 20 s, 80 s: the third retry finds the database
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(120))
        .await;
    assert_eq!(session["progress"]["cursor"], candles.len());
    assert_eq!(
        session["result"]["metrics"],
        cli_metrics(&candles, "BTCUSDT")
    );
    let stats = &arena.poller().stats;
    assert!(stats.reported_failures.load(Ordering::SeqCst) >= 1);
    assert_eq!(stats.timed_out.load(Ordering::SeqCst), 0);
    let _ = sqlx::query("SELECT 1").execute(&arena.pool).await;
}
