//! Forward tests (issue 24) against the local exchange (real BTCUSDT 1h candles under a clock the
//! test moves), the local stack (Postgres, moto through the template's IAM policies) and a real
//! WebSocket client: warm-up, closure by the exchange's clock, one klines request per asset and
//! timeframe, gaps, stop, equality with a backtest, exchange errors, a lost step, the price feed.

use std::time::Duration;

use alphalab_devstack::TestEnv;
use alphalab_devstack::binance::MockBinance;
use platform::FromEnv;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Arena, Client, ms, next_frame, send};

const HOUR: i64 = 3_600_000;

/// The bundled BTCUSDT 1h candles with open times in `[from, to)`.
fn bundled(from: &str, to: &str) -> Vec<engine::Candle> {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/market/BTCUSDT-1h.csv");
    let all = engine::parse_csv(&std::fs::read_to_string(file).unwrap()).unwrap();
    let (from, to) = (ms(from), ms(to));
    all.into_iter()
        .filter(|c| c.time >= from && c.time < to)
        .collect()
}

/// The exchange: the bundled candles of February 2021 (one missing hour, 2021-02-11T04:00),
/// its clock at `now`.
async fn exchange(now: &str) -> MockBinance {
    let rows = bundled("2021-02-01T00:00:00Z", "2021-03-01T00:00:00Z")
        .into_iter()
        .map(|c| (c.time, c.open, c.high, c.low, c.close, c.volume))
        .collect();
    MockBinance::recorded("BTCUSDT", "1h", rows, ms(now))
        .await
        .unwrap()
}

async fn arena(now: &str, vars: &[(&str, &str)]) -> Arena {
    let binance = exchange(now).await;
    let env = TestEnv::new().await.expect("test environment");
    let mut arena = Arena::start_with(env, vars, binance).await;
    arena.run_steps().await;
    arena
}

async fn start_forward(arena: &Arena, token: &str, body: Value) -> (u16, Value) {
    arena
        .call(Method::POST, "/api/arena/forward/start", token, Some(body))
        .await
}

/// Waits until `check` holds for the session.
async fn wait_until(
    arena: &Arena,
    token: &str,
    id: Uuid,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let session = arena.session(token, id).await;
        if check(&session) {
            return session;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 30 s: {session}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn decided(n: i64) -> impl Fn(&Value) -> bool {
    move |s: &Value| s["progress"]["cursor"].as_i64() == Some(n)
}

/// The session events a watcher receives within `wait` of the last one.
async fn drain(client: &mut Client, wait: Duration) -> Vec<Value> {
    let mut events = Vec::new();
    while let Some(frame) = next_frame(client, wait).await {
        if frame["event"] == "batch" {
            events.extend(frame["data"]["events"].as_array().unwrap().iter().cloned());
        } else {
            events.push(frame);
        }
    }
    events
}

/// The open times of the candles the session decided, in commit order.
async fn decided_times(arena: &Arena, id: Uuid) -> Vec<i64> {
    let user: Uuid = sqlx::query_scalar("SELECT user_id FROM test_sessions WHERE id = $1")
        .bind(id)
        .fetch_one(&arena.pool)
        .await
        .unwrap();
    store::steps::equity(&arena.pool, user, id)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

#[tokio::test]
async fn a_forward_session_decides_each_candle_once_as_it_closes_and_equals_a_backtest() {
    // the exchange's clock: 2021-02-10T12:30Z, the 12:00 candle forming
    let mut arena = arena("2021-02-10T12:30:00Z", &[("FORWARD_MAX_ACTIVE", "2")]).await;
    let (token, user) = arena.user("user_forward").await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    let body = json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h"});

    // a field a forward session has no use for is refused, named
    for field in ["start_date", "speed", "lookahead"] {
        let mut bad = body.clone();
        bad[field] = json!("x");
        let (status, answer) = start_forward(&arena, &token, bad).await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer.to_string().contains(field), "{answer}");
    }
    let (status, answer) = start_forward(
        &arena,
        &token,
        json!({"agent_id": agent, "asset": "DOGEUSDT", "timeframe": "2h", "warmup_candles": 1001}),
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = answer["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["asset", "timeframe", "warmup_candles"]);

    // the start answers at once and makes no exchange call
    arena.stop_steps();
    let before = arena.binance.all_requests().len();
    let (status, started) = start_forward(&arena, &token, body.clone()).await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(
        arena.binance.all_requests().len(),
        before,
        "no exchange call in the request"
    );
    let id: Uuid = started["session"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        started["subscribe"],
        json!({"action": "subscribe", "session_id": id})
    );
    let s = &started["session"];
    assert_eq!(
        (s["type"].as_str(), s["status"].as_str()),
        (Some("forward"), Some("pending"))
    );
    assert_eq!(
        s["progress"],
        json!({"cursor": 0, "total": null, "last_candle": null})
    );
    assert_eq!(s["warmup"], Value::Null);
    assert_eq!(
        s["config"]["warmup_candles"], 31,
        "sma_30 defined after 30, plus one"
    );

    // the first step: the anchor (11:00, the latest closed) and 31 warm-up candles up to it,
    // fetched with endTime and limit; the forming 12:00 candle is not among them
    arena.run_steps().await;
    let s = wait_until(&arena, &token, id, "anchored", |s| !s["warmup"].is_null()).await;
    assert_eq!(s["status"], "running");
    assert_eq!(
        s["warmup"],
        json!({"candles": 31, "first": "2021-02-09T05:00:00Z", "last": "2021-02-10T11:00:00Z"})
    );
    assert_eq!(s["progress"]["cursor"], 0);
    assert_eq!(s["feed"]["status"], "ok");
    let klines = arena.binance.requests();
    assert_eq!(klines.len(), 1, "{klines:?}");
    assert!(
        klines[0].contains(&format!("endTime={}", ms("2021-02-10T11:00:00Z")))
            && klines[0].contains("limit=31")
            && !klines[0].contains("startTime"),
        "{klines:?}"
    );
    let mut watcher = arena.watch(&token, id).await;

    // nothing has closed: a tick asks the exchange's clock and nothing else
    arena.binance.advance(10 * 60_000);
    let report = arena.tick().await;
    assert_eq!(
        (report.klines_requests, report.steps_sent),
        (0, 0),
        "{report:?}"
    );

    // 12:00 closes: one klines request from the next candle, one step, one candle decided with
    // the exchange's final values
    arena.binance.set_now(ms("2021-02-10T13:30:00Z"));
    let report = arena.tick().await;
    assert_eq!(
        (report.klines_requests, report.steps_sent),
        (1, 1),
        "{report:?}"
    );
    assert!(
        arena.binance.requests()[1].contains(&format!("startTime={}", ms("2021-02-10T12:00:00Z")))
    );
    let s = wait_until(&arena, &token, id, "one candle", decided(1)).await;
    assert_eq!(s["progress"]["last_candle"], "2021-02-10T12:00:00Z");
    let events = drain(&mut watcher, Duration::from_millis(500)).await;
    let candles: Vec<&Value> = events.iter().filter(|e| e["event"] == "candle").collect();
    assert_eq!(candles.len(), 1, "{events:?}");
    let expected = bundled("2021-02-10T12:00:00Z", "2021-02-10T13:00:00Z")[0];
    let c = &candles[0]["data"];
    assert_eq!(c["time"], "2021-02-10T12:00:00Z");
    assert_eq!(
        (
            c["open"].as_f64(),
            c["high"].as_f64(),
            c["low"].as_f64(),
            c["close"].as_f64()
        ),
        (
            Some(expected.open),
            Some(expected.high),
            Some(expected.low),
            Some(expected.close)
        ),
        "the final values, not the forming candle's"
    );
    assert_eq!(c["progress"], json!({"index": 0, "total": null}));
    assert_eq!(c["gap_before"], 0);
    assert!(c["indicators"]["sma_30"].is_number(), "warmed: {c}");

    // 18 hours pass at once (the 04:00 candle of 2021-02-11 never existed): 17 candles, in
    // order, each once; the one after the hole says so
    arena.binance.set_now(ms("2021-02-11T07:30:00Z"));
    let report = arena.tick().await;
    assert_eq!(
        (report.klines_requests, report.cached, report.steps_sent),
        (1, 17, 1),
        "{report:?}"
    );
    let s = wait_until(&arena, &token, id, "18 candles", decided(18)).await;
    assert_eq!(s["progress"]["last_candle"], "2021-02-11T06:00:00Z");
    assert_eq!(
        s["gaps"],
        json!([{"from": "2021-02-11T04:00:00Z", "to": "2021-02-11T04:00:00Z", "missing": 1}])
    );
    let events = drain(&mut watcher, Duration::from_millis(500)).await;
    let times: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "candle")
        .map(|e| e["data"]["time"].as_str().unwrap())
        .collect();
    assert_eq!(times.len(), 17);
    assert_eq!(
        (times[0], times[16]),
        ("2021-02-10T13:00:00Z", "2021-02-11T06:00:00Z")
    );
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in seq order: {seqs:?}"
    );
    assert!(!times.contains(&"2021-02-11T04:00:00Z"));
    let after_gap = events
        .iter()
        .find(|e| e["event"] == "candle" && e["data"]["time"] == "2021-02-11T05:00:00Z")
        .unwrap();
    assert_eq!(after_gap["data"]["gap_before"], 1);

    // a second session on the same asset and timeframe warms up from the cache (no request),
    // and both are fed by one klines request per tick
    let (status, second) = start_forward(&arena, &token, body.clone()).await;
    assert_eq!(status, 201, "{second}");
    let second: Uuid = second["session"]["id"].as_str().unwrap().parse().unwrap();
    let requests = arena.binance.requests().len();
    wait_until(&arena, &token, second, "anchored", |s| {
        !s["warmup"].is_null()
    })
    .await;
    assert_eq!(
        arena.binance.requests().len(),
        requests,
        "warmed from the cache"
    );
    // the limit of active forward sessions (2 here): one more is a 409
    let (status, refused) = start_forward(&arena, &token, body.clone()).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "forward_limit_reached");
    arena.binance.advance(HOUR);
    let report = arena.tick().await;
    assert_eq!(
        (report.klines_requests, report.steps_sent),
        (1, 2),
        "{report:?}"
    );
    wait_until(&arena, &token, id, "19 candles", decided(19)).await;
    wait_until(&arena, &token, second, "one candle", decided(1)).await;
    // a repeated tick (EventBridge delivers at least once) sends nothing new
    let report = arena.tick().await;
    assert_eq!(
        (report.klines_requests, report.steps_sent),
        (0, 0),
        "{report:?}"
    );

    // pause, resume and speed do not apply to a forward session
    let (status, answer) = arena.control(&token, id, "pause", None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("not_supported"))
    );
    let (status, _) = arena
        .control(&token, id, "speed", Some(json!({"speed": "fast"})))
        .await;
    assert_eq!(status, 409);

    // another user: 404 on stop, nothing in active, not subscribable
    let (other, _) = arena.user("user_forward_other").await;
    let (status, _) = arena
        .call(
            Method::POST,
            &format!("/api/arena/forward/{id}/stop"),
            &other,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (_, active) = arena
        .call(Method::GET, "/api/arena/forward/active", &other, None)
        .await;
    assert_eq!(active, json!({"sessions": []}));
    let (mut stranger, _) =
        tokio_tungstenite::connect_async(format!("{}?token={other}", arena.gateway.ws_url))
            .await
            .unwrap();
    send(
        &mut stranger,
        json!({"action": "subscribe", "session_id": id}),
    )
    .await;
    let answer = next_frame(&mut stranger, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (answer["event"].as_str(), answer["data"]["code"].as_str()),
        (Some("error"), Some("not_found"))
    );
    let (_, active) = arena
        .call(Method::GET, "/api/arena/forward/active", &token, None)
        .await;
    let ids: Vec<&str> = active["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.to_string(), id.to_string()], "newest first");

    // stop: `stopping` at once, then completed at the last decided candle, with a backtest's
    // result; nothing follows session_completed
    let (status, stopping) = arena
        .call(
            Method::POST,
            &format!("/api/arena/forward/{id}/stop"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{stopping}");
    assert!(
        matches!(
            stopping["session"]["status"].as_str(),
            Some("stopping" | "completed")
        ),
        "{stopping}"
    );
    let done = arena
        .wait_for(&token, id, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(done["progress"]["cursor"], 19);
    let events = drain(&mut watcher, Duration::from_millis(500)).await;
    let last = events.last().unwrap();
    assert_eq!(last["event"], "session_completed", "{events:?}");
    assert_eq!(last["data"]["result"], done["result"]);
    assert_eq!(
        last["data"]["can_generate_certificate"],
        done["result"]["can_generate_certificate"]
    );
    let (status, _) = arena
        .call(
            Method::POST,
            &format!("/api/arena/forward/{id}/stop"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 409, "finished");
    let times = decided_times(&arena, id).await;
    assert_eq!(times.len(), 19, "each candle once");
    assert!(times.windows(2).all(|w| w[0] < w[1]), "in order");

    // the same agent and config as a backtest over the decided candles, with the same warm-up:
    // the same result, metric for metric, and the same trades
    let backtest = arena
        .start_backtest(
            &token,
            json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
                   "start_date": "2021-02-10T12:00:00Z", "end_date": "2021-02-11T08:00:00Z",
                   "warmup_candles": 31, "speed": "instant"}),
        )
        .await;
    let replayed = arena
        .wait_for(&token, backtest, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(replayed["result"]["metrics"], done["result"]["metrics"]);
    let trades = |session: Uuid| {
        let pool = arena.pool.clone();
        async move {
            sqlx::query_as::<_, (i32, String, f64, f64, f64, String)>(
                "SELECT trade_no, side, entry_price, exit_price, pnl, exit_type FROM trades
                 WHERE session_id = $1 ORDER BY trade_no",
            )
            .bind(session)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(trades(id).await, trades(backtest).await);
    // and the same ledger: the same warm-up and decided candles with the same decisions (only
    // the header, the chain and the seal differ: another result)
    let ledger_lines = |session: &Value| {
        let pool = arena.pool.clone();
        let result = session["result"]["id"]
            .as_str()
            .unwrap()
            .parse::<Uuid>()
            .unwrap();
        async move {
            let bodies: Vec<String> = sqlx::query_scalar(
                "SELECT body FROM result_ledgers WHERE result_id = $1 ORDER BY chunk",
            )
            .bind(result)
            .fetch_all(&pool)
            .await
            .unwrap();
            let text = bodies.join("\n");
            let lines: Vec<Value> = text
                .lines()
                .map(|l| {
                    let mut v: Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().unwrap().remove("prev");
                    v
                })
                .collect();
            lines[1..lines.len() - 1].to_vec()
        }
    };
    let forward_entries = ledger_lines(&done).await;
    assert_eq!(forward_entries.len(), 31 + 19);
    assert_eq!(forward_entries, ledger_lines(&replayed).await);
    assert_eq!(
        done["result"]["evidence"]["psr"],
        replayed["result"]["evidence"]["psr"]
    );
    assert_eq!(
        done["result"]["methodology"]["evidence_grade"],
        "not_applicable"
    );
    assert_eq!(done["result"]["methodology"]["gaps"], 1, "2021-02-11 04:00");

    // and both equal the engine warmed on the 31 candles up to the anchor, then stepped over the
    // decided candles (no trade during the warm-up)
    let config: engine::EngineConfig =
        serde_json::from_value(done["config"]["engine"].clone()).unwrap();
    let mut engine = engine::Engine::new(config).unwrap();
    for c in bundled("2021-02-09T05:00:00Z", "2021-02-10T12:00:00Z") {
        engine.warm(c).unwrap();
    }
    let baseline =
        engine::baseline::Baseline::new(engine::baseline::Kind::SmaCross, engine.indicators())
            .unwrap();
    for c in bundled("2021-02-10T12:00:00Z", "2021-02-11T08:00:00Z") {
        engine.step(c, |ctx| baseline.decide(ctx)).unwrap();
    }
    let (_, metrics) = engine.finish().unwrap();
    assert_eq!(
        done["result"]["metrics"],
        store::steps::metrics_json(&metrics)
    );
}

/// A user, a sma-cross agent and a forward session anchored at the exchange's clock.
async fn anchored(arena: &Arena, clerk: &str) -> (String, Uuid) {
    let (token, user) = arena.user(clerk).await;
    let agent = arena.agent(user, "baseline/sma-cross", None).await;
    let (status, started) = start_forward(
        arena,
        &token,
        json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h"}),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id: Uuid = started["session"]["id"].as_str().unwrap().parse().unwrap();
    wait_until(arena, &token, id, "anchored", |s| !s["warmup"].is_null()).await;
    (token, id)
}

#[tokio::test]
async fn exchange_errors_delay_the_feed_and_every_candle_is_decided_once_when_it_answers() {
    let arena = arena("2021-02-10T12:30:00Z", &[]).await;
    let (token, id) = anchored(&arena, "user_forward_errors").await;
    let delayed = |s: &Value| s["feed"]["status"] == "delayed" && s["status"] == "running";

    // 429 with Retry-After: 2 s, longer than this tick has: the hold is stored, the tick ends
    arena.binance.set_retry_after(2);
    arena.binance.fail_next(&[429]);
    arena.binance.set_now(ms("2021-02-10T14:30:00Z"));
    let report = arena.tick_within(Duration::from_millis(1500)).await;
    assert_eq!(report.steps_sent, 0, "{report:?}");
    let s = arena.session(&token, id).await;
    assert!(delayed(&s), "{s}");
    assert!(
        s["feed"]["reason"]
            .as_str()
            .unwrap()
            .contains("rate-limited"),
        "{s}"
    );
    let since = s["feed"]["since"].clone();
    // within the hold, the next tick sends no request of any kind
    let sent = arena.binance.all_requests().len();
    arena.tick_within(Duration::from_millis(1500)).await;
    assert_eq!(
        arena.binance.all_requests().len(),
        sent,
        "nothing before Retry-After"
    );
    let s = arena.session(&token, id).await;
    assert_eq!(s["feed"]["since"], since, "delayed since the first refusal");
    // the hold over, the tick catches up with both candles
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let report = arena.tick().await;
    assert_eq!(
        (report.klines_requests, report.steps_sent),
        (1, 1),
        "{report:?}"
    );
    let s = wait_until(&arena, &token, id, "two candles", decided(2)).await;
    assert_eq!(s["feed"]["status"], "ok");

    // 418 (a ban) with a Retry-After that fits in the tick: waited out, then asked again
    arena.binance.set_retry_after(1);
    arena.binance.fail_next(&[418]);
    arena.binance.advance(HOUR);
    let started = tokio::time::Instant::now();
    let report = arena.tick().await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the hold was waited out"
    );
    assert_eq!(
        (report.klines_requests, report.steps_sent),
        (1, 1),
        "{report:?}"
    );
    wait_until(&arena, &token, id, "three candles", decided(3)).await;

    // 500 on klines, 451 (a refused region) and 503 on every endpoint: delayed, then caught up
    for (statuses, any, reason) in [
        (&[500][..], false, "answered 500"),
        (&[451][..], false, "region"),
        (&[503][..], true, "answered 503"),
    ] {
        if any {
            arena.binance.fail_any_next(statuses);
        } else {
            arena.binance.fail_next(statuses);
        }
        arena.binance.advance(HOUR);
        let report = arena.tick().await;
        assert_eq!(report.steps_sent, 0, "{report:?}");
        let s = arena.session(&token, id).await;
        assert!(delayed(&s), "{s}");
        assert!(
            s["feed"]["reason"].as_str().unwrap().contains(reason),
            "{s}"
        );
    }
    let report = arena.tick().await;
    assert_eq!(
        (report.klines_requests, report.steps_sent),
        (1, 1),
        "{report:?}"
    );
    wait_until(&arena, &token, id, "six candles", decided(6)).await;

    // a hanging exchange is abandoned after 10 s while the API keeps answering
    arena.binance.hang_next(1);
    arena.binance.advance(HOUR);
    let tick = arena.tick();
    let api = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let asked = tokio::time::Instant::now();
        let s = arena.session(&token, id).await;
        (asked.elapsed(), s)
    };
    let started = tokio::time::Instant::now();
    let (report, (answered_in, s)) = tokio::join!(tick, api);
    let hung = started.elapsed();
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(15)).contains(&hung),
        "abandoned after {hung:?}"
    );
    assert!(
        answered_in < Duration::from_secs(2),
        "the API answered in {answered_in:?}"
    );
    assert_eq!(s["status"], "running");
    assert_eq!(report.steps_sent, 0, "{report:?}");
    let s = arena.session(&token, id).await;
    assert!(delayed(&s), "{s}");
    assert!(
        s["feed"]["reason"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{s}"
    );
    let report = arena.tick().await;
    assert_eq!(report.steps_sent, 1, "{report:?}");
    let s = wait_until(&arena, &token, id, "seven candles", decided(7)).await;
    assert_eq!(s["feed"]["status"], "ok");
    assert_eq!(s["progress"]["last_candle"], "2021-02-10T18:00:00Z");
    let times = decided_times(&arena, id).await;
    let expected: Vec<i64> = (0..7)
        .map(|i| ms("2021-02-10T12:00:00Z") + i * HOUR)
        .collect();
    assert_eq!(times, expected, "every candle, in order, once");
}

#[tokio::test]
async fn a_lost_step_is_sent_again_by_the_watchdog_and_no_candle_is_decided_twice() {
    let mut arena = arena("2021-02-10T12:30:00Z", &[("STEP_STALL_SECS", "1")]).await;
    let (token, id) = anchored(&arena, "user_forward_lost").await;
    // the cache may hold candles the exchange's clock has not closed (here: loaded by hand):
    // they are not decided before it has
    arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-02-10T12:00:00Z",
            "2021-02-10T16:00:00Z",
        )
        .await;
    let report = arena.tick().await;
    assert_eq!(
        (report.klines_requests, report.steps_sent),
        (0, 0),
        "{report:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(arena.session(&token, id).await["progress"]["cursor"], 0);
    // two candles close; the tick sends the step; the message is lost
    arena.stop_steps();
    arena.binance.set_now(ms("2021-02-10T14:30:00Z"));
    let report = arena.tick().await;
    assert_eq!(report.steps_sent, 1, "{report:?}");
    arena.purge_steps().await;
    arena.run_steps().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        arena.session(&token, id).await["progress"]["cursor"],
        0,
        "nothing moves it"
    );
    // a session merely waiting for its next candle is not stalled: only this one is nudged
    let (other_token, waiting) = anchored(&arena, "user_forward_waiting").await;
    sqlx::query(
        "UPDATE test_sessions SET last_advanced_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(waiting)
    .execute(&arena.pool)
    .await
    .unwrap();
    // the waiting one's anchor is 13:00: the cached 14:00 and 15:00 candles have not closed
    let watchdog = alphalab_step_watchdog::watchdog(
        &alphalab_step_watchdog::Config::from_env(&platform::Env::from_lookup(
            arena.env.owned_lookup(),
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let sent = watchdog.tick().await.unwrap();
    assert_eq!(sent, 1, "the stalled one only");
    wait_until(&arena, &token, id, "two candles", decided(2)).await;
    assert_eq!(
        arena.session(&other_token, waiting).await["progress"]["cursor"],
        0
    );
    // nudged again later (a duplicate), nothing is decided twice
    arena.stop_steps();
    arena.run_steps().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let times = decided_times(&arena, id).await;
    assert_eq!(
        times,
        [ms("2021-02-10T12:00:00Z"), ms("2021-02-10T13:00:00Z")]
    );
}

#[tokio::test]
async fn the_price_feed_reaches_its_subscribers_only_once_per_tick() {
    let arena = arena("2021-02-10T12:30:00Z", &[]).await;
    let (token, _) = arena.user("user_forward_price").await;
    let connect = || async {
        tokio_tungstenite::connect_async(format!("{}?token={token}", arena.gateway.ws_url))
            .await
            .unwrap()
            .0
    };
    let (mut watcher, mut idle) = (connect().await, connect().await);
    // no other test's tick publishes to (and prunes) this test's price subscriber meanwhile
    let _ticks = arena.own_the_ticks().await;
    // nobody subscribes and no forward session runs: a tick asks the exchange nothing
    let report = arena.tick().await;
    assert_eq!(report.exchange_time, None, "{report:?}");
    assert!(arena.binance.all_requests().is_empty());
    send(
        &mut watcher,
        json!({"action": "subscribe", "topic": "price", "asset": "BTCUSDT"}),
    )
    .await;
    let answer = next_frame(&mut watcher, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer["event"], "subscribed");
    assert_eq!(
        answer["data"],
        json!({"topic": "price", "asset": "BTCUSDT"})
    );
    let report = arena.tick().await;
    assert_eq!(
        (report.prices, report.klines_requests),
        (1, 0),
        "{report:?}"
    );
    let update = next_frame(&mut watcher, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(update["event"], "price_update", "{update}");
    assert_eq!(
        (update["session_id"].clone(), update["seq"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(update["data"]["asset"], "BTCUSDT");
    assert!(update["data"]["price"].is_number(), "{update}");
    assert_eq!(
        update["data"]["time"], "2021-02-10T12:30:00Z",
        "the exchange's time"
    );
    assert!(
        next_frame(&mut idle, Duration::from_millis(500))
            .await
            .is_none(),
        "no one else"
    );
    let tickers: Vec<String> = arena
        .binance
        .all_requests()
        .into_iter()
        .filter(|r| r.contains("ticker"))
        .collect();
    assert_eq!(tickers.len(), 1, "one request per tick: {tickers:?}");
    send(
        &mut watcher,
        json!({"action": "unsubscribe", "topic": "price", "asset": "BTCUSDT"}),
    )
    .await;
    let answer = next_frame(&mut watcher, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer["event"], "unsubscribed", "{answer}");
    let report = arena.tick().await;
    assert_eq!(report.prices, 0, "{report:?}");
    assert!(
        next_frame(&mut watcher, Duration::from_millis(500))
            .await
            .is_none()
    );
}
