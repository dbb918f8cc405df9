//! The routes: creation with validation against OpenRouter, each answer OpenRouter can give,
//! defaults, deletion, validation rules, notifications.

use alphalab_devstack::assert_error;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{key, start, start_with};

async fn add(app: &alphalab_devstack::TestApp, token: &str, name: &str, key: &str) -> (u16, Value) {
    app.send(
        Method::POST,
        "/api/api-keys",
        Some(token),
        json!({"name": name, "key": key}),
    )
    .await
}

#[tokio::test]
async fn a_new_key_is_checked_within_the_request_masked_and_the_first_is_the_default() {
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_keys");
    let plain = key("good");
    let (status, body) = add(app, &token, "  Main  ", &plain).await;
    assert_eq!(status, 201, "{body}");
    let k = &body["api_key"];
    assert_eq!(k["name"], "Main");
    assert_eq!(k["status"], "valid");
    assert_eq!(k["is_default"], true);
    assert_eq!(
        k["masked_key"],
        format!("sk-or-v1-…{}", &plain[plain.len() - 4..])
    );
    assert_eq!(k["credit_limit"], 25.0);
    assert_eq!(k["usage"], 4.5);
    assert!(k["label"].as_str().unwrap().starts_with("sk-or-v1-"));
    assert!(k["last_validated_at"].is_string());
    for field in ["id", "status_reason", "created_at"] {
        assert!(k.get(field).is_some(), "{field}");
    }
    assert!(
        !body.to_string().contains(&plain),
        "the plaintext never comes back"
    );
    // OpenRouter was sent the key itself, as a bearer token
    assert_eq!(keys.openrouter.keys_seen(), std::slice::from_ref(&plain));

    let (status, second) = add(app, &token, "Spare", &key("good")).await;
    assert_eq!(status, 201);
    assert_eq!(second["api_key"]["is_default"], false);
    let (status, list) = app.get("/api/api-keys", Some(&token)).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Spare", "Main"], "newest first");
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'key_added'")
            .await,
        2
    );
}

#[tokio::test]
async fn each_openrouter_answer_gives_its_status_and_says_why() {
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_answers");
    for (kind, status, says) in [
        ("reject", "invalid", "OpenRouter rejected the key (401)"),
        ("forbid", "invalid", "OpenRouter rejected the key (403)"),
        ("broke", "no_credits", "no credits"),
        ("spent", "no_credits", "credit limit is spent"),
        ("busy", "error", "retry after 30 s"),
        ("down", "error", "OpenRouter answered 500"),
        ("slow", "error", "did not answer within 1 s"),
    ] {
        let started = std::time::Instant::now();
        let (code, body) = add(app, &token, kind, &key(kind)).await;
        assert_eq!(
            code, 201,
            "{kind}: a key is stored even when OpenRouter refuses it: {body}"
        );
        assert_eq!(body["api_key"]["status"], status, "{kind}: {body}");
        let reason = body["api_key"]["status_reason"]
            .as_str()
            .unwrap_or_default();
        assert!(reason.contains(says), "{kind}: {reason}");
        assert!(
            started.elapsed().as_secs() < 5,
            "{kind} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_transient_failure_keeps_what_was_known_and_a_key_turning_bad_notifies_once() {
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_recheck");
    let (_, body) = add(app, &token, "Main", &key("good")).await;
    let known = body["api_key"].clone();
    let path = format!("/api/api-keys/{}/validate", known["id"].as_str().unwrap());

    // an OpenRouter outage: status error, the reason, and what was known stays
    keys.openrouter.fail_with(Some(500));
    let (status, body) = app.send(Method::POST, &path, Some(&token), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let k = &body["api_key"];
    assert_eq!(k["status"], "error");
    assert_eq!(k["status_reason"], "OpenRouter answered 500");
    for field in ["label", "credit_limit", "usage"] {
        assert_eq!(k[field], known[field], "{field} is kept");
    }
    assert_eq!(app.count("SELECT count(*) FROM notifications").await, 0);

    // the key revoked on OpenRouter's side: invalid, and one notification
    keys.openrouter.fail_with(Some(401));
    for _ in 0..2 {
        let (_, body) = app.send(Method::POST, &path, Some(&token), json!({})).await;
        assert_eq!(body["api_key"]["status"], "invalid");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM notifications WHERE type = 'key_invalid'")
            .await,
        1,
        "only a change of status notifies"
    );
    // back to normal
    keys.openrouter.fail_with(None);
    let (_, body) = app.send(Method::POST, &path, Some(&token), json!({})).await;
    assert_eq!(body["api_key"]["status"], "valid");
    assert_eq!(body["api_key"]["status_reason"], serde_json::Value::Null);
}

#[tokio::test]
async fn users_who_turned_key_notifications_off_get_none() {
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_quiet");
    let (status, _) = app
        .send(
            Method::PUT,
            "/api/users/me/settings",
            Some(&token),
            json!({"notify_key_issues": false}),
        )
        .await;
    // the settings route belongs to the users function: set it in the database instead
    assert_eq!(status, 404);
    let (_, _) = app.get("/api/api-keys", Some(&token)).await;
    sqlx::query("UPDATE user_settings SET notify_key_issues = false")
        .execute(&app.pool)
        .await
        .unwrap();
    add(app, &token, "Bad", &key("broke")).await;
    assert_eq!(app.count("SELECT count(*) FROM notifications").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'key_validated'")
            .await,
        1
    );
}

#[tokio::test]
async fn switching_the_default_is_atomic_and_deleting_it_promotes_the_newest_other_key() {
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_default");
    let mut ids = Vec::new();
    for name in ["A", "B", "C"] {
        let (_, body) = add(app, &token, name, &key("good")).await;
        ids.push(body["api_key"]["id"].as_str().unwrap().to_owned());
    }
    // 30 concurrent switches between the three keys
    let switches = (0..30).map(|i| {
        let path = format!("/api/api-keys/{}/default", ids[i % 3]);
        let token = token.clone();
        async move { app.send(Method::PUT, &path, Some(&token), json!({})).await }
    });
    for (status, body) in futures::future::join_all(switches).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM api_keys WHERE is_default")
            .await,
        1
    );

    let (status, body) = app
        .send(
            Method::PUT,
            &format!("/api/api-keys/{}/default", ids[0]),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["api_key"]["is_default"].clone()),
        (200, json!(true))
    );
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/api-keys/{}", ids[0]),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (_, list) = app.get("/api/api-keys", Some(&token)).await;
    let defaults: Vec<&str> = list["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["is_default"] == true)
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(defaults, ["C"], "the most recent other key");
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'key_removed'")
            .await,
        1
    );
    assert!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'key_default_changed'")
            .await
            >= 1
    );
}

#[tokio::test]
async fn a_key_live_agents_use_cannot_be_deleted_and_the_answer_names_them() {
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_inuse");
    let (_, body) = add(app, &token, "Main", &key("good")).await;
    let id: uuid::Uuid = body["api_key"]["id"].as_str().unwrap().parse().unwrap();
    let user: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for name in ["Zeta", "Alpha"] {
        sqlx::query("INSERT INTO agents (user_id, name, mode, model, strategy_prompt, api_key_id) VALUES ($1, $2, 'omni', 'openai/gpt-4o', 's', $3)")
            .bind(user).bind(name).bind(id).execute(&app.pool).await.unwrap();
    }
    let (status, body) = app
        .send(
            Method::DELETE,
            &format!("/api/api-keys/{id}"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_error(&body, "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Alpha, Zeta"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM api_keys").await, 1);
    // archived agents do not hold it
    sqlx::query("UPDATE agents SET archived_at = now()")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/api-keys/{id}"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn bad_input_is_refused_by_name_and_stores_nothing() {
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_badkeys");
    for (body, field) in [
        (json!({"name": "", "key": key("good")}), "name"),
        (json!({"name": "x".repeat(65), "key": key("good")}), "name"),
        (json!({"name": "k", "key": "short"}), "key"),
        (
            json!({"name": "k", "key": "sk-or-v1-with spaces in it 0123456789"}),
            "key",
        ),
    ] {
        let (status, response) = app
            .send(Method::POST, "/api/api-keys", Some(&token), body)
            .await;
        assert_eq!(status, 422, "{response}");
        assert_eq!(response["error"]["details"]["fields"][0]["field"], field);
    }
    let (status, response) = app
        .send(
            Method::POST,
            "/api/api-keys",
            Some(&token),
            json!({"name": "k", "key": key("good"), "default": true}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .contains("default")
    );
    let (status, _) = app
        .send(
            Method::POST,
            "/api/api-keys",
            Some(&token),
            json!({"name": "k"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(app.count("SELECT count(*) FROM api_keys").await, 0);
    assert!(keys.openrouter.keys_seen().is_empty());
    // unknown and malformed ids
    for path in [
        "/api/api-keys/00000000-0000-0000-0000-000000000000/validate",
        "/api/api-keys/nope/validate",
    ] {
        let (status, body) = app.send(Method::POST, path, Some(&token), json!({})).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_missing_or_malformed_encryption_keyring_stops_the_function_with_its_name() {
    for value in [None, Some("v1=short;active=v1"), Some("nonsense")] {
        let mut env = alphalab_devstack::TestEnv::new().await.unwrap();
        if let Some(v) = value {
            env.set("ENCRYPTION_KEYS", v);
        }
        let err = <alphalab_api_keys::Config as platform::FromEnv>::from_env(
            &platform::Env::from_lookup(env.lookup()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ENCRYPTION_KEYS"), "{err}");
    }
    let _ = start_with(|_| {}).await;
}
