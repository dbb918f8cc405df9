//! LLM backtests at the speed of parallel calls (issue 17): speculative lookahead gives the
//! result of one call at a time, bit for bit, with or without a crash mid-window; identical
//! requests of a later run are answered from the decision cache; budgets, 429s and OpenRouter's
//! in-flight 402 behave.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alphalab_devstack::openrouter::{Reply, decision_for};
use serde_json::{Value, json};
use step_worker::KillPoint;

use super::Arena;

const KEY: &str = "sk-or-v1-lookahead-0123456789abcdef";

/// The model: mostly HOLD (the mock's decision), some replies malformed; a pure function of
/// the prompt, so any order of calls gives the same answers.
fn reply(prompt: &str) -> String {
    if alphalab_devstack::openrouter::prompt_number(prompt).is_multiple_of(11) {
        "Let me think about this... I'd go long here.".into()
    } else {
        decision_for(prompt)
    }
}

struct Llm {
    arena: Arena,
    token: String,
    user: uuid::Uuid,
    agent: uuid::Uuid,
    candles: Vec<engine::Candle>,
}

async fn llm(model: &str, vars: &[(&str, &str)]) -> Llm {
    let mut arena = Arena::start(vars).await;
    arena.worker.retry = adapters::openrouter::RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(5),
    };
    arena
        .openrouter
        .set_script(Some(Arc::new(|call| Reply::Content(reply(&call.prompt)))));
    let candles = arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-08-01T00:00:00Z",
            "2021-08-03T12:00:00Z",
        )
        .await;
    let (token, user) = arena.user("user_lookahead").await;
    let key = arena.key(user, KEY).await;
    let agent = arena.agent(user, model, Some(key)).await;
    arena.run_steps().await;
    Llm {
        arena,
        token,
        user,
        agent,
        candles,
    }
}

impl Llm {
    async fn run(&self, extra: Value) -> Value {
        let mut body = json!({"agent_id": self.agent, "asset": "BTCUSDT", "timeframe": "1h",
            "start_date": "2021-08-01", "end_date": "2021-08-03T12:00:00Z", "speed": "instant"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let id = self.arena.start_backtest(&self.token, body).await;
        self.arena
            .wait_for(
                &self.token,
                id,
                &["completed", "stopped", "failed"],
                Duration::from_secs(60),
            )
            .await
    }

    /// Asserts the session equals the one-call-at-a-time reference: trades, metrics, equity.
    async fn assert_reference(&self, session: &Value) {
        assert_eq!(session["status"], "completed", "{session}");
        self.arena
            .assert_reference(session, &self.candles, reply)
            .await;
    }

    /// Requests the model server answered, by body hash.
    fn answered(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for call in self
            .arena
            .openrouter
            .chat_calls()
            .into_iter()
            .filter(|c| c.answered)
        {
            *out.entry(call.body_hash).or_insert(0) += 1;
        }
        out
    }

    /// The request hashes of the session's accepted decisions.
    async fn accepted(&self, session: &Value) -> Vec<String> {
        let id: uuid::Uuid = session["id"].as_str().unwrap().parse().unwrap();
        store::steps::thoughts(&self.arena.pool, self.user, id, 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|t| t.prompt_hash)
            .collect()
    }
}

async fn same_result_for_every_lookahead(kill: bool) {
    for k in [1, 4, 8, 16] {
        let vars: &[(&str, &str)] = if kill {
            &[("STEP_TIMEOUT_SECS", "4")]
        } else {
            &[]
        };
        let setup = llm("openai/gpt-4o-mini", vars).await;
        if kill {
            // the sixth answer of the session is stored, then the step dies: with k >= 4 that is
            // inside a window (its other calls are in flight or answered, none accepted yet)
            setup.arena.worker.faults.arm(KillPoint::AfterModelCall(6));
        }
        let session = setup.run(json!({"lookahead": k})).await;
        setup.assert_reference(&session).await;
        let accepted = setup.accepted(&session).await;
        assert_eq!(
            accepted.len(),
            setup.candles.len(),
            "k={k}: one decision per candle"
        );
        let answered = setup.answered();
        for hash in &accepted {
            assert_eq!(
                answered.get(hash),
                Some(&1),
                "k={k}: an accepted call was made once"
            );
        }
        if !kill {
            // every answered request is accounted for: accepted or wasted
            let calls: usize = answered.values().sum();
            assert_eq!(session["model_calls"], calls, "k={k}");
            assert_eq!(
                session["speculative_calls_wasted"].as_u64().unwrap() as usize,
                calls - accepted.len(),
                "k={k}"
            );
            if k == 1 {
                assert_eq!(session["speculative_calls_wasted"], 0);
            }
        } else {
            let died = setup
                .arena
                .poller()
                .stats
                .died
                .load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(died, 1, "k={k}");
        }
        assert_eq!(session["result"]["model_calls"], session["model_calls"]);
    }
}

#[tokio::test]
async fn lookahead_1_4_8_and_16_give_the_same_trades_metrics_and_equity() {
    same_result_for_every_lookahead(false).await;
}

#[tokio::test]
async fn a_kill_in_the_middle_of_a_window_resumes_to_the_same_result_without_repeating_an_accepted_call()
 {
    same_result_for_every_lookahead(true).await;
}

#[tokio::test]
async fn a_second_identical_session_calls_nobody_and_fresh_decisions_call_again() {
    let setup = llm("openai/gpt-4o-mini", &[]).await;
    let first = setup.run(json!({"lookahead": 4})).await;
    setup.assert_reference(&first).await;
    let calls = setup.arena.openrouter.chat_calls().len();
    assert!(first["model_cost_usd"].as_f64().unwrap() > 0.0);

    let second = setup.run(json!({"lookahead": 4})).await;
    setup.assert_reference(&second).await;
    assert_eq!(
        setup.arena.openrouter.chat_calls().len(),
        calls,
        "no request at all"
    );
    assert_eq!(second["model_calls"], 0);
    assert_eq!(second["model_cost_usd"], 0.0);
    assert_eq!(second["cached_decisions"], setup.candles.len());
    assert_eq!(second["result"]["metrics"], first["result"]["metrics"]);
    assert_eq!(second["result"]["net_pnl"], second["result"]["total_pnl"]);

    // another lookahead: its windows stop at the first known non-HOLD answer, so it asks
    // nothing either
    let third = setup.run(json!({"lookahead": 8})).await;
    assert_eq!(setup.arena.openrouter.chat_calls().len(), calls);
    assert_eq!(third["result"]["metrics"], first["result"]["metrics"]);

    let fresh = setup
        .run(json!({"lookahead": 4, "fresh_decisions": true}))
        .await;
    setup.assert_reference(&fresh).await;
    assert!(
        setup.arena.openrouter.chat_calls().len() >= calls + setup.candles.len(),
        "fresh_decisions asks again"
    );
    assert_eq!(fresh["cached_decisions"], 0);
    assert!(fresh["model_calls"].as_u64().unwrap() >= setup.candles.len() as u64);
}

#[tokio::test]
async fn a_budget_stops_the_session_before_a_call_could_exceed_it() {
    let setup = llm("openai/gpt-4o-mini", &[]).await;
    // about ten calls' worth (each costs ~7e-5 USD here)
    let budget = 0.0007;
    let session = setup
        .run(json!({"lookahead": 8, "budget_usd": budget}))
        .await;
    assert_eq!(session["status"], "stopped", "{session}");
    assert_eq!(session["reason"], "budget");
    let cost = session["model_cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0 && cost <= budget, "spent {cost} of {budget}");
    let decided = session["progress"]["cursor"].as_u64().unwrap();
    assert!(
        decided > 0 && decided < setup.candles.len() as u64,
        "{decided}"
    );
    let result = &session["result"];
    assert_eq!(result["model_cost_usd"].as_f64().unwrap(), cost);
    let net = result["net_pnl"].as_f64().unwrap();
    let gross = result["total_pnl"].as_f64().unwrap();
    assert!((gross - cost - net).abs() < 1e-9, "net = gross - cost");
    match result["metrics"]["total_trades"].as_f64().unwrap() {
        0.0 => assert!(result["cost_per_trade_usd"].is_null()),
        n => assert!((result["cost_per_trade_usd"].as_f64().unwrap() - cost / n).abs() < 1e-12),
    }
    // the budget stopped it, not the user: a `test_stopped` notification says why
    let notes: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT type, data FROM notifications WHERE user_id = $1")
            .bind(setup.user)
            .fetch_all(&setup.arena.pool)
            .await
            .unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, "test_stopped");
    assert_eq!(
        notes[0].1,
        json!({"session_id": session["id"], "result_id": result["id"], "reason": "budget"})
    );
}

#[tokio::test]
async fn a_429_and_an_in_flight_402_are_waited_out_and_a_429_shrinks_the_lookahead() {
    let setup = llm("openai/gpt-4o-mini", &[]).await;
    // answers take a while, so a window's calls are really in flight together
    setup
        .arena
        .openrouter
        .set_latency(Duration::from_millis(100));
    setup
        .arena
        .openrouter
        .set_script(Some(Arc::new(|call| match call.n {
            2 => Reply::Status(429, Some(1)),
            20 => Reply::InFlightBudget(1),
            _ => Reply::Content(reply(&call.prompt)),
        })));
    let started = std::time::Instant::now();
    let session = setup.run(json!({"lookahead": 8})).await;
    setup.assert_reference(&session).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "both Retry-After waits were honoured"
    );
    let calls = setup.arena.openrouter.chat_calls();
    // the first window sent 8 at once; after the 429 no more than 4 were in flight
    assert_eq!(calls.iter().take(8).map(|c| c.in_flight).max(), Some(8));
    assert!(
        calls.iter().skip(9).all(|c| c.in_flight <= 4),
        "{:?}",
        calls.iter().map(|c| c.in_flight).collect::<Vec<_>>()
    );
    // the in-flight 402 is not "out of credits": the key stays usable
    let status: String = sqlx::query_scalar("SELECT status FROM api_keys WHERE user_id = $1")
        .bind(setup.user)
        .fetch_one(&setup.arena.pool)
        .await
        .unwrap();
    assert_ne!(status, "no_credits");
}

#[tokio::test]
async fn a_reply_without_a_cost_is_priced_from_the_model_list() {
    let setup = llm("acme/nocost-model", &[]).await;
    let session = setup.run(json!({"lookahead": 4})).await;
    let id: uuid::Uuid = session["id"].as_str().unwrap().parse().unwrap();
    let thoughts = store::steps::thoughts(&setup.arena.pool, setup.user, id, 0, 10_000)
        .await
        .unwrap();
    for t in &thoughts {
        let expected = f64::from(t.prompt_tokens.unwrap())
            * alphalab_devstack::openrouter::PRICE_PROMPT
            + f64::from(t.completion_tokens.unwrap())
                * alphalab_devstack::openrouter::PRICE_COMPLETION;
        assert!((t.cost_usd.unwrap() - expected).abs() < 1e-15, "{t:?}");
    }
    assert!(session["model_cost_usd"].as_f64().unwrap() > 0.0);
}
