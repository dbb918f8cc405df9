//! Keys at rest: encrypted, bound to their row and user, rotated without loss, and never in a
//! response or a log line.

use alphalab_devstack::LogCapture;
use platform::config::LogFormat;
use reqwest::Method;
use serde_json::json;

use crate::{KEY_V1, KEY_V2, key, start, start_with};

#[tokio::test]
async fn the_database_holds_no_plaintext_and_two_encryptions_of_one_key_differ() {
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_rest");
    let plain = key("good");
    for name in ["One", "Two"] {
        let (status, _) = app
            .send(
                Method::POST,
                "/api/api-keys",
                Some(&token),
                json!({"name": name, "key": plain}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let rows: Vec<(Vec<u8>, i32)> =
        sqlx::query_as("SELECT encrypted_key, key_version FROM api_keys")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert_ne!(rows[0].0, rows[1].0, "a fresh nonce per encryption");
    for (bytes, version) in &rows {
        assert_eq!(*version, 1);
        assert!(!String::from_utf8_lossy(bytes).contains(&plain[9..]));
        assert!(bytes.len() >= plain.len() + 12 + 16);
    }
    let dump: String = sqlx::query_scalar("SELECT string_agg(t::text, ' ') FROM api_keys t")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        !dump.contains(&plain[9..]),
        "a database dump reveals no key"
    );
}

#[tokio::test]
async fn a_flipped_byte_or_a_row_moved_to_another_user_fails_with_a_clean_error() {
    let keys = start().await;
    let app = &keys.app;
    let (alice, bob) = (app.token("user_alice"), app.token("user_bob"));
    let (_, body) = app
        .send(
            Method::POST,
            "/api/api-keys",
            Some(&alice),
            json!({"name": "A", "key": key("good")}),
        )
        .await;
    let id = body["api_key"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/api-keys/{id}/validate");

    sqlx::query("UPDATE api_keys SET encrypted_key = set_byte(encrypted_key, 20, get_byte(encrypted_key, 20) # 1)")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, body) = app.send(Method::POST, &path, Some(&alice), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be decrypted")
    );
    sqlx::query("UPDATE api_keys SET encrypted_key = set_byte(encrypted_key, 20, get_byte(encrypted_key, 20) # 1)")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, _) = app.send(Method::POST, &path, Some(&alice), json!({})).await;
    assert_eq!(status, 200, "restored, it decrypts again");

    // moved to Bob's account, it does not decrypt for Bob either
    app.get("/api/api-keys", Some(&bob)).await;
    sqlx::query("UPDATE api_keys SET user_id = (SELECT id FROM users WHERE clerk_id = 'user_bob')")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, body) = app.send(Method::POST, &path, Some(&bob), json!({})).await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn rotation_keeps_every_key_usable() {
    // keys written under v1, then the function restarted with v1 and v2, v2 active
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_rotate");
    let (_, body) = app
        .send(
            Method::POST,
            "/api/api-keys",
            Some(&token),
            json!({"name": "Old", "key": key("good")}),
        )
        .await;
    let id = body["api_key"]["id"].as_str().unwrap().to_owned();
    let db = app.env.db.url.clone();
    let rotated = start_with(|env| {
        env.set("DATABASE_URL", db);
        env.set("ENCRYPTION_KEYS", format!("{KEY_V1},{KEY_V2};active=v2"));
    })
    .await;
    let (status, body) = rotated
        .app
        .send(
            Method::POST,
            &format!("/api/api-keys/{id}/validate"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "an old version still decrypts: {body}");
    let (status, _) = rotated
        .app
        .send(
            Method::POST,
            "/api/api-keys",
            Some(&token),
            json!({"name": "New", "key": key("good")}),
        )
        .await;
    assert_eq!(status, 201);
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT key_version FROM api_keys ORDER BY created_at")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2], "new keys use the active version");
}

/// Every response body and every log line of a session that touches keys in every way is free
/// of the plaintext keys.
#[tokio::test]
async fn no_response_or_log_line_ever_contains_a_plaintext_key() {
    let capture = LogCapture::default();
    platform::telemetry::init_with_writer(LogFormat::Json, capture.clone(), Some("debug"));
    let keys = start().await;
    let app = &keys.app;
    let token = app.token("user_secret");
    let mut plains = Vec::new();
    let mut bodies = Vec::new();
    for kind in ["good", "reject", "broke", "busy", "down", "spent"] {
        let plain = key(kind);
        let (_, body) = app
            .send(
                Method::POST,
                "/api/api-keys",
                Some(&token),
                json!({"name": kind, "key": plain}),
            )
            .await;
        let id = body["api_key"]["id"].as_str().unwrap().to_owned();
        bodies.push(body);
        for (method, path) in [
            (Method::POST, format!("/api/api-keys/{id}/validate")),
            (Method::PUT, format!("/api/api-keys/{id}/default")),
        ] {
            bodies.push(app.send(method, &path, Some(&token), json!({})).await.1);
        }
        plains.push(plain);
    }
    // bad input that carries a key
    let leaked = key("good");
    bodies.push(
        app.send(
            Method::POST,
            "/api/api-keys",
            Some(&token),
            json!({"name": "", "key": leaked}),
        )
        .await
        .1,
    );
    bodies.push(
        app.send(
            Method::POST,
            "/api/api-keys",
            Some(&token),
            json!({"name": 5, "key": leaked}),
        )
        .await
        .1,
    );
    plains.push(leaked);
    bodies.push(app.get("/api/api-keys", Some(&token)).await.1);
    let logs = capture.text();
    assert!(logs.contains("key added"), "the capture works");
    for plain in &plains {
        let secret = &plain[9..];
        for body in &bodies {
            assert!(
                !body.to_string().contains(secret),
                "a response holds a key: {body}"
            );
        }
        assert!(!logs.contains(secret), "a log line holds a key");
    }
}
