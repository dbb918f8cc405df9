//! The users endpoint group through real HTTP requests on a real Postgres.

use alphalab_devstack::assert_error;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn sync_stores_the_profile_for_the_tokens_subject() {
    let app = crate::start().await;
    let token = app.token("user_sync");
    let (status, body) = app
        .send(
            Method::POST,
            "/api/users/sync",
            Some(&token),
            json!({"email": "ada@example.com", "name": "Ada", "avatar_url": "https://img.example.com/a.png"}),
        )
        .await;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["clerk_id"], "user_sync");

    // a second sync changes only what it sends
    let (_, body) = app
        .send(
            Method::POST,
            "/api/users/sync",
            Some(&token),
            json!({"name": "Ada L."}),
        )
        .await;
    assert_eq!(body["user"]["name"], "Ada L.");
    assert_eq!(body["user"]["email"], "ada@example.com");

    let (_, me) = app.get("/api/users/me", Some(&token)).await;
    assert_eq!(me["user"]["avatar_url"], "https://img.example.com/a.png");
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn sync_rejects_bad_fields_by_name() {
    let app = crate::start().await;
    let token = app.token("user_badsync");
    for (body, field) in [
        (json!({"email": "not-an-email"}), "email"),
        (json!({"avatar_url": "javascript:alert(1)"}), "avatar_url"),
        (json!({"name": "x".repeat(201)}), "name"),
    ] {
        let (status, response) = app
            .send(Method::POST, "/api/users/sync", Some(&token), body)
            .await;
        assert_eq!(status, 422);
        assert_error(&response, "validation_failed");
        assert_eq!(response["error"]["details"]["fields"][0]["field"], field);
    }
    // the plan is read-only: sent back, it is ignored, never applied
    let (status, response) = app
        .send(
            Method::POST,
            "/api/users/sync",
            Some(&token),
            json!({"plan": "enterprise"}),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        response["user"]["plan"], "free",
        "a client cannot set its own plan"
    );
    // a field a user does not have is refused by name
    let (status, response) = app
        .send(
            Method::POST,
            "/api/users/sync",
            Some(&token),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_error(&response, "invalid_body");
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .contains("role")
    );
}

#[tokio::test]
async fn settings_start_with_defaults_and_a_partial_put_changes_only_its_fields() {
    let app = crate::start().await;
    let token = app.token("user_settings");
    let (status, body) = app.get("/api/users/me/settings", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["settings"]["theme"], "dark");
    assert_eq!(body["settings"]["default_capital"], 10000.0);

    let (status, body) = app
        .send(
            Method::PUT,
            "/api/users/me/settings",
            Some(&token),
            json!({"theme": "light", "max_leverage": 3, "notify_email": false, "default_timeframe": "4h"}),
        )
        .await;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["settings"]["theme"], "light");
    assert_eq!(body["settings"]["max_leverage"], 3);
    assert_eq!(body["settings"]["default_capital"], 10000.0);

    let (_, body) = app.get("/api/users/me/settings", Some(&token)).await;
    assert_eq!(body["settings"]["notify_email"], false);
    assert_eq!(body["settings"]["default_timeframe"], "4h");

    // another user is untouched
    let (_, other) = app
        .get("/api/users/me/settings", Some(&app.token("user_other")))
        .await;
    assert_eq!(other["settings"]["theme"], "dark");
}

#[tokio::test]
async fn each_bad_setting_answers_422_naming_the_field() {
    let app = crate::start().await;
    let token = app.token("user_badsettings");
    let cases = [
        ("theme", json!("neon")),
        ("default_capital", json!(50)),
        ("default_capital", json!(2e9)),
        ("default_asset", json!("DOGEUSDT")),
        ("default_timeframe", json!("2h")),
        ("max_leverage", json!(0)),
        ("max_leverage", json!(6)),
        ("max_position_size_pct", json!(0)),
        ("max_position_size_pct", json!(150)),
        ("max_daily_loss_pct", json!(-5)),
        ("default_stop_loss_pct", json!(75)),
    ];
    for (field, value) in cases {
        let (status, body) = app
            .send(
                Method::PUT,
                "/api/users/me/settings",
                Some(&token),
                json!({ field: value }),
            )
            .await;
        assert_eq!(status, 422, "{field}={value}: {body}");
        assert_error(&body, "validation_failed");
        assert_eq!(body["error"]["details"]["fields"][0]["field"], field);
        assert!(body["error"]["message"].as_str().unwrap().contains(field));
    }
    // wrong types and unknown fields name the field too
    for (body, field) in [
        (json!({"max_leverage": "three"}), "max_leverage"),
        (json!({"max_leverage": 2.5}), "max_leverage"),
        (json!({"notify_email": "yes"}), "notify_email"),
        (json!({"favourite_colour": "blue"}), "favourite_colour"),
    ] {
        let (status, response) = app
            .send(Method::PUT, "/api/users/me/settings", Some(&token), body)
            .await;
        assert_eq!(status, 422, "{response}");
        assert_error(&response, "invalid_body");
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{response}"
        );
    }
    // nothing changed
    let (_, body) = app.get("/api/users/me/settings", Some(&token)).await;
    assert_eq!(body["settings"]["max_leverage"], 1);
    assert_eq!(body["settings"]["theme"], "dark");
}

#[tokio::test]
async fn malformed_json_answers_400_with_the_error_body() {
    let app = crate::start().await;
    let token = app.token("user_malformed");
    for (content_type, body) in [
        ("application/json", "{\"theme\": "),
        ("application/json", "{\"theme\" \"light\"}"),
        ("text/plain", "{\"theme\": \"light\"}"),
    ] {
        let response = app
            .server
            .request(Method::PUT, "/api/users/me/settings", Some(&token))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json) = alphalab_devstack::harness::read(response).await.unwrap();
        assert_eq!(status, 400, "{body}: {json}");
        assert_error(&json, "bad_request");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_the_error_body() {
    let app = crate::start().await;
    let token = app.token("user_routes");
    let (status, body) = app.get("/api/users/nope", Some(&token)).await;
    assert_eq!(status, 404);
    assert_error(&body, "not_found");
    let (status, body) = app
        .send(Method::PATCH, "/api/users/me", Some(&token), json!({}))
        .await;
    assert_eq!(status, 405);
    assert_error(&body, "method_not_allowed");
}

#[tokio::test]
async fn first_use_provisioning_under_concurrent_requests_creates_exactly_one_user() {
    let app = crate::start().await;
    let token = app.token("user_race");
    let requests = (0..24).map(|i| {
        let path = if i % 2 == 0 {
            "/api/users/me"
        } else {
            "/api/users/me/settings"
        };
        app.get(path, Some(&token))
    });
    let results = futures::future::join_all(requests).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "body: {body}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE clerk_id = 'user_race'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM user_settings").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'account_created'")
            .await,
        1
    );
    let ids: std::collections::HashSet<String> = results
        .iter()
        .filter_map(|(_, b)| b["user"]["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 1, "every answer names the same user");
}

/// Inserts one row of every user-owned table for `user_id`.
async fn own_one_of_everything(pool: &sqlx::PgPool, user_id: uuid::Uuid) {
    let sql = r#"
        WITH k AS (
            INSERT INTO api_keys (user_id, name, encrypted_key, key_version, masked_key, is_default)
            VALUES ($1, 'main', '\x00', 1, 'sk-or-...abcd', true) RETURNING id
        ), a AS (
            INSERT INTO agents (user_id, api_key_id, name, mode, model, indicators, strategy_prompt)
            SELECT $1, k.id, 'agent', 'omni', 'openai/gpt-4o', '{rsi}', 'buy low sell high' FROM k
            RETURNING id
        ), s AS (
            INSERT INTO test_sessions (user_id, agent_id, type, asset, timeframe, starting_capital,
                                       agent_snapshot, config)
            SELECT $1, a.id, 'backtest', 'BTCUSDT', '1h', 10000, '{}', '{}' FROM a RETURNING id
        ), t AS (
            INSERT INTO trades (session_id, user_id, trade_no, side, entry_time, entry_price, quantity)
            SELECT s.id, $1, 1, 'long', now(), 100, 1 FROM s
        ), th AS (
            INSERT INTO ai_thoughts (session_id, user_id, candle_index, candle_time, action)
            SELECT s.id, $1, 0, now(), 'hold' FROM s
        ), r AS (
            INSERT INTO test_results (session_id, user_id, agent_id, type, mode, asset, timeframe,
                starting_capital, final_equity, total_pnl, total_pnl_pct, metrics, equity_curve,
                agent_snapshot, config)
            SELECT s.id, $1, a.id, 'backtest', 'omni', 'BTCUSDT', '1h', 10000, 11000, 1000, 10,
                '{}', '[]', '{}', '{}' FROM s, a
            RETURNING id
        ), l AS (
            INSERT INTO result_ledgers (result_id, user_id, chunk, first_line, lines, body)
            SELECT r.id, $1, 0, 0, 1, '{}' FROM r
        ), c AS (
            INSERT INTO certificates (user_id, result_id, verification_code, share_url, snapshot, digest)
            SELECT $1, r.id, 'CODE-' || $1::text, 'https://alphalab.example/v/x', '{}', 'd' FROM r
        ), n AS (
            INSERT INTO notifications (user_id, type, title, message) VALUES ($1, 'system', 't', 'm')
        ), dc AS (
            INSERT INTO decision_cache (user_id, request_hash, session_id, model, content)
            SELECT $1, 'h', s.id, 'openai/gpt-4o', '{}' FROM s
        ), eq AS (
            INSERT INTO session_equity (session_id, user_id, first_index, times, equity)
            SELECT s.id, $1, 0, '{1}', '{10000}' FROM s
        )
        INSERT INTO activity_log (user_id, action) VALUES ($1, 'agent_created')
    "#;
    sqlx::query(sql)
        .bind(user_id)
        .execute(pool)
        .await
        .expect("seeding rows");
}

/// Row counts of `user_id` in every table that has a `user_id` column, found in the schema so
/// that a table added later is covered (and fails `own_one_of_everything`'s check until seeded).
async fn owned_counts(app: &alphalab_devstack::TestApp, user_id: uuid::Uuid) -> Vec<(String, i64)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND column_name = 'user_id' ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(tables.len(), 13, "user-owned tables: {tables:?}");
    let mut counts = Vec::new();
    for table in tables {
        let sql = format!("SELECT count(*) FROM {table} WHERE user_id = $1");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        counts.push((table, n));
    }
    counts
}

#[tokio::test]
async fn deleting_the_account_removes_every_owned_row_and_nobody_elses() {
    let app = crate::start().await;
    let (alice, bob) = (app.token("user_alice"), app.token("user_bob"));
    let (_, a) = app.get("/api/users/me", Some(&alice)).await;
    let (_, b) = app.get("/api/users/me", Some(&bob)).await;
    let alice_id: uuid::Uuid = a["user"]["id"].as_str().unwrap().parse().unwrap();
    let bob_id: uuid::Uuid = b["user"]["id"].as_str().unwrap().parse().unwrap();
    own_one_of_everything(&app.pool, alice_id).await;
    own_one_of_everything(&app.pool, bob_id).await;
    for (table, n) in owned_counts(&app, alice_id).await {
        assert!(n >= 1, "alice owns a row of {table}");
    }

    let response = app
        .server
        .request(Method::DELETE, "/api/users/me", Some(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    for (table, n) in owned_counts(&app, alice_id).await {
        assert_eq!(n, 0, "alice's rows of {table} are gone");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE clerk_id = 'user_alice'")
            .await,
        0
    );
    for (table, n) in owned_counts(&app, bob_id).await {
        assert!(n >= 1, "bob's rows of {table} remain");
    }
}

#[tokio::test]
async fn a_client_can_send_back_what_it_read() {
    let app = crate::start().await;
    let token = app.token("user_roundtrip");
    let (_, read) = app.get("/api/users/me/settings", Some(&token)).await;
    let mut settings = read["settings"].clone();
    assert!(settings.get("updated_at").is_some());
    settings["theme"] = json!("system");
    settings["created_at"] = json!("2020-01-01T00:00:00Z");
    settings["user_id"] = json!("00000000-0000-0000-0000-000000000000");
    let (status, body) = app
        .send(
            Method::PUT,
            "/api/users/me/settings",
            Some(&token),
            settings,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["theme"], "system");
    assert_ne!(
        body["settings"]["updated_at"],
        read["settings"]["updated_at"]
    );

    // the same for the profile
    let (_, me) = app.get("/api/users/me", Some(&token)).await;
    let mut user = me["user"].clone();
    user["name"] = json!("Round Trip");
    let (status, body) = app
        .send(Method::POST, "/api/users/sync", Some(&token), user)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["name"], "Round Trip");
    assert_eq!(body["user"]["id"], me["user"]["id"]);
}

#[tokio::test]
async fn type_errors_and_non_object_bodies_are_explained_in_plain_words() {
    let app = crate::start().await;
    let token = app.token("user_plain");
    for (body, says) in [
        (
            json!({"max_leverage": "5"}),
            "max_leverage: invalid type: string \"5\", expected an integer",
        ),
        (
            json!({"default_capital": true}),
            "default_capital: invalid type: boolean `true`, expected a number",
        ),
        (
            json!([{"theme": "light"}]),
            "the body must be a JSON object, not an array",
        ),
        (
            json!("light"),
            "the body must be a JSON object, not a string",
        ),
    ] {
        let (status, response) = app
            .send(Method::PUT, "/api/users/me/settings", Some(&token), body)
            .await;
        assert_eq!(status, 422, "{response}");
        assert_eq!(response["error"]["message"], says);
    }
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413() {
    let app = crate::start().await;
    let token = app.token("user_big");
    let big = format!(
        "{{\"theme\": \"{}\"}}",
        "x".repeat(platform::http::BODY_LIMIT_BYTES)
    );
    let response = app
        .server
        .request(Method::PUT, "/api/users/me/settings", Some(&token))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, body) = alphalab_devstack::harness::read(response).await.unwrap();
    assert_eq!(status, 413, "{body}");
    assert_error(&body, "payload_too_large");
}

#[tokio::test]
async fn health_needs_no_token_and_answers_503_when_the_database_is_down() {
    let app = crate::start().await;
    let (status, body) = app.get("/api/health", None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));

    let mut env = alphalab_devstack::TestEnv::new().await.unwrap();
    // nothing listens on port 9
    env.set("DATABASE_URL", "postgres://postgres@127.0.0.1:9/none");
    let down = crate::start_with(env).await;
    let response = down
        .server
        .request(Method::GET, "/api/health", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = alphalab_devstack::harness::read(response).await.unwrap();
    assert_error(&body, "unavailable");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
    // an authenticated route answers 503 too (a lost database is not a 500)
    let (status, body) = down.get("/api/users/me", Some(&down.token("user_x"))).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn account_deletion_racing_first_requests_never_answers_500() {
    let app = crate::start().await;
    let token = app.token("user_racing");
    for _ in 0..15 {
        let requests = (0..4).map(|_| app.get("/api/users/me", Some(&token)));
        let delete = app.send(Method::DELETE, "/api/users/me", Some(&token), json!({}));
        let (reads, (deleted, _)) = tokio::join!(futures::future::join_all(requests), delete);
        assert!([204, 404].contains(&deleted), "delete answered {deleted}");
        for (status, body) in reads {
            assert!([200, 404].contains(&status), "{status}: {body}");
        }
    }
    // afterwards the account is provisioned again, once
    let (status, _) = app.get("/api/users/me", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
}
