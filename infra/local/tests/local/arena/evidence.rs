//! Evidence on every result (issue 25), on results the step chain produced: the figures and the
//! methodology card on the result and in `session_completed`, the signed ledger (pages, keys,
//! `alphalab verify-ledger`, `tools/verify_ledger.py`, a changed byte found at its line), the
//! PSR recomputed from the equity export, a cheating model against a coin flip, buy & hold's
//! excess, and the model cutoff registry's split and grades.

use std::process::Command;
use std::sync::Arc;

use alphalab_devstack::openrouter::{Reply, prompt_number};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Arena;

const KEY: &str = "sk-or-v1-evidence-tests-0123456789abcdef";

fn body(agent: Uuid, start: &str, end: &str, extra: Value) -> Value {
    let mut b = json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
           "start_date": format!("{start}T00:00:00Z"), "end_date": format!("{end}T00:00:00Z"),
           "speed": "instant"});
    if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
        b.extend(extra.clone());
    }
    b
}

/// An arena running its steps, with `vars`, and the bundled BTCUSDT 1h candles of `from..to`
/// cached.
async fn arena(vars: &[(&str, &str)], from: &str, to: &str) -> Arena {
    let mut arena = Arena::start(vars).await;
    arena.run_steps().await;
    arena.load("BTCUSDT", "1h", from, to).await;
    arena
}

/// The whole ledger of a result, page by page (`limit` lines a page): its text and the pages.
async fn ledger(arena: &Arena, token: &str, id: &str, limit: usize) -> (String, usize) {
    let mut text = String::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/results/{id}/ledger?limit={limit}&cursor={c}"),
            None => format!("/api/results/{id}/ledger?limit={limit}"),
        };
        let response = arena
            .server
            .request(Method::GET, &path, Some(token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        cursor = response
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        let page = response.text().await.unwrap();
        assert!(page.len() <= 4 * 1024 * 1024);
        assert!(page.lines().count() <= limit);
        text.push_str(&page);
        pages += 1;
        if cursor.is_none() {
            return (text, pages);
        }
    }
}

/// `alphalab verify-ledger` on a file: (exit code, stdout).
fn verify_cli(path: &std::path::Path, key: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_alphalab"))
        .args(["verify-ledger", path.to_str().unwrap(), "--public-key", key])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code().unwrap_or(-1),
        stdout + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `tools/verify_ledger.py` on a file: (exit code, stdout).
fn verify_py(path: &std::path::Path, key: &str) -> (i32, String) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_ledger.py");
    let out = Command::new("python3")
        .arg(script)
        .args([path.to_str().unwrap(), "--public-key", key])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code().unwrap_or(-1),
        stdout + &String::from_utf8_lossy(&out.stderr),
    )
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("alphalab-ledger-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every candle's equity of a result, from the equity export (the per-candle equity the evidence
/// is computed from).
async fn equity_export(arena: &Arena, token: &str, id: &str) -> Vec<f64> {
    let (status, export) = arena
        .call(
            Method::GET,
            &format!("/api/export/results/{id}?format=json&part=equity"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{export}");
    export["equity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["equity"].as_f64().unwrap())
        .collect()
}

/// The canonical text of a value (bit-for-bit comparison of figures).
fn jcs(v: &Value) -> String {
    evidence::canonical::canonical(v)
}

#[tokio::test]
async fn a_results_evidence_is_signed_paged_and_recomputed_by_anyone_and_any_change_is_named() {
    let arena = arena(&[], "2020-12-20T00:00:00Z", "2021-04-01T00:00:00Z").await;
    let (token, user) = arena.user("user_evidence").await;
    let cross = arena.agent(user, "baseline/sma-cross", None).await;
    let session = arena
        .complete_backtest(
            &token,
            body(
                cross,
                "2021-01-01",
                "2021-03-01",
                json!({"warmup_candles": 40}),
            ),
        )
        .await;
    let result = &session["result"];
    let id = result["id"].as_str().unwrap().to_owned();
    let evidence = &result["evidence"];
    let methodology = &result["methodology"];
    assert_eq!(evidence["chance"]["null_agents"], 1000, "{evidence}");
    assert_eq!(evidence["buy_hold"]["resamples"], 2000);
    assert_eq!(
        evidence["buy_hold"]["block_length"], 12,
        "1,415 candles: ceil(11.2)"
    );
    assert!(evidence["chance"]["percentile"].as_f64().is_some());
    assert_eq!(evidence["seed"], evidence["chance"]["seed"]);
    let seed: u64 = evidence["seed"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        seed,
        evidence::seed_of(Uuid::parse_str(&id).unwrap().as_bytes())
    );
    let summary = evidence["verdict"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("random agents with the same trades"),
        "{summary}"
    );
    if evidence["verdict"]["beats_chance"] == false {
        assert!(summary.contains("indistinguishable from chance"));
    }
    for (field, value) in [
        ("asset", json!("BTCUSDT")),
        ("timeframe", json!("1h")),
        ("first_candle", json!("2021-01-01T00:00:00Z")),
        ("last_candle", json!("2021-02-28T23:00:00Z")),
        // the exchange has no candle at 2021-02-11 04:00: a real gap
        ("candles", json!(1415)),
        ("warmup_candles", json!(40)),
        ("gaps", json!(1)),
        ("data_source", json!("binance-spot-klines")),
        ("fee_bps", json!(10.0)),
        ("slippage_bps", json!(5.0)),
        ("leverage", json!(1)),
        ("model", json!("baseline/sma-cross")),
        ("temperature", Value::Null),
        ("mode", json!("omni")),
        ("decisions", json!(1415)),
        ("lookahead", Value::Null),
        ("max_tokens", Value::Null),
        ("model_cutoff", Value::Null),
        ("window_vs_cutoff", json!("not_applicable")),
        ("evidence_grade", json!("not_applicable")),
    ] {
        assert_eq!(methodology[field], value, "{field} in {methodology}");
    }
    assert!(
        methodology["fill_policy"]
            .as_str()
            .unwrap()
            .contains("stop-loss before the take-profit")
    );

    // the same on the result route
    let (status, detail) = arena
        .call(Method::GET, &format!("/api/results/{id}"), &token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(jcs(&detail["result"]["evidence"]), jcs(evidence));
    assert_eq!(detail["result"]["methodology"], *methodology);

    // the ledger: pages of 100 lines chain into the one-page ledger
    let (text, pages) = ledger(&arena, &token, &id, 100).await;
    let (whole, one) = ledger(&arena, &token, &id, 100_000).await;
    assert_eq!(one, 1);
    assert_eq!(text, whole);
    let lines: Vec<&str> = text.trim_end().split('\n').collect();
    // header, 40 warm-up lines, 1,415 candles, seal
    assert_eq!(lines.len(), 1 + 40 + 1415 + 1);
    assert_eq!(pages, lines.len().div_ceil(100));
    let line = |i: usize| serde_json::from_str::<Value>(lines[i]).unwrap();
    assert_eq!(line(0)["prev"], "0".repeat(64));
    assert_eq!(line(0)["header"]["seed"], evidence["seed"]);
    assert_eq!(line(0)["header"]["result_id"], id.as_str());
    assert_eq!(line(1)["warmup"], true);
    assert_eq!(line(1)["n"], -40);
    assert_eq!(line(41)["n"], 0);
    assert_eq!(line(41)["source"], "baseline");
    assert!(line(41)["prompt_sha256"].is_null());
    for i in 1..lines.len() {
        // every line's `prev` (across page boundaries too) is the SHA-256 of the line before
        assert_eq!(
            line(i)["prev"].as_str().unwrap(),
            evidence::canonical::sha256_hex(lines[i - 1]),
            "line {}",
            i + 1
        );
        assert_eq!(jcs(&line(i)), lines[i], "line {} is canonical", i + 1);
    }
    let seal = line(lines.len() - 1)["seal"].clone();
    assert_eq!(seal["entries"], 1455);
    assert_eq!(
        seal["head"].as_str().unwrap(),
        evidence::canonical::sha256_hex(lines[lines.len() - 2])
    );
    assert_eq!(jcs(&seal["evidence"]), jcs(evidence));
    assert_eq!(jcs(&seal["metrics"]), jcs(&result["metrics"]));
    assert_eq!(detail["result"]["ledger_head"], seal["head"]);

    // the keys: no token needed
    let response = reqwest::get(arena.server.url("/api/ledger/keys"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let keys: Value = response.json().await.unwrap();
    let listed = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == seal["key_id"])
        .expect("the seal's key is listed")
        .clone();
    assert_eq!(listed["algorithm"], "Ed25519");
    let public_key = listed["public_key"].as_str().unwrap().to_owned();
    // a rotation: a new key signs the next ledgers, the old one stays listed after it
    let next =
        evidence::ledger::SigningKey::from_base64(&evidence::ledger::SigningKey::generate_seed())
            .unwrap();
    let mut tx = arena.pool.begin().await.unwrap();
    store::ledger::insert(
        &mut tx,
        user,
        Uuid::new_v4(),
        &[],
        &next.key_id,
        &next.public_key,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let keys: Value = reqwest::get(arena.server.url("/api/ledger/keys"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [seal["key_id"].as_str().unwrap(), next.key_id.as_str()]
    );

    // anyone can verify: the CLI replays the engine to the seal's metrics and the evidence
    let path = temp_file("ledger.jsonl", &text);
    let (code, out) = verify_cli(&path, &public_key);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK\n"), "{out}");
    let (code, out) = verify_py(&path, &public_key);
    assert_eq!((code, out.trim()), (0, "OK"));
    // and by its URL, with the server's key
    // (the server runs on this test's runtime: the command is awaited, not blocked on)
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_alphalab"))
        .args([
            "verify-ledger",
            &arena.server.url(&format!("/api/results/{id}")),
        ])
        .env("TOKEN", &token)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the evidence recomputed from the ledger is the stored one, bit for bit
    let verified = evidence::ledger::verify(&text, &public_key, 2).unwrap();
    let recomputed = serde_json::to_value(&verified.evidence).unwrap();
    assert_eq!(jcs(&recomputed), jcs(evidence));
    // the same seed, the same null agents
    let again = verified.replay.evidence(1).unwrap();
    assert_eq!(again, verified.evidence);

    // a changed byte anywhere is found, at its line, by both tools
    let seal_at = lines.len();
    for (at, from, to) in [
        (50, "\"close\":", "\"close\":1"),
        (60, "\"action\":\"", "\"action\":\"x"),
        (1, "\"fee_bps\":10", "\"fee_bps\":11"),
        (70, "\"prev\":\"", "\"prev\":\"f"),
        (seal_at, "\"total_trades\":", "\"total_trades\":9"),
        (seal_at, "\"signature\":\"", "\"signature\":\"AA"),
    ] {
        let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert!(changed[at - 1].contains(from), "line {at}");
        changed[at - 1] = changed[at - 1].replacen(from, to, 1);
        let path = temp_file("changed.jsonl", &(changed.join("\n") + "\n"));
        let (code, out) = verify_cli(&path, &public_key);
        assert_eq!(code, 1, "{from}: {out}");
        assert!(out.starts_with(&format!("line {at}: ")), "{from}: {out}");
        let (code, out) = verify_py(&path, &public_key);
        assert_eq!(code, 1, "{from}: {out}");
        assert!(out.starts_with(&format!("line {at}: ")), "{from}: {out}");
    }

    // another user's result has no ledger to read
    let (other, _) = arena.user("user_evidence_other").await;
    let (status, _) = arena
        .call(
            Method::GET,
            &format!("/api/results/{id}/ledger"),
            &other,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = arena
        .call(
            Method::GET,
            &format!("/api/results/{}/ledger", Uuid::new_v4()),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = arena
        .call(
            Method::GET,
            &format!("/api/results/{id}/ledger?limit=0"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 422, "{answer}");

    // the PSR is the formula over the equity export's per-candle returns
    let equity = equity_export(&arena, &token, &id).await;
    let mut prev = 10_000.0;
    let r: Vec<f64> = equity
        .iter()
        .map(|&e| {
            let x = e / prev - 1.0;
            prev = e;
            x
        })
        .collect();
    let n = r.len() as f64;
    let mean = r.iter().sum::<f64>() / n;
    let m = |k: i32| r.iter().map(|x| (x - mean).powi(k)).sum::<f64>() / n;
    let sd = m(2).sqrt();
    let sr = mean / sd;
    let (g3, g4) = (m(3) / sd.powi(3), m(4) / m(2).powi(2));
    let z = sr * (n - 1.0).sqrt() / (1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr).sqrt();
    let psr = 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
    let stored = evidence["psr"]["psr"].as_f64().unwrap();
    assert!((stored - psr).abs() < 1e-9, "{stored} vs {psr}");
    assert_eq!(evidence["psr"]["n"], 1415);

    // buy & hold against itself: no excess, not better (no costs, so the curves are the same)
    let hold = arena.agent(user, "baseline/buy-and-hold", None).await;
    let held = arena
        .complete_backtest(
            &token,
            body(
                hold,
                "2021-01-01",
                "2021-02-01",
                json!({"fee_bps": 0, "slippage_bps": 0}),
            ),
        )
        .await;
    let e = &held["result"]["evidence"];
    assert!(
        e["buy_hold"]["excess_return_pct"].as_f64().unwrap().abs() < 1e-9,
        "{e}"
    );
    assert!(
        e["buy_hold"]["mean_excess_per_candle"]
            .as_f64()
            .unwrap()
            .abs()
            < 1e-12
    );
    assert_eq!(e["verdict"]["beats_buy_hold"], false);
    // its one trade closes at the session's end: random agents hold the same candles
    assert_eq!(e["chance"]["null_agents"], 1000);
}

/// The close of every bundled BTCUSDT 1h candle, by open time.
fn closes() -> std::collections::HashMap<i64, f64> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/market/BTCUSDT-1h.csv");
    let text = std::fs::read_to_string(path).unwrap();
    engine::parse_csv(&text)
        .unwrap()
        .into_iter()
        .map(|c| (c.time, c.close))
        .collect()
}

/// The omni prompt's candle: its close time (`closed at 2021-02-01 01:00 UTC`) and close.
fn read_prompt(prompt: &str) -> Option<(i64, f64)> {
    let at = prompt.split("closed at ").nth(1)?.lines().next()?.trim();
    let time = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M UTC")
        .ok()?
        .and_utc()
        .timestamp_millis();
    let close = prompt
        .split("Close ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((time, close))
}

#[tokio::test]
async fn a_cheating_model_beats_chance_and_holding_and_a_coin_flip_does_not() {
    let arena = arena(&[], "2021-02-01T00:00:00Z", "2021-04-01T00:00:00Z").await;
    let (token, user) = arena.user("user_evidence_models").await;
    let key = arena.key(user, KEY).await;
    let agent = arena.agent(user, "openai/gpt-4o-mini", Some(key)).await;
    let closes = Arc::new(closes());

    // the cheater reads the next candle's close (the candle opening when this one closed)
    let table = closes.clone();
    arena.openrouter.set_script(Some(Arc::new(move |call| {
        let Some((closed_at, close)) = read_prompt(&call.prompt) else {
            return Reply::Decide;
        };
        let action = match table.get(&closed_at) {
            Some(&next) if next > close => "long",
            Some(_) => "short",
            None => "hold",
        };
        Reply::Content(
            json!({"action": action, "reasoning": "I have seen the future", "confidence": 99})
                .to_string(),
        )
    })));
    let cheat = arena
        .complete_backtest(
            &token,
            body(agent, "2021-02-01", "2021-02-15", json!({"lookahead": 8})),
        )
        .await;
    let e = &cheat["result"]["evidence"];
    assert_eq!(e["chance"]["percentile"], 100.0, "{e}");
    assert!(e["chance"]["p_value"].as_f64().unwrap() <= 0.002, "{e}");
    assert!(e["buy_hold"]["p_value"].as_f64().unwrap() < 0.01, "{e}");
    assert_eq!(e["verdict"]["beats_chance"], true);
    assert_eq!(e["verdict"]["beats_buy_hold"], true);
    let m = &cheat["result"]["methodology"];
    assert_eq!(m["model"], "openai/gpt-4o-mini");
    assert_eq!(m["temperature"], 0.3, "the agents default temperature");
    assert_eq!(m["max_tokens"], 150);
    assert_eq!(m["lookahead"], 8);
    assert_eq!(m["model_cutoff"], "2023-10-01");
    assert_eq!(m["window_vs_cutoff"], "before");
    assert_eq!(m["evidence_grade"], "D");
    // the ledger names each decision's request and answer
    let id = cheat["result"]["id"].as_str().unwrap();
    let (text, _) = ledger(&arena, &token, id, 100_000).await;
    let first: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(first["source"], "model");
    assert_eq!(first["prompt_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(first["answer_sha256"].as_str().unwrap().len(), 64);

    // a coin flip over ten runs: each run's answers seeded by the run
    let mut verdicts = Vec::new();
    let mut fixed = Vec::new();
    for run_no in 0..10u64 {
        arena.openrouter.set_script(Some(Arc::new(move |call| {
            let h = prompt_number(&call.prompt) ^ run_no.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let h = evidence::rng::splitmix64(&mut h.clone());
            let action = match h % 10 {
                0 => "long",
                1 => "short",
                2 => "close",
                _ => "hold",
            };
            Reply::Content(
                json!({"action": action, "reasoning": "a coin", "confidence": 50}).to_string(),
            )
        })));
        let start = format!("2021-03-{:02}", 1 + 2 * run_no);
        let end = format!("2021-03-{:02}", 9 + 2 * run_no);
        let flip = arena
            .complete_backtest(
                &token,
                body(
                    agent,
                    &start,
                    &end,
                    json!({"lookahead": 8, "fresh_decisions": true}),
                ),
            )
            .await;
        let e = &flip["result"]["evidence"];
        verdicts.push(e["verdict"]["beats_chance"] == true);
        // the same test with a fixed seed per run (the stored one follows the result's random
        // id): a chance-level agent passes 5 % of the time
        let id = flip["result"]["id"].as_str().unwrap();
        let (text, _) = ledger(&arena, &token, id, 100_000).await;
        let public_key = verify_key(&arena).await;
        let verified = evidence::ledger::verify(&text, &public_key, 2).unwrap();
        let r = &verified.replay;
        let with_seed = evidence::compute(
            &evidence::Inputs {
                config: &r.header.config,
                candles: &r.candles,
                equity: &r.equity,
                trades: &r.trades,
                metrics: &r.metrics,
                seed: 1000 + run_no,
                cutoff: None,
            },
            evidence::Settings::default(),
            2,
        );
        fixed.push(with_seed.verdict.beats_chance);
    }
    let passed = fixed.iter().filter(|&&b| b).count();
    assert!(
        passed <= 2,
        "a coin flip beat chance {passed} times in 10: {fixed:?}"
    );
    eprintln!(
        "coin flip: beats_chance {} of 10 with the stored seeds, {passed} of 10 with fixed seeds",
        verdicts.iter().filter(|&&b| b).count()
    );
}

/// The key that signs this stack's ledgers.
async fn verify_key(arena: &Arena) -> String {
    let keys: Value = reqwest::get(arena.server.url("/api/ledger/keys"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    keys["keys"][0]["public_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_model_cutoff_splits_a_crossing_window_and_grades_every_result() {
    let registry = "model,cutoff,source\n\
        test/inside,2021-02-10,https://example.com/inside\n\
        test/after*,2020-12-31,https://example.com/after\n\
        test/before,2021-12-31,https://example.com/before\n";
    let path = temp_file("cutoffs.csv", registry);
    let arena = arena(
        &[("MODEL_CUTOFFS_FILE", path.to_str().unwrap())],
        "2021-02-01T00:00:00Z",
        "2021-02-21T00:00:00Z",
    )
    .await;
    let (token, user) = arena.user("user_evidence_cutoffs").await;
    let key = arena.key(user, KEY).await;
    let mut by_model = std::collections::HashMap::new();
    for model in [
        "test/inside",
        "test/after-v2",
        "test/before",
        "test/unknown",
    ] {
        let agent = arena.agent(user, model, Some(key)).await;
        let s = arena
            .complete_backtest(
                &token,
                body(agent, "2021-02-01", "2021-02-20", json!({"lookahead": 8})),
            )
            .await;
        by_model.insert(model, s);
    }
    let card = |m: &str| by_model[m]["result"]["methodology"].clone();
    let split = |m: &str| by_model[m]["result"]["evidence"]["cutoff_split"].clone();
    assert_eq!(
        (
            card("test/inside")["window_vs_cutoff"].clone(),
            card("test/inside")["evidence_grade"].clone()
        ),
        (json!("crossing"), json!("C"))
    );
    assert_eq!(card("test/inside")["model_cutoff"], "2021-02-10");
    assert_eq!(
        card("test/inside")["model_cutoff_source"],
        "https://example.com/inside"
    );
    assert_eq!(card("test/after-v2")["window_vs_cutoff"], "after");
    assert_eq!(card("test/after-v2")["evidence_grade"], "B");
    assert_eq!(card("test/before")["window_vs_cutoff"], "before");
    assert_eq!(card("test/before")["evidence_grade"], "D");
    assert_eq!(card("test/unknown")["model_cutoff"], Value::Null);
    assert_eq!(card("test/unknown")["window_vs_cutoff"], "unknown");
    assert_eq!(card("test/unknown")["evidence_grade"], "D");
    for m in ["test/after-v2", "test/before", "test/unknown"] {
        assert!(split(m).is_null(), "{m}: {}", split(m));
    }
    // the crossing one: split at 2021-02-11 00:00 UTC, each side from its own starting equity
    let s = split("test/inside");
    assert_eq!(s["cutoff"], "2021-02-10");
    let boundary = chrono::DateTime::parse_from_rfc3339("2021-02-11T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    assert_eq!(s["boundary"], boundary);
    assert_eq!(s["before"]["candles"], 240);
    // 2021-02-11 04:00 is missing
    assert_eq!(s["after"]["candles"], 215);
    let id = by_model["test/inside"]["result"]["id"].as_str().unwrap();
    let equity = equity_export(&arena, &token, id).await;
    let before = (equity[239] / 10_000.0 - 1.0) * 100.0;
    let after = (equity[equity.len() - 1] / equity[239] - 1.0) * 100.0;
    assert!((s["before"]["total_return_pct"].as_f64().unwrap() - before).abs() < 1e-9);
    assert!((s["after"]["total_return_pct"].as_f64().unwrap() - after).abs() < 1e-9);
    for side in ["before", "after"] {
        for field in [
            "total_return_pct",
            "win_rate_pct",
            "max_drawdown_pct",
            "sharpe_ratio",
        ] {
            assert!(s[side].get(field).is_some(), "{side}.{field}");
        }
    }
}
