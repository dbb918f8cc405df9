//! The feed: filters, keyset pages with ties, read marks, deletion, tenancy, bad parameters.

use alphalab_devstack::{TestApp, assert_error};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// Provisions `clerk_id` (its first request) and gives it `n` notifications, all created in the
/// same instant (ties on `created_at` are what keyset pages get wrong), oldest first by title.
async fn seed(app: &TestApp, token: &str, clerk_id: &str, n: i64) -> Uuid {
    let (status, body) = app.get("/api/notifications", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    let user: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE clerk_id = $1")
        .bind(clerk_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO notifications (user_id, type, title, message, data, created_at)
         SELECT $1, 'test_completed', 'n' || i, 'Backtest completed',
                jsonb_build_object('session_id', gen_random_uuid()),
                '2026-12-01T00:00:00Z'::timestamptz + ((i / 3) * interval '1 minute')
         FROM generate_series(1, $2) AS i",
    )
    .bind(user)
    .bind(n)
    .execute(&app.pool)
    .await
    .unwrap();
    user
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str) -> (u16, Value) {
    app.server
        .call(method, path, Some(token), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_cover_every_notification_once_newest_first_with_the_unread_count() {
    let app = crate::start().await;
    let token = app.token("user_feed");
    seed(&app, &token, "user_feed", 25).await;
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/notifications?limit=4&cursor={c}"),
            None => "/api/notifications?limit=4".to_owned(),
        };
        let (status, page) = app.get(&path, Some(&token)).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["unread_count"], 25);
        let items = page["notifications"].as_array().unwrap();
        assert!(items.len() <= 4);
        seen.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let mut ids: Vec<&str> = seen.iter().map(|n| n["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 25, "a notification repeated across pages");
    let times: Vec<&str> = seen
        .iter()
        .map(|n| n["created_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    let first = &seen[0];
    assert_eq!(first["type"], "test_completed");
    assert_eq!(first["read_at"], Value::Null);
    assert!(first["data"]["session_id"].is_string());
    assert!(first["message"].is_string() && first["title"].is_string());
}

#[tokio::test]
async fn read_marks_are_idempotent_and_filters_and_counts_follow_them() {
    let app = crate::start().await;
    let token = app.token("user_reader");
    seed(&app, &token, "user_reader", 5).await;
    let (_, page) = app.get("/api/notifications", Some(&token)).await;
    let id = page["notifications"][0]["id"].as_str().unwrap().to_owned();

    let (status, first) = call(
        &app,
        Method::POST,
        &format!("/api/notifications/{id}/read"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let read_at = first["notification"]["read_at"].clone();
    assert!(read_at.is_string(), "{first}");
    let (status, again) = call(
        &app,
        Method::POST,
        &format!("/api/notifications/{id}/read"),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        again["notification"]["read_at"], read_at,
        "first read_at kept"
    );

    let (_, unread) = app
        .get("/api/notifications?unread=true", Some(&token))
        .await;
    assert_eq!(unread["notifications"].as_array().unwrap().len(), 4);
    assert_eq!(unread["unread_count"], 4);
    let (_, read) = app
        .get("/api/notifications?unread=false", Some(&token))
        .await;
    assert_eq!(read["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(read["notifications"][0]["id"], id.as_str());
    assert_eq!(read["unread_count"], 4, "the count ignores the filter");

    let (status, all) = call(&app, Method::POST, "/api/notifications/read-all", &token).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all, json!({"updated": 4}));
    let (_, none) = call(&app, Method::POST, "/api/notifications/read-all", &token).await;
    assert_eq!(none, json!({"updated": 0}));
    let (_, after) = app.get("/api/notifications", Some(&token)).await;
    assert_eq!(after["unread_count"], 0);
    // read-all did not move the first read_at either
    let kept = after["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id.as_str())
        .unwrap();
    assert_eq!(kept["read_at"], read_at);
}

#[tokio::test]
async fn delete_answers_204_then_404_and_another_users_id_is_a_404_that_changes_nothing() {
    let app = crate::start().await;
    let (alice, mallory) = (app.token("user_alice"), app.token("user_mallory"));
    seed(&app, &alice, "user_alice", 2).await;
    seed(&app, &mallory, "user_mallory", 1).await;
    let (_, page) = app.get("/api/notifications", Some(&alice)).await;
    let id = page["notifications"][0]["id"].as_str().unwrap().to_owned();
    let random = Uuid::new_v4();
    for path in [
        format!("/api/notifications/{id}/read"),
        format!("/api/notifications/{random}/read"),
    ] {
        let (status, body) = call(&app, Method::POST, &path, &mallory).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_error(&body, "not_found");
    }
    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("/api/notifications/{id}"),
        &mallory,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_error(&body, "not_found");
    // Mallory's read-all touches only her own
    let (_, all) = call(&app, Method::POST, "/api/notifications/read-all", &mallory).await;
    assert_eq!(all, json!({"updated": 1}));
    let (_, still) = app.get("/api/notifications", Some(&alice)).await;
    assert_eq!(still, page, "Alice's feed changed");

    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/notifications/{id}"),
        &alice,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("/api/notifications/{id}"),
        &alice,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (_, after) = app.get("/api/notifications", Some(&alice)).await;
    assert_eq!(after["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(after["unread_count"], 1);
}

#[tokio::test]
async fn bad_parameters_are_422_naming_them_and_no_token_is_401() {
    let app = crate::start().await;
    let token = app.token("user_params");
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("unread=maybe", "unread"),
        ("cursor=not-a-cursor", "cursor"),
    ] {
        let (status, body) = app
            .get(&format!("/api/notifications?{query}"), Some(&token))
            .await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_error(&body, "validation_failed");
        assert_eq!(
            body["error"]["details"]["fields"][0]["field"], field,
            "{query}"
        );
    }
    let (status, body) = app.get("/api/notifications?limit=100", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/api/notifications", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/notifications/not-a-uuid/read",
        &token,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_error(&body, "not_found");
}
