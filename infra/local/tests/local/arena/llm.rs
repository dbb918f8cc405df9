//! Sessions of a model agent against a local server speaking OpenRouter's chat-completions
//! format: malformed replies, 429 with Retry-After, 500, timeouts, 402, schema refusal.

use std::sync::Arc;
use std::time::Duration;

use adapters::openrouter::RetryPolicy;
use alphalab_devstack::openrouter::Reply;
use serde_json::json;

use super::{Arena, watch_until_end};

const KEY: &str = "sk-or-v1-good-0123456789abcdef0123";

/// Quick retries (the production policy waits 0.5 s, 1 s, 2 s); `Retry-After` is still honoured.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(5),
    }
}

async fn llm_arena(model: &str, key: &str) -> (Arena, String, uuid::Uuid, uuid::Uuid) {
    let mut arena = Arena::start(&[]).await;
    arena.worker.retry = quick();
    arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-06-01T00:00:00Z",
            "2021-06-02T00:00:00Z",
        )
        .await;
    let (token, user) = arena.user("user_arena_llm").await;
    let key = arena.key(user, key).await;
    let agent = arena.agent(user, model, Some(key)).await;
    (arena, token, user, agent)
}

fn body(agent: uuid::Uuid) -> serde_json::Value {
    // one candle at a time: the requests are numbered in candle order
    json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
           "start_date": "2021-06-01", "end_date": "2021-06-02", "speed": "instant", "lookahead": 1})
}

#[tokio::test]
async fn an_llm_agent_runs_through_a_malformed_reply_a_429_a_500_and_a_timeout() {
    let (mut arena, token, user, agent) = llm_arena("openai/gpt-4o-mini", KEY).await;
    // requests are sequential: the n-th is known in advance
    arena
        .openrouter
        .set_script(Some(Arc::new(|call| match call.n {
            3 => Reply::Content("I think we should buy, definitely!".into()),
            6 => Reply::Status(429, Some(1)),
            10 => Reply::Status(500, None),
            13 => Reply::Late(Duration::from_secs(4)),
            _ => Reply::Decide,
        })));
    let id = arena.start_backtest(&token, body(agent)).await;
    let mut watcher = arena.watch(&token, id).await;
    arena.run_steps().await;
    let watched = watch_until_end(&mut watcher, Duration::from_secs(60)).await;
    watched.assert_gapless();
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(10))
        .await;
    assert_eq!(session["progress"]["cursor"], 24);
    assert_eq!(session["model_calls"], 24);
    assert!(session["model_cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(watched.named("ai_decision").len(), 24);

    let calls = arena.openrouter.chat_calls();
    assert_eq!(
        calls.len(),
        27,
        "24 candles + one retry each for the 429, the 500, the timeout"
    );
    assert!(calls.iter().all(|c| c.format == "json_schema"
        && c.max_tokens == Some(150)
        && c.temperature == Some(0.3)
        && c.model == "openai/gpt-4o-mini"));
    // the retry of each failed request asks the same question
    for n in [6, 10, 13] {
        assert_eq!(calls[n].prompt, calls[n - 1].prompt, "request {}", n + 1);
        assert_eq!(calls[n].attempt, 2);
    }
    // one decision per candle, persisted with usage; the malformed one kept with its error
    let rows = store::steps::thoughts(&arena.pool, user, id, 0, 1_000)
        .await
        .unwrap();
    assert_eq!(rows.len(), 24);
    let malformed = &rows[2];
    assert_eq!(malformed.action, "hold");
    assert!(
        malformed
            .error
            .as_deref()
            .unwrap()
            .contains("no JSON object"),
        "{malformed:?}"
    );
    assert_eq!(
        malformed.raw_response.as_deref(),
        Some("I think we should buy, definitely!")
    );
    assert!(rows.iter().all(|r| r.prompt_tokens.unwrap_or(0) > 0
        && r.cost_usd.unwrap_or(0.0) > 0.0
        && r.prompt_hash.as_ref().is_some_and(|h| h.len() == 64)
        && r.latency_ms.is_some()));
    // the key never appears in the stored decisions or the session
    let text = serde_json::to_string(&(session, &rows)).unwrap();
    assert!(!text.contains(KEY));
}

#[tokio::test]
async fn a_402_ends_the_session_failed_with_the_reason_and_notifications_and_no_retry() {
    let (mut arena, token, user, agent) = llm_arena("openai/gpt-4o-mini", KEY).await;
    arena
        .openrouter
        .set_script(Some(Arc::new(|_| Reply::Status(402, None))));
    let id = arena.start_backtest(&token, body(agent)).await;
    let mut watcher = arena.watch(&token, id).await;
    arena.run_steps().await;
    let watched = watch_until_end(&mut watcher, Duration::from_secs(30)).await;
    let failed = watched.named("session_failed");
    assert_eq!(failed.len(), 1);
    let session = arena
        .wait_for(&token, id, &["failed"], Duration::from_secs(10))
        .await;
    let reason = session["reason"].as_str().unwrap();
    assert!(reason.contains("no credits"), "{reason}");
    assert_eq!(failed[0]["data"]["reason"], reason);
    assert_eq!(arena.openrouter.chat_calls().len(), 1, "402 is not retried");
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT type FROM notifications WHERE user_id = $1 ORDER BY type")
            .bind(user)
            .fetch_all(&arena.pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["key_no_credits", "test_failed"]);
    let status: String = sqlx::query_scalar("SELECT status FROM api_keys WHERE user_id = $1")
        .bind(user)
        .fetch_one(&arena.pool)
        .await
        .unwrap();
    assert_eq!(status, "no_credits");
    // and the next start is refused with why
    let (code, answer) = arena
        .call(
            reqwest::Method::POST,
            "/api/arena/backtest/start",
            &token,
            Some(body(agent)),
        )
        .await;
    assert_eq!(code, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_credits")
    );
}

#[tokio::test]
async fn a_model_that_refuses_json_schema_is_asked_for_a_json_object_instead() {
    let (mut arena, token, _, agent) = llm_arena("acme/no-schema-model", KEY).await;
    let id = arena.start_backtest(&token, body(agent)).await;
    arena.run_steps().await;
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(session["model_calls"], 24);
    let formats: Vec<String> = arena
        .openrouter
        .chat_calls()
        .into_iter()
        .map(|c| c.format)
        .collect();
    assert_eq!(formats[0], "json_schema");
    assert_eq!(formats.len(), 25, "one refusal, then one call per candle");
    assert!(
        formats[1..].iter().all(|f| f == "json_object"),
        "{formats:?}"
    );
}

#[tokio::test]
async fn a_model_failing_on_five_candles_in_a_row_ends_the_session_failed() {
    let (mut arena, token, user, agent) = llm_arena("openai/gpt-4o-mini", KEY).await;
    arena
        .openrouter
        .set_script(Some(Arc::new(|_| Reply::Status(503, None))));
    let id = arena.start_backtest(&token, body(agent)).await;
    arena.run_steps().await;
    let session = arena
        .wait_for(&token, id, &["failed"], Duration::from_secs(30))
        .await;
    assert!(
        session["reason"]
            .as_str()
            .unwrap()
            .contains("5 candles in a row"),
        "{session}"
    );
    // 3 attempts per candle (the retry policy), 5 candles
    assert_eq!(arena.openrouter.chat_calls().len(), 15);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT type FROM notifications WHERE user_id = $1")
            .bind(user)
            .fetch_all(&arena.pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["test_failed"]);
}

#[tokio::test]
async fn an_empty_200_is_billed_counted_and_holds_after_one_retry() {
    let (mut arena, token, user, agent) = llm_arena("openai/gpt-4o-mini", KEY).await;
    // the third candle's request is answered 200 with usage and no message, and so is its retry
    arena
        .openrouter
        .set_script(Some(Arc::new(|call| match call.n {
            3 | 4 => Reply::Empty,
            _ => Reply::Decide,
        })));
    let id = arena.start_backtest(&token, body(agent)).await;
    arena.run_steps().await;
    let session = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(30))
        .await;
    let calls = arena.openrouter.chat_calls();
    assert_eq!(calls.len(), 25, "24 candles, one asked twice");
    assert_eq!(calls[3].prompt, calls[2].prompt, "the retry asks the same");
    assert_eq!(
        session["model_calls"], 25,
        "every billed request is counted"
    );
    let rows = store::steps::thoughts(&arena.pool, user, id, 0, 1_000)
        .await
        .unwrap();
    let empty = &rows[2];
    assert_eq!(empty.action, "hold");
    assert!(
        empty
            .error
            .as_deref()
            .is_some_and(|e| e.contains("without a usable message")),
        "{empty:?}"
    );
    assert!(
        empty.cost_usd.unwrap_or(0.0) > 0.0,
        "both empty answers billed: {empty:?}"
    );
    // what the session paid is what its decisions say they cost, the empty ones included
    let decided: f64 = rows.iter().filter_map(|r| r.cost_usd).sum();
    let paid = session["model_cost_usd"].as_f64().unwrap();
    assert!((decided - paid).abs() < 1e-12, "{decided} vs {paid}");
}
