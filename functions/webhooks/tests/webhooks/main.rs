//! The Clerk webhook through real HTTP on a real Postgres, signed as Svix signs.

use adapters::svix::{WebhookSecret, sign};
use alphalab_devstack::{TestApp, TestEnv, assert_error};
use alphalab_webhooks::{Config, State, router};
use base64::Engine;
use platform::{Env, FromEnv};
use serde_json::{Value, json};

fn secret_text(seed: u8) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([seed; 24])
    )
}

async fn start() -> TestApp {
    let mut env = TestEnv::new().await.expect("test environment");
    env.set("CLERK_WEBHOOK_SECRET", secret_text(7));
    let config = Config::from_env(&Env::from_lookup(env.lookup())).expect("config");
    let state = State::new(&config).expect("state");
    TestApp::start_with(env, |_| Ok(router(state)))
        .await
        .expect("webhooks function")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Posts `body` as Svix would: `svix-id`, `svix-timestamp`, `svix-signature` (`signature`
/// overrides the computed one).
async fn deliver(
    app: &TestApp,
    id: &str,
    timestamp: i64,
    body: &str,
    signature: Option<String>,
) -> (u16, Value) {
    let secret = WebhookSecret::parse(&secret_text(7)).unwrap();
    let signature = signature.unwrap_or_else(|| sign(&secret, id, timestamp, body.as_bytes()));
    let response = app
        .server
        .request(reqwest::Method::POST, "/api/webhooks/clerk", None)
        .header("content-type", "application/json")
        .header("svix-id", id)
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    alphalab_devstack::harness::read(response).await.unwrap()
}

fn user_event(kind: &str, email: &str) -> String {
    json!({
        "object": "event", "type": kind, "timestamp": 1_764_590_000_000i64, "instance_id": "ins_1",
        "data": {
            "id": "user_2abc", "first_name": "Ada", "last_name": "Lovelace",
            "image_url": "https://img.clerk.com/ada.png",
            "primary_email_address_id": "idn_2",
            "email_addresses": [
                {"id": "idn_1", "email_address": "old@example.com"},
                {"id": "idn_2", "email_address": email}
            ]
        }
    })
    .to_string()
}

async fn user(app: &TestApp) -> Option<(String, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT clerk_id, email, name FROM users")
        .fetch_optional(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn created_updated_and_deleted_users_follow_clerk() {
    let app = start().await;
    let (status, body) = deliver(
        &app,
        "msg_1",
        now(),
        &user_event("user.created", "ada@example.com"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"type": "user.created", "outcome": "applied"}));
    assert_eq!(
        user(&app).await,
        Some((
            "user_2abc".into(),
            Some("ada@example.com".into()),
            Some("Ada Lovelace".into())
        ))
    );
    assert_eq!(app.count("SELECT count(*) FROM user_settings").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM activity_log WHERE action = 'account_created'")
            .await,
        1
    );

    let (status, _) = deliver(
        &app,
        "msg_2",
        now(),
        &user_event("user.updated", "ada@new.example.com"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        user(&app).await.unwrap().1.as_deref(),
        Some("ada@new.example.com")
    );
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);

    // the account and everything it owns
    sqlx::query("INSERT INTO notifications (user_id, type, title, message) SELECT id, 'system', 't', 'm' FROM users")
        .execute(&app.pool)
        .await
        .unwrap();
    let deleted = json!({"object": "event", "type": "user.deleted", "data": {"id": "user_2abc", "deleted": true}});
    let (status, body) = deliver(&app, "msg_3", now(), &deleted.to_string(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(user(&app).await, None);
    assert_eq!(app.count("SELECT count(*) FROM notifications").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM user_settings").await, 0);
}

#[tokio::test]
async fn a_replayed_delivery_has_no_second_effect_and_unknown_types_are_acknowledged() {
    let app = start().await;
    let created = user_event("user.created", "ada@example.com");
    deliver(&app, "msg_once", now(), &created, None).await;
    let deleted = json!({"type": "user.deleted", "data": {"id": "user_2abc"}}).to_string();
    deliver(&app, "msg_del", now(), &deleted, None).await;
    assert_eq!(user(&app).await, None);
    // the creation replayed (same svix-id) does not bring the user back
    let (status, body) = deliver(&app, "msg_once", now(), &created, None).await;
    assert_eq!((status, body["outcome"].clone()), (200, json!("duplicate")));
    assert_eq!(user(&app).await, None);

    let other = json!({"type": "session.created", "data": {"id": "sess_1"}}).to_string();
    let (status, body) = deliver(&app, "msg_other", now(), &other, None).await;
    assert_eq!((status, body["outcome"].clone()), (200, json!("ignored")));
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        3
    );
}

#[tokio::test]
async fn bad_missing_stale_or_future_signatures_answer_401_and_change_nothing() {
    let app = start().await;
    let body = user_event("user.created", "ada@example.com");
    let good = WebhookSecret::parse(&secret_text(7)).unwrap();
    let wrong = WebhookSecret::parse(&secret_text(8)).unwrap();
    let t = now();
    // each signed over the id it is delivered with, so only the named fault is wrong
    let cases: Vec<(&str, i64, String, &str)> = vec![
        (
            "tampered",
            t,
            sign(
                &good,
                "msg_tampered",
                t,
                body.replace("Ada", "Eve").as_bytes(),
            ),
            "no valid signature",
        ),
        (
            "wrong",
            t,
            sign(&wrong, "msg_wrong", t, body.as_bytes()),
            "no valid signature",
        ),
        (
            "stale",
            t - 301,
            sign(&good, "msg_stale", t - 301, body.as_bytes()),
            "more than 5 minutes",
        ),
        (
            "future",
            t + 301,
            sign(&good, "msg_future", t + 301, body.as_bytes()),
            "more than 5 minutes",
        ),
        ("garbage", t, "v1,!!!".into(), "no valid signature"),
    ];
    for (case, ts, signature, says) in cases {
        let (status, response) =
            deliver(&app, &format!("msg_{case}"), ts, &body, Some(signature)).await;
        assert_eq!(status, 401, "{case}: {response}");
        assert_error(&response, "unauthorized");
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{case}: {response}"
        );
    }
    // the same delivery, correctly signed, is accepted: the cases above failed for their fault
    let (status, _) = deliver(&app, "msg_tampered", t, &body, None).await;
    assert_eq!(status, 200);
    sqlx::query("DELETE FROM users")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM webhook_deliveries")
        .execute(&app.pool)
        .await
        .unwrap();
    // missing headers
    let response = app
        .server
        .request(reqwest::Method::POST, "/api/webhooks/clerk", None)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, response) = alphalab_devstack::harness::read(response).await.unwrap();
    assert_eq!(status, 401);
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .contains("svix-id")
    );
    assert_eq!(user(&app).await, None);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        0
    );
}

#[tokio::test]
async fn several_signatures_one_of_which_is_valid_are_accepted() {
    let app = start().await;
    let body = user_event("user.created", "ada@example.com");
    let t = now();
    let good = sign(
        &WebhookSecret::parse(&secret_text(7)).unwrap(),
        "msg_multi",
        t,
        body.as_bytes(),
    );
    let old = sign(
        &WebhookSecret::parse(&secret_text(9)).unwrap(),
        "msg_multi",
        t,
        body.as_bytes(),
    );
    let (status, response) = deliver(
        &app,
        "msg_multi",
        t,
        &body,
        Some(format!("{old} {good} v2,xyz")),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    assert!(user(&app).await.is_some());
}

#[tokio::test]
async fn a_body_over_one_mebibyte_answers_413() {
    let app = start().await;
    let big = format!(
        "{{\"type\": \"user.created\", \"pad\": \"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    let (status, body) = deliver(&app, "msg_big", now(), &big, None).await;
    assert_eq!(status, 413, "{body}");
    assert_error(&body, "payload_too_large");
}
