//! `$connect` and the client's messages.

use std::time::Duration;

use alphalab_devstack::{TokenIssuer, TokenSpec};
use futures::SinkExt;
use serde_json::{Value, json};

use crate::{frame, next, send, start};

#[tokio::test]
async fn only_a_valid_token_of_our_issuer_opens_a_connection() {
    let rig = start().await;
    assert!(rig.connect(&rig.env.token("user_ok")).await.is_ok());
    let mut expired = TokenSpec::new(rig.env.issuer, "user_late");
    expired.expires_in = -60;
    let expired = rig.env.issuer.mint(&expired).unwrap();
    let stranger = TokenIssuer::start().unwrap().token("user_x").unwrap();
    for (case, token) in [
        ("expired", expired),
        ("another issuer", stranger),
        ("garbage", "abc".into()),
    ] {
        let err = rig.connect(&token).await.expect_err(case);
        assert!(err.to_string().contains("401"), "{case}: {err}");
    }
    let err = tokio_tungstenite::connect_async(rig.gateway.ws_url.clone())
        .await
        .expect_err("no token");
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn ping_answers_pong_and_every_bad_message_gets_an_error_event_on_a_usable_connection() {
    let rig = start().await;
    let mut client = rig.connect_as("user_msgs").await;
    send(&mut client, json!({"action": "ping"})).await;
    let pong = next(&mut client).await;
    assert_eq!(pong["event"], "pong");
    assert_eq!(pong["seq"], serde_json::Value::Null);
    assert!(pong["ts"].as_str().unwrap().ends_with('Z'));

    let cases: Vec<(String, &str, &str)> = vec![
        ("not json".into(), "bad_message", "not JSON"),
        ("[1, 2]".into(), "bad_message", "JSON object"),
        (
            json!({"session_id": "x"}).to_string(),
            "bad_message",
            "action: missing",
        ),
        (
            json!({"action": 7}).to_string(),
            "bad_message",
            "action: must be a string",
        ),
        (
            json!({"action": "dance"}).to_string(),
            "unknown_action",
            "subscribe, unsubscribe",
        ),
        (
            json!({"action": "subscribe"}).to_string(),
            "bad_message",
            "session_id: missing",
        ),
        (
            json!({"action": "subscribe", "session_id": "nope"}).to_string(),
            "bad_message",
            "UUID",
        ),
        (
            json!({"action": "subscribe", "topic": "news"}).to_string(),
            "bad_message",
            "topic",
        ),
        (
            json!({"action": "subscribe", "topic": "price", "asset": "DOGE"}).to_string(),
            "bad_request",
            "BTCUSDT",
        ),
        (
            json!({"action": "change_speed", "session_id": uuid::Uuid::new_v4(), "speed": "warp"})
                .to_string(),
            "bad_message",
            "slow, normal, fast, instant",
        ),
        (
            format!(
                "{{\"action\":\"ping\",\"pad\":\"{}\"}}",
                "x".repeat(33 * 1024)
            ),
            "too_large",
            "32768",
        ),
    ];
    for (message, code, says) in cases {
        client
            .send(tokio_tungstenite::tungstenite::Message::Text(
                message.clone().into(),
            ))
            .await
            .unwrap();
        let error = next(&mut client).await;
        assert_eq!(error["event"], "error", "{message:.60}: {error}");
        assert_eq!(error["data"]["code"], code, "{message:.60}: {error}");
        assert!(
            error["data"]["message"].as_str().unwrap().contains(says),
            "{message:.60}: {error}"
        );
        // and the connection keeps working
        send(&mut client, json!({"action": "ping"})).await;
        assert_eq!(next(&mut client).await["event"], "pong");
    }
}

#[tokio::test]
async fn subscriptions_are_only_to_ones_own_sessions_and_strangers_cannot_tell_them_from_none() {
    let rig = start().await;
    let mut alice = rig.connect_as("user_alice").await;
    let mut bob = rig.connect_as("user_bob").await;
    let alice_id = rig.user_id("user_alice").await;
    let session = rig.session(alice_id).await;

    send(
        &mut alice,
        json!({"action": "subscribe", "session_id": session}),
    )
    .await;
    let ok = next(&mut alice).await;
    assert_eq!(ok["event"], "subscribed");
    assert_eq!(ok["data"]["topic"], format!("session#{session}"));
    assert_eq!(ok["session_id"], session.to_string());

    send(
        &mut bob,
        json!({"action": "subscribe", "session_id": session}),
    )
    .await;
    let foreign = next(&mut bob).await;
    send(
        &mut bob,
        json!({"action": "subscribe", "session_id": uuid::Uuid::new_v4()}),
    )
    .await;
    let missing = next(&mut bob).await;
    assert_eq!(foreign["data"], missing["data"], "indistinguishable");
    assert_eq!(foreign["data"]["code"], "not_found");
    // nor can Bob control it
    send(&mut bob, json!({"action": "stop", "session_id": session})).await;
    assert_eq!(next(&mut bob).await["data"]["code"], "not_found");

    // prices are open to everyone
    send(
        &mut bob,
        json!({"action": "subscribe", "topic": "price", "asset": "BTCUSDT"}),
    )
    .await;
    let subscribed = next(&mut bob).await;
    assert_eq!(
        subscribed["data"],
        json!({"topic": "price", "asset": "BTCUSDT"})
    );
    assert_eq!(subscribed["session_id"], Value::Null);
    send(
        &mut alice,
        json!({"action": "unsubscribe", "session_id": session}),
    )
    .await;
    assert_eq!(next(&mut alice).await["event"], "unsubscribed");
    assert!(
        rig.ws
            .publisher
            .registry()
            .subscribers(&format!("session#{session}"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn controls_go_through_the_session_service_and_the_session_step_publishes_them_in_order() {
    let rig = start().await;
    // the caller is not subscribed; a watcher of the same user is
    let mut alice = rig.connect_as("user_ctl").await;
    let mut watcher = rig.connect_as("user_ctl").await;
    let session = rig.session(rig.user_id("user_ctl").await).await;
    send(
        &mut watcher,
        json!({"action": "subscribe", "session_id": session}),
    )
    .await;
    let subscribed = next(&mut watcher).await;
    assert_eq!(subscribed["data"]["session"]["status"], "running");
    assert_eq!(subscribed["data"]["session"]["last_seq"], 0);
    let mut seqs = Vec::new();
    for (message, event, status, speed) in [
        (
            json!({"action": "pause", "session_id": session}),
            "session_paused",
            "paused",
            "normal",
        ),
        (
            json!({"action": "change_speed", "session_id": session, "speed": "fast"}),
            "session_speed_changed",
            "paused",
            "fast",
        ),
        (
            json!({"action": "resume", "session_id": session}),
            "session_resumed",
            "running",
            "fast",
        ),
        (
            json!({"action": "stop", "session_id": session}),
            "session_stopped",
            "stopped",
            "fast",
        ),
    ] {
        send(&mut alice, message).await;
        // the caller sees the new state at once
        let e = next(&mut alice).await;
        assert_eq!(e["event"], event, "{e}");
        assert_eq!(
            (e["data"]["status"].as_str(), e["data"]["speed"].as_str()),
            (Some(status), Some(speed))
        );
        seqs.push(e["seq"].as_u64().unwrap());
    }
    assert_eq!(
        seqs,
        [1, 2, 3, 4],
        "seq increases by exactly one per session event"
    );
    // a subscriber gets them from the session's step (none runs here), in seq order with the
    // step's own events: nothing is posted to it around the step
    assert!(
        frame(&mut watcher, Duration::from_millis(300))
            .await
            .is_none()
    );
    let pool = sqlx::PgPool::connect(&rig.env.db.url).await.unwrap();
    let outbox: serde_json::Value =
        sqlx::query_scalar("SELECT outbox FROM test_sessions WHERE id = $1")
            .bind(session)
            .fetch_one(&pool)
            .await
            .unwrap();
    let filed: Vec<(String, u64)> = outbox
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        filed,
        [
            ("session_paused".into(), 1),
            ("session_speed_changed".into(), 2),
            ("session_resumed".into(), 3),
            ("session_stopped".into(), 4)
        ]
    );
    // stopping a session that is stopping again is accepted (its step is sent again), with no
    // new event; a stopped session cannot be resumed
    send(&mut alice, json!({"action": "stop", "session_id": session})).await;
    assert!(
        frame(&mut alice, Duration::from_millis(300))
            .await
            .is_none()
    );
    send(
        &mut alice,
        json!({"action": "resume", "session_id": session}),
    )
    .await;
    let e = next(&mut alice).await;
    assert_eq!(e["data"]["code"], "conflict");
    assert!(e["data"]["message"].as_str().unwrap().contains("stopped"));
    assert!(
        frame(&mut alice, Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn closing_a_connection_forgets_its_subscriptions() {
    let rig = start().await;
    let mut client = rig.connect_as("user_bye").await;
    let session = rig.session(rig.user_id("user_bye").await).await;
    send(
        &mut client,
        json!({"action": "subscribe", "session_id": session}),
    )
    .await;
    next(&mut client).await;
    let topic = format!("session#{session}");
    assert_eq!(
        rig.ws
            .publisher
            .registry()
            .subscribers(&topic)
            .await
            .unwrap()
            .len(),
        1
    );
    client.close(None).await.unwrap();
    let registry = rig.ws.publisher.registry();
    let mut left = 1;
    // within 10 s (other tests load moto and the machine meanwhile)
    for _ in 0..200 {
        left = registry.subscribers(&topic).await.unwrap().len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "$disconnect removed the subscription");
}
