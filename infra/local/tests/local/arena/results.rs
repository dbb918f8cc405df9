//! What finished backtests become (issue 23), on results the step chain produced: the results
//! lists, detail, trades, reasoning and curve; the exports and the metrics recomputed from them;
//! certificates (rules, concurrency, digests recomputed here with an RFC 8785 writer of our own,
//! tampering, the PDF and its QR code, the per-address verify limit); the dashboard.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Arena;

const DAY: &str = "T00:00:00Z";

fn body(agent: Uuid, start: &str, end: &str, speed: &str) -> Value {
    json!({"agent_id": agent, "asset": "BTCUSDT", "timeframe": "1h",
           "start_date": format!("{start}{DAY}"), "end_date": format!("{end}{DAY}"), "speed": speed})
}

/// Runs a backtest of `agent` to its end; the finished session.
async fn run(arena: &Arena, token: &str, agent: Uuid, start: &str, end: &str) -> Value {
    arena
        .complete_backtest(token, body(agent, start, end, "instant"))
        .await
}

/// GET with a fresh token of `clerk`: status, headers, bytes.
async fn raw(arena: &Arena, clerk: &str, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = arena
        .server
        .request(Method::GET, path, Some(&arena.env.token(clerk)))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

/// Every page of an export: (pages' bodies, their file names).
async fn export(arena: &Arena, clerk: &str, path: &str) -> (Vec<Vec<u8>>, Vec<String>) {
    let (mut bodies, mut names) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let (status, headers, bytes) = raw(arena, clerk, &url).await;
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&bytes));
        assert!(bytes.len() <= 4 * 1024 * 1024);
        let disposition = headers["content-disposition"].to_str().unwrap().to_owned();
        names.push(disposition);
        bodies.push(bytes);
        cursor = headers
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        if cursor.is_none() {
            return (bodies, names);
        }
    }
}

/// Every item of a JSON list followed page by page (`path` has a query already).
async fn every_page(arena: &Arena, token: &str, path: &str, items: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = if cursor.is_empty() {
            path.to_owned()
        } else {
            format!("{path}&cursor={cursor}")
        };
        let (status, page) = arena.call(Method::GET, &url, token, None).await;
        assert_eq!(status, 200, "{url}: {page}");
        all.extend(page[items].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return all,
        }
    }
}

/// The rows of CSV pages (each with its header), as strings.
fn csv_rows(pages: &[Vec<u8>]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = Vec::new();
    let mut rows = Vec::new();
    for page in pages {
        let mut reader = csv::Reader::from_reader(page.as_slice());
        header = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        for record in reader.records() {
            rows.push(record.unwrap().iter().map(str::to_owned).collect());
        }
    }
    (header, rows)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
}

#[tokio::test]
async fn results_lists_detail_and_exports_are_the_backtests_ground_truth() {
    let mut arena = Arena::start(&[]).await;
    arena.run_steps().await;
    arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-01-01T00:00:00Z",
            "2021-06-01T00:00:00Z",
        )
        .await;
    let (token, user) = arena.user("user_results").await;
    let hold = arena.agent(user, "baseline/buy-and-hold", None).await;
    let cross = arena.agent(user, "baseline/sma-cross", None).await;
    // two identical runs (equal returns), a losing one, and one with many trades
    let up1 = run(&arena, &token, hold, "2021-02-01", "2021-03-01").await;
    let up2 = run(&arena, &token, hold, "2021-02-01", "2021-03-01").await;
    let down = run(&arena, &token, hold, "2021-05-01", "2021-06-01").await;
    let many = run(&arena, &token, cross, "2021-01-01", "2021-03-01").await;
    let rid = |s: &Value| s["result"]["id"].as_str().unwrap().to_owned();
    let ret = |s: &Value| s["result"]["metrics"]["total_return_pct"].as_f64().unwrap();
    assert_eq!(ret(&up1), ret(&up2), "identical runs, identical returns");
    assert!(ret(&up1) > 0.0 && ret(&down) < 0.0);

    // the list: newest first by default; every field the issue names
    let (status, list) = arena.call(Method::GET, "/api/results", &token, None).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<String> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [rid(&many), rid(&down), rid(&up2), rid(&up1)]);
    let first = &list["results"][0];
    for field in [
        "id",
        "session_id",
        "agent_id",
        "agent_name",
        "model",
        "mode",
        "type",
        "status",
        "asset",
        "timeframe",
        "start_date",
        "end_date",
        "candles",
        "initial_capital",
        "final_equity",
        "total_return_pct",
        "win_rate_pct",
        "total_trades",
        "max_drawdown_pct",
        "is_profitable",
        "certificate_id",
        "duration_seconds",
        "created_at",
    ] {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    assert_eq!(
        first["total_return_pct"],
        many["result"]["metrics"]["total_return_pct"]
    );
    assert_eq!(first["candles"], many["result"]["metrics"]["candles"]);
    assert_eq!(first["status"], "completed");
    assert_eq!(first["type"], "backtest");

    // by return, one per page: the tie crosses a page boundary, nothing repeated or skipped
    for order in ["desc", "asc"] {
        let path = format!("/api/results?sort=total_return_pct&order={order}&limit=1");
        let seen: Vec<(f64, String)> = every_page(&arena, &token, &path, "results")
            .await
            .iter()
            .map(|r| {
                let ret = r["total_return_pct"].as_f64().unwrap();
                (ret, r["id"].as_str().unwrap().to_owned())
            })
            .collect();
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "{order}: by return, ties by id, each once");
    }
    // filters, and stats over exactly what the list returns
    let profitable_sma = usize::from(ret(&many) >= 0.0);
    let by_agent = format!("agent_id={hold}");
    for (query, expected) in [
        ("profitable=true", 2 + profitable_sma),
        ("profitable=false", 2 - profitable_sma),
        (by_agent.as_str(), 3),
        ("type=forward", 0),
        ("status=stopped", 0),
        ("asset=ETHUSDT", 0),
    ] {
        let (_, page) = arena
            .call(Method::GET, &format!("/api/results?{query}"), &token, None)
            .await;
        let results = page["results"].as_array().unwrap();
        assert_eq!(results.len(), expected, "{query}: {page}");
        let (_, stats) = arena
            .call(
                Method::GET,
                &format!("/api/results/stats?{query}"),
                &token,
                None,
            )
            .await;
        let stats = &stats["stats"];
        assert_eq!(stats["total_results"], expected, "{query}");
        let returns: Vec<f64> = results
            .iter()
            .map(|r| r["total_return_pct"].as_f64().unwrap())
            .collect();
        let trades: i64 = results
            .iter()
            .map(|r| r["total_trades"].as_i64().unwrap())
            .sum();
        assert_eq!(stats["total_trades"], trades);
        if returns.is_empty() {
            assert!(stats["best_total_return_pct"].is_null() && stats["profitable_pct"].is_null());
        } else {
            let best = returns.iter().copied().fold(f64::MIN, f64::max);
            assert_eq!(stats["best_total_return_pct"].as_f64().unwrap(), best);
            let mean = returns.iter().sum::<f64>() / returns.len() as f64;
            assert!(close(
                stats["average_total_return_pct"].as_f64().unwrap(),
                mean
            ));
            let by_agent: i64 = stats["by_agent"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["results"].as_i64().unwrap())
                .sum();
            assert_eq!(by_agent, returns.len() as i64);
        }
    }
    // bad parameters: 422 naming each
    let (status, bad) = arena
        .call(
            Method::GET,
            "/api/results?limit=0&sort=name&order=up&type=live&profitable=yes&agent_id=x&status=running&asset=DOGE&cursor=zz",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    let named: Vec<&str> = bad["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for p in [
        "limit",
        "sort",
        "order",
        "type",
        "profitable",
        "agent_id",
        "status",
        "asset",
        "cursor",
    ] {
        assert!(named.contains(&p), "{p} named in {bad}");
    }
    // a cursor of another order is not this list's
    let (_, page) = arena
        .call(Method::GET, "/api/results?limit=1", &token, None)
        .await;
    let c = page["next_cursor"].as_str().unwrap();
    let (status, _) = arena
        .call(
            Method::GET,
            &format!("/api/results?limit=1&order=asc&cursor={c}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 422);

    // the detail: the session's metrics, the config and the agent as they were
    let id = rid(&many);
    let (status, detail) = arena
        .call(Method::GET, &format!("/api/results/{id}"), &token, None)
        .await;
    assert_eq!(status, 200, "{detail}");
    let detail = &detail["result"];
    let mut session_metrics = many["result"]["metrics"].clone();
    session_metrics
        .as_object_mut()
        .unwrap()
        .remove("equity_curve");
    assert_eq!(
        detail["metrics"], session_metrics,
        "the same metrics, same values"
    );
    assert_eq!(detail["config"]["fee_bps"], many["config"]["fee_bps"]);
    for key in [
        "initial_capital",
        "fee_bps",
        "slippage_bps",
        "leverage",
        "safety_mode",
        "speed",
        "lookahead",
    ] {
        assert!(detail["config"].get(key).is_some(), "config.{key}");
    }
    let name = detail["agent_snapshot"]["name"].clone();
    assert_eq!(detail["agent_snapshot"]["model"], "baseline/sma-cross");
    sqlx::query("UPDATE agents SET name = 'renamed later' WHERE id = $1")
        .bind(cross)
        .execute(&arena.pool)
        .await
        .unwrap();
    let (_, again) = arena
        .call(Method::GET, &format!("/api/results/{id}"), &token, None)
        .await;
    assert_eq!(
        again["result"]["agent_name"], name,
        "a rename changes no result"
    );

    // trades, by trade_no in pages, equal the CSV and JSON exports
    let total = detail["total_trades"].as_u64().unwrap() as usize;
    assert!(total >= 3, "sma-cross traded: {total}");
    let path = format!("/api/results/{id}/trades?limit=2");
    let trades = every_page(&arena, &token, &path, "trades").await;
    assert_eq!(trades.len(), total);
    let fields = [
        "trade_no",
        "side",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "quantity",
        "leverage",
        "stop_loss",
        "take_profit",
        "pnl",
        "pnl_pct",
        "fees",
        "exit_type",
    ];
    for (i, t) in trades.iter().enumerate() {
        assert_eq!(t["trade_no"], i as u64 + 1);
        let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 14, "{t}");
        assert!(t["entry_time"].as_str().unwrap().ends_with(":00Z"));
        assert_eq!(
            t["entry_time"].as_str().unwrap().len(),
            20,
            "YYYY-MM-DDTHH:MM:SSZ"
        );
    }
    let (pages, names) = export(
        &arena,
        "user_results",
        &format!("/api/export/results/{id}?format=csv&part=trades"),
    )
    .await;
    assert_eq!(
        names,
        [format!("attachment; filename=\"alphalab-{id}-trades.csv\"")]
    );
    let (header, rows) = csv_rows(&pages);
    assert_eq!(header, fields);
    assert_eq!(rows.len(), total);
    for (row, t) in rows.iter().zip(&trades) {
        for (cell, field) in row.iter().zip(fields) {
            let expected = match &t[field] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Number(n) if n.is_f64() => n.as_f64().unwrap().to_string(),
                other => other.to_string(),
            };
            assert_eq!(*cell, expected, "{field} of {t}");
        }
    }
    let (pages, _) = export(
        &arena,
        "user_results",
        &format!("/api/export/results/{id}?format=json&part=trades&limit=2"),
    )
    .await;
    let from_json: Vec<Value> = pages
        .iter()
        .flat_map(|p| {
            serde_json::from_slice::<Value>(p).unwrap()["trades"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(
        from_json, trades,
        "JSON pages parse back to the same trades"
    );

    // equity: one row per candle, paged with page-numbered names; the four metrics recomputed
    let (pages, names) = export(
        &arena,
        "user_results",
        &format!("/api/export/results/{id}?format=csv&part=equity&limit=500"),
    )
    .await;
    assert!(pages.len() >= 3, "{} pages", pages.len());
    assert_eq!(
        names[1],
        format!("attachment; filename=\"alphalab-{id}-equity-page2.csv\"")
    );
    let (header, rows) = csv_rows(&pages);
    assert_eq!(header, ["time", "equity"]);
    let m = &detail["metrics"];
    assert_eq!(
        rows.len() as u64,
        m["candles"].as_u64().unwrap(),
        "every candle"
    );
    let equity: Vec<f64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
    let capital = m["initial_capital"].as_f64().unwrap();
    let final_equity = *equity.last().unwrap();
    assert_eq!(
        final_equity,
        m["final_equity"].as_f64().unwrap(),
        "the last row is final_equity"
    );
    assert!(close(
        (final_equity / capital - 1.0) * 100.0,
        m["total_return_pct"].as_f64().unwrap()
    ));
    let mut peak = capital;
    let mut drawdown: f64 = 0.0;
    for e in &equity {
        peak = peak.max(*e);
        drawdown = drawdown.max((peak - e) / peak);
    }
    assert!(close(
        drawdown * 100.0,
        m["max_drawdown_pct"].as_f64().unwrap()
    ));
    let pnl: Vec<f64> = trades.iter().map(|t| t["pnl"].as_f64().unwrap()).collect();
    let wins = pnl.iter().filter(|p| **p > 0.0).count();
    assert!(close(
        wins as f64 / pnl.len() as f64 * 100.0,
        m["win_rate_pct"].as_f64().unwrap()
    ));
    let gains: f64 = pnl.iter().filter(|p| **p > 0.0).sum();
    let losses: f64 = -pnl.iter().filter(|p| **p <= 0.0).sum::<f64>();
    if losses > 0.0 {
        assert!(close(gains / losses, m["profit_factor"].as_f64().unwrap()));
    }
    let (pages, _) = export(
        &arena,
        "user_results",
        &format!("/api/export/results/{id}?format=json&part=equity"),
    )
    .await;
    let json_rows = serde_json::from_slice::<Value>(&pages[0]).unwrap()["equity"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(json_rows, rows.len());

    // the chart's curve: at most 1,000 points, first and last candle, buy & hold beside it
    let (_, curve) = arena
        .call(
            Method::GET,
            &format!("/api/results/{id}/equity"),
            &token,
            None,
        )
        .await;
    let curve = curve["equity"].as_array().unwrap();
    assert!(curve.len() <= 1000 && curve.len() > 2);
    assert_eq!(curve[0]["time"].as_str().unwrap(), rows[0][0]);
    assert_eq!(curve[0]["equity"].as_f64().unwrap(), equity[0]);
    assert_eq!(
        curve.last().unwrap()["time"].as_str().unwrap(),
        rows.last().unwrap()[0]
    );
    assert_eq!(
        curve.last().unwrap()["equity"].as_f64().unwrap(),
        final_equity
    );
    assert_eq!(curve[0]["buy_hold_equity"].as_f64().unwrap(), capital);
    let bh_last = curve.last().unwrap()["buy_hold_equity"].as_f64().unwrap();
    assert!(close(
        bh_last / capital * 100.0 - 100.0,
        m["buy_hold_return_pct"].as_f64().unwrap()
    ));

    // reasoning: baselines decide without a model, so none is stored; the route answers empty
    let (status, reasoning) = arena
        .call(
            Method::GET,
            &format!("/api/results/{id}/reasoning?action=long"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{reasoning}");
    let (status, bad) = arena
        .call(
            Method::GET,
            &format!("/api/results/{id}/reasoning?action=buy&limit=1001"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    let (status, bad) = arena
        .call(
            Method::GET,
            &format!("/api/export/results/{id}?format=xml&part=all&limit=0"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 422);
    let named: Vec<&str> = bad["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["format", "part", "limit"]);

    // another user: 404 on every id route, and a 422 naming result_id for a certificate
    let (other, _) = arena.user("user_results_other").await;
    for path in [
        format!("/api/results/{id}"),
        format!("/api/results/{id}/trades"),
        format!("/api/results/{id}/reasoning"),
        format!("/api/results/{id}/equity"),
        format!("/api/export/results/{id}?format=csv&part=trades"),
        format!("/api/results/{}", Uuid::new_v4()),
    ] {
        let (status, body) = arena.call(Method::GET, &path, &other, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, body) = arena
        .call(
            Method::POST,
            "/api/certificates",
            &other,
            Some(json!({"result_id": id})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "result_id");
    let (_, theirs) = arena.call(Method::GET, "/api/results", &other, None).await;
    assert_eq!(theirs["results"], json!([]));
}

/// RFC 8785 written again, independently of the certificates function: members sorted by
/// UTF-16 code units, numbers as ECMAScript prints them (Rust's `{}` between 1e-6 and 1e21,
/// else the `{:e}` digits with a signed exponent).
fn jcs(value: &Value) -> String {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| {
                a.encode_utf16()
                    .collect::<Vec<_>>()
                    .cmp(&b.encode_utf16().collect::<Vec<_>>())
            });
            let members: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), jcs(&m[*k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(jcs).collect::<Vec<_>>().join(",")),
        Value::Number(n) => {
            let x = n.as_f64().unwrap();
            if x == 0.0 {
                "0".into()
            } else if (1e-6..1e21).contains(&x.abs()) {
                format!("{x}")
            } else {
                let e = format!("{x:e}");
                let (m, exp) = e.split_once('e').unwrap();
                if exp.starts_with('-') {
                    format!("{m}e{exp}")
                } else {
                    format!("{m}e+{exp}")
                }
            }
        }
        other => other.to_string(),
    }
}

fn sha256(text: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_tests_rfc8785_writer_agrees_with_the_rfcs_examples() {
    for (x, text) in [
        (10000.0, "10000"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (-1.5, "-1.5"),
    ] {
        assert_eq!(jcs(&json!(x)), text);
    }
    assert_eq!(
        jcs(&json!({"b": 1, "a": [true, null, "x"]})),
        r#"{"a":[true,null,"x"],"b":1}"#
    );
}

/// Verify's answer for `code` from `address` (no token, an invalid Authorization header).
async fn verify_from(
    arena: &Arena,
    address: &str,
    code: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let client = reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let response = client
        .get(
            arena
                .server
                .url(&format!("/api/certificates/verify/{code}")),
        )
        .header("authorization", "Bearer not-a-token")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn certificates_are_issued_once_verified_by_anyone_and_show_any_later_edit() {
    let mut arena = Arena::start(&[("VERIFY_RATE_LIMIT_PER_MINUTE", "1000")]).await;
    arena.run_steps().await;
    arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-02-01T00:00:00Z",
            "2021-06-01T00:00:00Z",
        )
        .await;
    let clerk = "user_certs";
    let (token, user) = arena.user(clerk).await;
    let hold = arena.agent(user, "baseline/buy-and-hold", None).await;
    let up = run(&arena, &token, hold, "2021-02-01", "2021-03-01").await;
    let down = run(&arena, &token, hold, "2021-05-01", "2021-06-01").await;
    // a stopped run (profitable so far or not, it is not the test that was asked for)
    let stopped = arena
        .start_backtest(&token, body(hold, "2021-02-01", "2021-03-01", "slow"))
        .await;
    arena
        .wait_for(&token, stopped, &["running"], Duration::from_secs(20))
        .await;
    let (status, _) = arena.control(&token, stopped, "stop", None).await;
    assert_eq!(status, 200);
    let stopped = arena
        .wait_for(&token, stopped, &["stopped"], Duration::from_secs(20))
        .await;
    let result_of = |s: &Value| s["result"]["id"].as_str().unwrap().to_owned();

    // refusals: each a 422 naming result_id
    for (body, why) in [
        (json!({}), "required"),
        (json!({"result_id": "nope"}), "UUID"),
        (json!({"result_id": 7}), "UUID"),
        (json!({"result_id": Uuid::new_v4()}), "no result"),
        (json!({"result_id": result_of(&down)}), "not profitable"),
        (
            json!({"result_id": result_of(&stopped)}),
            "did not complete",
        ),
    ] {
        let (status, answer) = arena
            .call(
                Method::POST,
                "/api/certificates",
                &token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        let field = &answer["error"]["details"]["fields"][0];
        assert_eq!(field["field"], "result_id", "{answer}");
        assert!(
            field["message"].as_str().unwrap().contains(why),
            "{why}: {answer}"
        );
    }
    let (status, answer) = arena
        .call(
            Method::POST,
            "/api/certificates",
            &token,
            Some(json!({"result_id": result_of(&up), "extra": 1})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("extra")
    );

    // five at once: one 201, four 200 with the same certificate, one row
    let id = result_of(&up);
    let calls = (0..5).map(|_| {
        arena.call(
            Method::POST,
            "/api/certificates",
            &token,
            Some(json!({"result_id": id})),
        )
    });
    let answers = futures::future::join_all(calls).await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 201 || *s == 200));
    let cert = answers[0].1["certificate"].clone();
    assert!(answers.iter().all(|(_, a)| a["certificate"] == cert));
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM certificates WHERE result_id = $1::uuid")
            .bind(&id)
            .fetch_one(&arena.pool)
            .await
            .unwrap();
    assert_eq!(rows, 1);
    let code = cert["verification_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 19);
    assert!(
        code.chars()
            .all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
    );
    assert_eq!(
        cert["share_url"],
        format!("http://localhost:3000/verify/{code}")
    );
    let cert_id = cert["id"].as_str().unwrap().to_owned();
    let (_, listed) = arena
        .call(Method::GET, &format!("/api/results/{id}"), &token, None)
        .await;
    assert_eq!(listed["result"]["certificate_id"], cert["id"]);

    // the snapshot: exactly its keys, the result's values; both digests recomputed here
    let snapshot = &cert["snapshot"];
    let mut keys: Vec<&str> = snapshot
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = vec![
        "version",
        "verification_code",
        "issued_at",
        "result_id",
        "agent_name",
        "model",
        "mode",
        "type",
        "asset",
        "timeframe",
        "start_date",
        "end_date",
        "candles",
        "initial_capital",
        "final_equity",
        "total_return_pct",
        "buy_hold_return_pct",
        "max_drawdown_pct",
        "win_rate_pct",
        "profit_factor",
        "sharpe_ratio",
        "total_trades",
        "fee_bps",
        "slippage_bps",
        "trades_sha256",
        // version 2: the evidence
        "ledger_head",
        "evidence",
        "methodology",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(snapshot["version"], 2);
    assert_eq!(snapshot["ledger_head"], listed["result"]["ledger_head"]);
    assert_eq!(snapshot["evidence"], up["result"]["evidence"]);
    assert_eq!(snapshot["methodology"]["evidence_grade"], "not_applicable");
    assert_eq!(
        snapshot["total_return_pct"],
        up["result"]["metrics"]["total_return_pct"]
    );
    assert_eq!(snapshot["issued_at"], cert["issued_at"]);
    assert_eq!(cert["digest"].as_str().unwrap(), sha256(&jcs(snapshot)));
    let (pages, _) = export(
        &arena,
        clerk,
        &format!("/api/export/results/{id}?format=json&part=trades"),
    )
    .await;
    let trades = serde_json::from_slice::<Value>(&pages[0]).unwrap()["trades"].clone();
    assert_eq!(
        snapshot["trades_sha256"].as_str().unwrap(),
        sha256(&jcs(&trades))
    );

    // verify: public, any case, no hyphens, Crockford's look-alikes; counts views
    let typed = code
        .replace('-', "")
        .to_lowercase()
        .replace('0', "o")
        .replace('1', "l");
    let (status, _, answer) = verify_from(&arena, "127.0.0.1", &typed).await;
    assert_eq!(status, 200, "{answer}");
    let v = &answer["verification"];
    assert_eq!(v["matches"], true);
    assert_eq!(v["digest"], cert["digest"]);
    assert_eq!(v["current_digest"], cert["digest"]);
    assert_eq!(v["snapshot"], *snapshot);
    assert_eq!(v["view_count"], 1);
    let text = answer.to_string();
    for private in [
        user.to_string(),
        hold.to_string(),
        "Trend following".into(),
        "sk-or".into(),
        "user_id".into(),
        "email".into(),
    ] {
        assert!(!text.contains(&private), "{private} leaked: {text}");
    }
    let (status, _) = arena
        .call(
            Method::GET,
            &format!("/api/certificates/{cert_id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, answer) = verify_from(&arena, "127.0.0.1", &code).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["verification"]["view_count"], 2,
        "the owner's read did not count"
    );
    let (status, _, _) = verify_from(&arena, "127.0.0.1", "ZZZZ-ZZZZ-ZZZZ-ZZZZ").await;
    assert_eq!(status, 404);

    // tampering in Postgres shows; restoring the value restores the match
    let session = up["id"].as_str().unwrap().parse::<Uuid>().unwrap();
    for (edit, undo) in [
        (
            "UPDATE trades SET exit_price = exit_price + 1 WHERE session_id = $1 AND trade_no = 1",
            "UPDATE trades SET exit_price = exit_price - 1 WHERE session_id = $1 AND trade_no = 1",
        ),
        (
            "UPDATE test_results SET total_pnl_pct = total_pnl_pct * 2 WHERE session_id = $1",
            "UPDATE test_results SET total_pnl_pct = total_pnl_pct / 2 WHERE session_id = $1",
        ),
    ] {
        sqlx::query(edit)
            .bind(session)
            .execute(&arena.pool)
            .await
            .unwrap();
        let (_, _, answer) = verify_from(&arena, "127.0.0.1", &code).await;
        assert_eq!(answer["verification"]["matches"], false, "{edit}");
        assert_ne!(answer["verification"]["current_digest"], cert["digest"]);
        sqlx::query(undo)
            .bind(session)
            .execute(&arena.pool)
            .await
            .unwrap();
        let (_, _, answer) = verify_from(&arena, "127.0.0.1", &code).await;
        assert_eq!(answer["verification"]["matches"], true, "{undo}");
    }

    // the PDF: one page under 1 MB, its text, and its QR code read back from a rendering
    let (status, headers, pdf) =
        raw(&arena, clerk, &format!("/api/certificates/{cert_id}/pdf")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(
        headers["content-disposition"].to_str().unwrap(),
        format!("attachment; filename=\"alphalab-certificate-{code}.pdf\"")
    );
    assert!(
        pdf.starts_with(b"%PDF") && pdf.len() < 1_000_000,
        "{} bytes",
        pdf.len()
    );
    let dir = std::env::temp_dir().join(format!("alphalab-pdf-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("certificate.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let text = std::process::Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    let text = String::from_utf8_lossy(&text.stdout);
    let agent_name = snapshot["agent_name"].as_str().unwrap();
    for needle in [
        code.as_str(),
        agent_name,
        "CERTIFICATE",
        "ALPHALAB",
        cert["share_url"].as_str().unwrap(),
    ] {
        assert!(text.contains(needle), "{needle} in the PDF's text: {text}");
    }
    let pnl = snapshot["total_return_pct"].as_f64().unwrap();
    assert!(text.contains(&format!("+{pnl:.2}%")), "{text}");
    // the verdict line and the evidence grade
    assert!(
        text.contains("Evidence grade: not applicable (a baseline agent, no model)"),
        "{text}"
    );
    let verdict = snapshot["evidence"]["verdict"]["summary"].as_str().unwrap();
    let chance_part = verdict.split("; ").next().unwrap();
    assert!(text.contains(chance_part), "{chance_part} in {text}");
    let out = std::process::Command::new("pdftoppm")
        .args(["-gray", "-r", "150", "-singlefile"])
        .arg(&file)
        .arg(dir.join("page"))
        .output()
        .expect("pdftoppm (poppler-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pgm = std::fs::read(dir.join("page.pgm")).unwrap();
    let (width, height, pixels) = read_pgm(&pgm);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the page");
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, cert["share_url"].as_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);

    // the notification and the activity entry
    let (_, feed) = arena
        .call(Method::GET, "/api/notifications", &token, None)
        .await;
    let issued: Vec<&Value> = feed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "certificate_issued")
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        issued[0]["data"],
        json!({"certificate_id": cert["id"], "result_id": id, "verification_code": code})
    );
    let (_, activity) = arena
        .call(Method::GET, "/api/dashboard/activity", &token, None)
        .await;
    let first = &activity["activity"][0];
    assert_eq!(first["action"], "certificate_issued");
    assert_eq!(first["entity_id"], cert["id"]);
    let actions: Vec<&str> = activity["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for a in [
        "test_started",
        "test_completed",
        "test_stopped",
        "agent_created",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    let (_, page) = arena
        .call(Method::GET, "/api/dashboard/activity?limit=2", &token, None)
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = arena
        .call(
            Method::GET,
            &format!("/api/dashboard/activity?limit=2&cursor={cursor}"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        next["activity"][0], activity["activity"][2],
        "keyset pages continue"
    );
    let (status, _) = arena
        .call(
            Method::GET,
            "/api/dashboard/activity?limit=101",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 422);

    // the dashboard's figures
    let (_, stats) = arena
        .call(Method::GET, "/api/dashboard/stats", &token, None)
        .await;
    let s = &stats["stats"];
    assert_eq!(s["agents"], 1);
    assert_eq!(s["completed_tests"], 2);
    assert_eq!(s["stopped_tests"], 1);
    assert_eq!(s["failed_tests"], 0);
    assert_eq!(s["running_tests"], 0);
    assert_eq!(s["profitable_tests_pct"], 50.0);
    assert_eq!(s["certificates"], 1);
    assert_eq!(s["best_agent"]["agent_id"], json!(hold));
    assert_eq!(
        s["best_agent"]["total_return_pct"],
        up["result"]["metrics"]["total_return_pct"]
    );
    assert_eq!(
        s["total_trades"], 2,
        "one buy-and-hold trade per completed run"
    );
    assert_eq!(s["unread_notifications"], feed["unread_count"]);

    // a result written before evidence existed gets (and keeps verifying) a version 1 snapshot
    let old = run(&arena, &token, hold, "2021-02-01", "2021-03-01").await;
    let old_id = result_of(&old);
    sqlx::query(
        "UPDATE test_results SET evidence = NULL, methodology = NULL, ledger_head = NULL
         WHERE id = $1::uuid",
    )
    .bind(&old_id)
    .execute(&arena.pool)
    .await
    .unwrap();
    let (status, answer) = arena
        .call(
            Method::POST,
            "/api/certificates",
            &token,
            Some(json!({"result_id": old_id})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let v1 = &answer["certificate"];
    assert_eq!(v1["snapshot"]["version"], 1);
    assert!(v1["snapshot"].get("evidence").is_none());
    assert_eq!(
        v1["digest"].as_str().unwrap(),
        sha256(&jcs(&v1["snapshot"]))
    );
    let code = v1["verification_code"].as_str().unwrap();
    let (status, _, answer) = verify_from(&arena, "127.0.0.1", code).await;
    assert_eq!(status, 200);
    assert_eq!(answer["verification"]["matches"], true, "{answer}");
}

/// Width, height and pixels of a binary PGM (`P5`, 8 bits).
fn read_pgm(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P5");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, bytes[at + 1..at + 1 + w * h].to_vec())
}

#[tokio::test]
async fn verify_is_limited_per_address_and_other_addresses_and_routes_are_not() {
    let mut arena = Arena::start(&[("VERIFY_RATE_LIMIT_PER_MINUTE", "3")]).await;
    arena.run_steps().await;
    arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-02-01T00:00:00Z",
            "2021-03-01T00:00:00Z",
        )
        .await;
    let (token, user) = arena.user("user_verify_limit").await;
    let hold = arena.agent(user, "baseline/buy-and-hold", None).await;
    let up = run(&arena, &token, hold, "2021-02-01", "2021-03-01").await;
    // this user turned certificate notifications off
    sqlx::query("UPDATE user_settings SET notify_certificate_issued = false WHERE user_id = $1")
        .bind(user)
        .execute(&arena.pool)
        .await
        .unwrap();
    let (status, cert) = arena
        .call(
            Method::POST,
            "/api/certificates",
            &token,
            Some(json!({"result_id": up["result"]["id"]})),
        )
        .await;
    assert_eq!(status, 201, "{cert}");
    let code = cert["certificate"]["verification_code"].as_str().unwrap();
    // every request counts, found or not
    for typed in [code, "0000-0000-0000-0000", code] {
        let (status, _, _) = verify_from(&arena, "127.0.0.3", typed).await;
        assert!(status == 200 || status == 404, "{status}");
    }
    let (_, feed) = arena
        .call(Method::GET, "/api/notifications", &token, None)
        .await;
    let kinds: Vec<&str> = feed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["test_completed"],
        "notify_certificate_issued is off"
    );
    let (status, headers, body) = verify_from(&arena, "127.0.0.3", code).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let (status, _, _) = verify_from(&arena, "127.0.0.4", code).await;
    assert_eq!(status, 200, "another address is unaffected");
    // the limited address still reads its results (the authenticated routes keep their own limit)
    let client = reqwest::Client::builder()
        .local_address("127.0.0.3".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let status = client
        .get(arena.server.url("/api/results"))
        .bearer_auth(arena.env.token("user_verify_limit"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn market_data_serves_the_cache_with_indicators_warmed_up_before_start() {
    let arena = Arena::start(&[]).await;
    let candles = arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-01-01T00:00:00Z",
            "2021-03-01T00:00:00Z",
        )
        .await;
    let (token, _) = arena.user("user_data").await;
    let (status, assets) = arena
        .call(Method::GET, "/api/data/assets", &token, None)
        .await;
    assert_eq!(status, 200, "{assets}");
    let btc = assets["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["asset"] == "BTCUSDT")
        .unwrap();
    let h1 = btc["timeframes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["timeframe"] == "1h")
        .unwrap();
    assert_eq!(h1["candles"], candles.len());
    assert_eq!(h1["first"], "2021-01-01T00:00:00Z");
    assert_eq!(
        h1["last"].as_str().unwrap(),
        store::candle_time::format_ms(candles.last().unwrap().time).unwrap()
    );

    // one request, and the same range in pages of 7: the same candles, the same values
    let query = "/api/data/candles?asset=BTCUSDT&timeframe=1h&start=2021-02-01&end=2021-02-03T00:00:00Z&indicators=sma_10,macd,rsi_14";
    let (status, whole) = arena.call(Method::GET, query, &token, None).await;
    assert_eq!(status, 200, "{whole}");
    let whole = whole["candles"].as_array().unwrap().clone();
    assert_eq!(whole.len(), 48);
    assert_eq!(whole[0]["time"], "2021-02-01T00:00:00Z");
    let paged = every_page(&arena, &token, &format!("{query}&limit=7"), "candles").await;
    assert_eq!(paged, whole, "pages carry the values of one continuous run");
    // sma_10 of the first candle is the mean of its close and the 9 before `start`
    let at = candles
        .iter()
        .position(|c| c.time == 1_612_137_600_000)
        .unwrap();
    let mean = candles[at - 9..=at].iter().map(|c| c.close).sum::<f64>() / 10.0;
    let first = &whole[0];
    assert_eq!(first["close"].as_f64().unwrap(), candles[at].close);
    assert!(close(first["indicators"]["sma_10"].as_f64().unwrap(), mean));
    for key in ["macd", "macd_signal", "macd_histogram", "rsi_14"] {
        assert!(
            first["indicators"][key].is_f64(),
            "{key} defined from the first candle: {first}"
        );
    }
    // at the very start of the cache nothing comes before: undefined until warm
    let (_, early) = arena
        .call(Method::GET, "/api/data/candles?asset=BTCUSDT&timeframe=1h&start=2021-01-01&end=2021-01-02&indicators=sma_10", &token, None)
        .await;
    assert!(early["candles"][0]["indicators"]["sma_10"].is_null());
    assert!(early["candles"][9]["indicators"]["sma_10"].is_f64());

    let (status, bad) = arena
        .call(Method::GET, "/api/data/candles?asset=DOGE&timeframe=2h&start=yesterday&end=2021-01-01&limit=5001&indicators=sma_10,magic", &token, None)
        .await;
    assert_eq!(status, 422, "{bad}");
    let fields = bad["error"]["details"]["fields"].as_array().unwrap();
    let named: Vec<&str> = fields
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        named,
        ["asset", "timeframe", "start", "limit", "indicators"]
    );
    assert!(
        fields[4]["message"].as_str().unwrap().contains("sma_N"),
        "lists the valid names"
    );
    let (status, bad) = arena
        .call(
            Method::GET,
            "/api/data/candles?asset=BTCUSDT&timeframe=1h&start=2021-02-02&end=2021-02-01",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(bad["error"]["details"]["fields"][0]["field"], "end");
    let (status, _) = arena
        .server
        .call(Method::GET, "/api/data/assets", None, None)
        .await
        .unwrap();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn reasoning_has_every_decided_candle_once_and_its_exports_parse_back() {
    let mut arena = Arena::start(&[]).await;
    arena.run_steps().await;
    arena
        .load(
            "BTCUSDT",
            "1h",
            "2021-06-01T00:00:00Z",
            "2021-06-02T00:00:00Z",
        )
        .await;
    let clerk = "user_reasoning";
    let (token, user) = arena.user(clerk).await;
    let key = arena.key(user, "sk-or-v1-good-0123456789abcdef0123").await;
    let agent = arena.agent(user, "openai/gpt-4o-mini", Some(key)).await;
    let paid = run(&arena, &token, agent, "2021-06-01", "2021-06-02").await;
    // the same requests again: every decision comes from the first run's answers
    let cached = run(&arena, &token, agent, "2021-06-01", "2021-06-02").await;
    for (session, from_cache) in [(&paid, false), (&cached, true)] {
        let id = session["result"]["id"].as_str().unwrap();
        let path = format!("/api/results/{id}/reasoning?limit=5");
        let entries = every_page(&arena, &token, &path, "reasoning").await;
        assert_eq!(entries.len(), 24, "one entry per decided candle");
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e["candle_index"], i);
            assert_eq!(e.as_object().unwrap().len(), 13, "{e}");
            assert_eq!(e["model"], "openai/gpt-4o-mini");
            assert_eq!(e["from_cache"], from_cache, "{e}");
            assert_eq!(e["candle_time"].as_str().unwrap().len(), 20);
            assert!(!e["reasoning"].as_str().unwrap().is_empty());
        }
        let holds = entries.iter().filter(|e| e["action"] == "hold").count();
        let path = format!("/api/results/{id}/reasoning?action=hold&limit=3");
        let only = every_page(&arena, &token, &path, "reasoning").await;
        assert_eq!(only.len(), holds);
        assert!(only.iter().all(|e| e["action"] == "hold"));

        let path = format!("/api/export/results/{id}?format=json&part=reasoning&limit=10");
        let (pages, names) = export(&arena, clerk, &path).await;
        assert_eq!(pages.len(), 3);
        assert_eq!(
            names[2],
            format!("attachment; filename=\"alphalab-{id}-reasoning-page3.json\"")
        );
        let rows: Vec<Value> = pages
            .iter()
            .flat_map(|p| {
                serde_json::from_slice::<Value>(p).unwrap()["reasoning"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .collect();
        assert_eq!(rows, entries);
        let path = format!("/api/export/results/{id}?format=csv&part=reasoning");
        let (pages, _) = export(&arena, clerk, &path).await;
        let (header, rows) = csv_rows(&pages);
        assert_eq!(header.len(), 13);
        assert_eq!(header[5], "order");
        for (row, e) in rows.iter().zip(&entries) {
            assert_eq!(
                row[4],
                e["reasoning"].as_str().unwrap(),
                "quoted text reads back"
            );
            let order: Value = if row[5].is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&row[5]).unwrap()
            };
            assert_eq!(order, e["order"], "order as JSON text");
            assert_eq!(row[6], from_cache.to_string());
        }
    }
}
