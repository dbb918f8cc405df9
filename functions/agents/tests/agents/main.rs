//! The agents function through real HTTP on a real Postgres (moto for the rate limiter).

use alphalab_agents::{Config, router};
use alphalab_devstack::{TestApp, TestEnv, assert_error};
use platform::{ApiState, Env, FromEnv};
use reqwest::Method;
use serde_json::{Value, json};

async fn start() -> TestApp {
    let env = TestEnv::new().await.expect("test environment");
    let config = Config::from_env(&Env::from_lookup(env.lookup())).expect("config");
    let state = ApiState::new(&config).await.expect("state");
    TestApp::start_with(env, |_| Ok(router(state)))
        .await
        .expect("agents function")
}

fn llm(name: &str) -> Value {
    json!({
        "name": name, "mode": "omni", "model": "anthropic/claude-3.5-sonnet",
        "indicators": ["rsi", "macd", "ema_21"], "strategy_prompt": "Trend follow; cut losers fast."
    })
}

async fn create(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.send(Method::POST, "/api/agents", Some(token), body)
        .await
}

async fn user_id(app: &TestApp, clerk: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM users WHERE clerk_id = $1")
        .bind(clerk)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_agent_is_created_read_and_listed_with_its_stats() {
    let app = start().await;
    let token = app.token("user_agents");
    let (status, body) = create(&app, &token, llm("  Trend  ")).await;
    assert_eq!(status, 201, "{body}");
    let agent = &body["agent"];
    assert_eq!(agent["name"], "Trend");
    assert_eq!(agent["indicators"], json!(["rsi", "macd", "ema_21"]));
    assert_eq!(agent["test_count"], 0);
    assert_eq!(agent["best_pnl_pct"], Value::Null);
    assert_eq!(agent["last_tested_at"], Value::Null);
    assert_eq!(agent["api_key_id"], Value::Null);
    assert_eq!(agent["temperature"], 0.3, "the default temperature");
    let id = agent["id"].as_str().unwrap();
    let (status, got) = app.get(&format!("/api/agents/{id}"), Some(&token)).await;
    assert_eq!((status, &got["agent"]), (200, agent));
    // a baseline needs no prompt and gets its own indicators
    let (status, body) = create(
        &app,
        &token,
        json!({"name": "Base", "mode": "monk", "model": "baseline/sma-cross"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["agent"]["indicators"], json!(["sma_10", "sma_30"]));
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'agent_created'")
            .await,
        2
    );
}

#[tokio::test]
async fn each_rule_answers_422_naming_the_field() {
    let app = start().await;
    let token = app.token("user_rules");
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"name": ""}), "name", "1 to 64"),
        (json!({"name": "n".repeat(65)}), "name", "1 to 64"),
        (json!({"mode": "zen"}), "mode", "monk, omni"),
        (json!({"model": "gpt-4o"}), "model", "vendor/model"),
        (
            json!({"model": "baseline/moon"}),
            "model",
            "baseline/sma-cross",
        ),
        (json!({"indicators": []}), "indicators", "at least one"),
        (json!({"indicators": ["vwap"]}), "indicators", "valid: rsi"),
        (
            json!({"strategy_prompt": ""}),
            "strategy_prompt",
            "1 to 8000",
        ),
        (
            json!({"strategy_prompt": "p".repeat(8001)}),
            "strategy_prompt",
            "1 to 8000",
        ),
        (
            json!({"temperature": 2.5}),
            "temperature",
            "between 0 and 2",
        ),
        (
            json!({"temperature": -0.1}),
            "temperature",
            "between 0 and 2",
        ),
    ];
    for (change, field, says) in cases {
        let mut body = llm("Rules");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, response) = create(&app, &token, body).await;
        assert_eq!(status, 422, "{field}: {response}");
        assert_error(&response, "validation_failed");
        let fields = &response["error"]["details"]["fields"];
        assert_eq!(fields[0]["field"], field, "{response}");
        assert!(
            fields[0]["message"].as_str().unwrap().contains(says),
            "{response}"
        );
    }
    let mut unknown = llm("Rules");
    unknown["temperature_bogus"] = json!(1);
    let (status, response) = create(&app, &token, unknown).await;
    assert_eq!(status, 422);
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temperature_bogus")
    );
    assert_eq!(app.count("SELECT count(*) FROM agents").await, 0);
}

#[tokio::test]
async fn names_are_unique_among_live_agents_and_another_users_key_is_not_revealed() {
    let app = start().await;
    let (alice, bob) = (app.token("user_a"), app.token("user_b"));
    assert_eq!(create(&app, &alice, llm("Same")).await.0, 201);
    let (status, body) = create(&app, &alice, llm("Same")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "name");
    // another user may use the name
    assert_eq!(create(&app, &bob, llm("Same")).await.0, 201);

    // Bob's key as Alice's api_key_id: the same 422 as a key that does not exist
    let bob_id = user_id(&app, "user_b").await;
    let bob_key: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO api_keys (user_id, name, encrypted_key, key_version, masked_key) VALUES ($1, 'k', '\\x00', 1, 'm') RETURNING id",
    )
    .bind(bob_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let mut with_key = llm("Keyed");
    with_key["api_key_id"] = json!(bob_key);
    let (status, foreign) = create(&app, &alice, with_key.clone()).await;
    with_key["api_key_id"] = json!(uuid::Uuid::new_v4());
    let (_, missing) = create(&app, &alice, with_key).await;
    assert_eq!(status, 422);
    assert_eq!(foreign, missing, "indistinguishable");
    assert_eq!(
        foreign["error"]["message"],
        "invalid request: api_key_id: API key not found"
    );
    // Bob may
    let mut with_key = llm("Keyed");
    with_key["api_key_id"] = json!(bob_key);
    assert_eq!(create(&app, &bob, with_key).await.0, 201);
}

#[tokio::test]
async fn a_partial_update_changes_only_its_fields_and_accepts_what_a_get_returned() {
    let app = start().await;
    let token = app.token("user_update");
    let (_, body) = create(&app, &token, llm("Before")).await;
    let id = body["agent"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/agents/{id}");
    let (status, body) = app
        .send(
            Method::PUT,
            &path,
            Some(&token),
            json!({"name": "After", "mode": "monk", "temperature": 0.9}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent"]["name"], "After");
    assert_eq!(body["agent"]["mode"], "monk");
    assert_eq!(body["agent"]["temperature"], 0.9);
    assert_eq!(body["agent"]["model"], "anthropic/claude-3.5-sonnet");
    // send back what was read, changed in one place
    let mut read = body["agent"].clone();
    read["strategy_prompt"] = json!("Mean revert.");
    let (status, body) = app.send(Method::PUT, &path, Some(&token), read).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent"]["strategy_prompt"], "Mean revert.");
    // invalid changes are refused and change nothing
    let (status, _) = app
        .send(
            Method::PUT,
            &path,
            Some(&token),
            json!({"indicators": ["nope"], "name": "X"}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .send(Method::PUT, &path, Some(&token), json!({"colour": "red"}))
        .await;
    assert_eq!(status, 422);
    let (_, body) = app.get(&path, Some(&token)).await;
    assert_eq!(body["agent"]["name"], "After");
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'agent_updated'")
            .await,
        2
    );
}

#[tokio::test]
async fn deleting_archives_an_agent_with_sessions_and_removes_one_without() {
    let app = start().await;
    let token = app.token("user_delete");
    let (_, a) = create(&app, &token, llm("Tested")).await;
    let (_, b) = create(&app, &token, llm("Untested")).await;
    let (tested, untested) = (
        a["agent"]["id"].as_str().unwrap().to_owned(),
        b["agent"]["id"].as_str().unwrap().to_owned(),
    );
    let user = user_id(&app, "user_delete").await;
    let session: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO test_sessions (user_id, agent_id, type, asset, timeframe, starting_capital, agent_snapshot, config)
         VALUES ($1, $2, 'backtest', 'BTCUSDT', '1h', 10000, '{}', '{}') RETURNING id",
    )
    .bind(user)
    .bind(tested.parse::<uuid::Uuid>().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO test_results (session_id, user_id, agent_id, type, mode, asset, timeframe, starting_capital,
             final_equity, total_pnl, total_pnl_pct, metrics, equity_curve, agent_snapshot, config)
         VALUES ($1, $2, $3, 'backtest', 'omni', 'BTCUSDT', '1h', 10000, 11250, 1250, 12.5, '{}', '[]', '{}', '{}')",
    )
    .bind(session)
    .bind(user)
    .bind(tested.parse::<uuid::Uuid>().unwrap())
    .execute(&app.pool)
    .await
    .unwrap();
    let (_, got) = app
        .get(&format!("/api/agents/{tested}"), Some(&token))
        .await;
    assert_eq!(got["agent"]["test_count"], 1);
    assert_eq!(got["agent"]["best_pnl_pct"], 12.5);
    assert!(got["agent"]["last_tested_at"].is_string());

    for id in [&tested, &untested] {
        let (status, _) = app
            .send(
                Method::DELETE,
                &format!("/api/agents/{id}"),
                Some(&token),
                json!({}),
            )
            .await;
        assert_eq!(status, 204);
    }
    let (_, archived) = app
        .get(&format!("/api/agents/{tested}"), Some(&token))
        .await;
    assert!(archived["agent"]["archived_at"].is_string(), "{archived}");
    let (status, _) = app
        .get(&format!("/api/agents/{untested}"), Some(&token))
        .await;
    assert_eq!(status, 404);
    let (_, list) = app.get("/api/agents", Some(&token)).await;
    assert_eq!(list["agents"], json!([]), "archived agents are hidden");
    let (_, list) = app
        .get("/api/agents?include_archived=true", Some(&token))
        .await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);
    // an archived agent is read-only, and its name is free again
    let (status, _) = app
        .send(
            Method::PUT,
            &format!("/api/agents/{tested}"),
            Some(&token),
            json!({"name": "Z"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(create(&app, &token, llm("Tested")).await.0, 201);
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'agent_archived'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'agent_deleted'")
            .await,
        1
    );
}

#[tokio::test]
async fn duplicates_get_the_first_free_copy_name() {
    let app = start().await;
    let token = app.token("user_dup");
    let (_, body) = create(&app, &token, llm("Scalper")).await;
    let id = body["agent"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/agents/{id}/duplicate");
    let mut names = Vec::new();
    for _ in 0..3 {
        let (status, body) = app.send(Method::POST, &path, Some(&token), json!({})).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["agent"]["model"], "anthropic/claude-3.5-sonnet");
        names.push(body["agent"]["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        names,
        ["Scalper (copy)", "Scalper (copy 2)", "Scalper (copy 3)"]
    );
    // a long name is shortened to fit
    let (_, body) = create(&app, &token, llm(&"L".repeat(64))).await;
    let long = body["agent"]["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .send(
            Method::POST,
            &format!("/api/agents/{long}/duplicate"),
            Some(&token),
            json!({}),
        )
        .await;
    let name = body["agent"]["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 64);
    assert!(name.ends_with(" (copy)"));
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'agent_duplicated'")
            .await,
        4
    );
}

#[tokio::test]
async fn the_list_pages_newest_first_with_a_cursor() {
    let app = start().await;
    let token = app.token("user_pages");
    for i in 0..7 {
        assert_eq!(create(&app, &token, llm(&format!("A{i}"))).await.0, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/api/agents?limit=3".to_owned();
    loop {
        let (status, body) = app.get(&path, Some(&token)).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["agents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/agents?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["A6", "A5", "A4", "A3", "A2", "A1", "A0"]);
    for bad in [
        "/api/agents?limit=0",
        "/api/agents?limit=101",
        "/api/agents?cursor=garbage",
        "/api/agents?sort=name",
    ] {
        let (status, body) = app.get(bad, Some(&token)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_error(&body, "bad_request");
    }
}
