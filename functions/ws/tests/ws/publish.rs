//! The publisher, through the gateway's `@connections`, to real sockets.

use std::time::Duration;

use chrono::Utc;
use realtime::Envelope;
use realtime::events::{AiThinking, Event, StatsUpdate};
use realtime::registry::session_topic;
use serde_json::{Value, json};

use crate::{Client, frame, next, send, start};

fn thinking(session: uuid::Uuid, seq: u64) -> Envelope {
    Envelope::session(
        session,
        seq,
        &Event::AiThinking(AiThinking { index: seq - 1 }),
        Utc::now(),
    )
}

/// Every session event in the frames that arrive within `wait` of each other, batches opened.
async fn drain(client: &mut Client, wait: Duration) -> (Vec<Value>, usize) {
    let (mut events, mut frames) = (Vec::new(), 0);
    while let Some(f) = frame(client, wait).await {
        frames += 1;
        if f["event"] == "batch" {
            events.extend(f["data"]["events"].as_array().unwrap().iter().cloned());
        } else {
            events.push(f);
        }
    }
    (events, frames)
}

async fn subscribed(rig: &crate::Rig, clerk: &str) -> (Client, uuid::Uuid) {
    let mut client = rig.connect_as(clerk).await;
    let session = rig.session(rig.user_id(clerk).await).await;
    send(
        &mut client,
        json!({"action": "subscribe", "session_id": session}),
    )
    .await;
    assert_eq!(next(&mut client).await["event"], "subscribed");
    (client, session)
}

#[tokio::test]
async fn a_sessions_events_reach_exactly_its_subscribers_in_order() {
    let rig = start().await;
    let (mut a, session) = subscribed(&rig, "user_pub_a").await;
    let (mut b, _) = subscribed(&rig, "user_pub_b").await;
    let mut idle = rig.connect_as("user_pub_a").await; // the same user, not subscribed
    let events: Vec<Envelope> = (1..=5).map(|seq| thinking(session, seq)).collect();
    let report = rig.ws.publisher.publish(session, &events).await;
    assert_eq!(
        (report.connections.len(), report.frames, report.posts),
        (1, 1, 1)
    );
    let (got, _) = drain(&mut a, Duration::from_millis(300)).await;
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(
        got.iter()
            .all(|e| e["session_id"] == session.to_string() && e["event"] == "ai_thinking")
    );
    assert!(
        frame(&mut b, Duration::from_millis(200)).await.is_none(),
        "another session's subscriber"
    );
    assert!(
        frame(&mut idle, Duration::from_millis(200)).await.is_none(),
        "an unsubscribed connection"
    );
    // a single event goes as itself, not in a batch
    let stats = Event::StatsUpdate(StatsUpdate {
        equity: 10_100.0,
        total_return_pct: 1.0,
        total_trades: 1,
        win_rate_pct: Some(100.0),
        max_drawdown_pct: 0.5,
    });
    rig.ws
        .publisher
        .publish(
            session,
            &[Envelope::session(session, 6, &stats, Utc::now())],
        )
        .await;
    let e = next(&mut a).await;
    assert_eq!(
        (e["event"].as_str(), e["seq"].as_u64()),
        (Some("stats_update"), Some(6))
    );
}

#[tokio::test]
async fn a_burst_of_1000_events_arrives_complete_and_in_order_in_frames_under_32_kb() {
    let rig = start().await;
    let (mut client, session) = subscribed(&rig, "user_burst").await;
    let events: Vec<Envelope> = (1..=1000).map(|seq| thinking(session, seq)).collect();
    let bytes: usize = events.iter().map(|e| e.to_json().len()).sum();
    let report = rig.ws.publisher.publish(session, &events).await;
    assert!(
        report.frames <= bytes / realtime::publisher::FRAME_LIMIT + 2,
        "{report:?} for {bytes} bytes"
    );
    let mut seq = 0;
    let mut frames = 0;
    while seq < 1000 {
        let f = next(&mut client).await;
        frames += 1;
        assert!(f.to_string().len() <= realtime::publisher::FRAME_LIMIT);
        assert_eq!(f["event"], "batch");
        for e in f["data"]["events"].as_array().unwrap() {
            seq += 1;
            assert_eq!(e["seq"], seq, "in order, without a gap");
        }
    }
    assert_eq!(frames, report.frames);
}

#[tokio::test]
async fn a_dead_connection_is_pruned_and_the_others_still_get_their_events() {
    let rig = start().await;
    let (mut alive, session) = subscribed(&rig, "user_prune").await;
    // a subscriber API Gateway no longer knows (its $disconnect was missed): 410 on the first post
    let registry = rig.ws.publisher.registry();
    let user = rig.user_id("user_prune").await;
    registry.connect("ghostConnId=", user).await.unwrap();
    registry
        .subscribe(&session_topic(session), "ghostConnId=", user)
        .await
        .unwrap();
    // and a socket killed without a close frame
    let mut killed = rig.connect_as("user_prune").await;
    send(
        &mut killed,
        json!({"action": "subscribe", "session_id": session}),
    )
    .await;
    next(&mut killed).await;
    drop(killed);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let report = rig
        .ws
        .publisher
        .publish(session, &[thinking(session, 1), thinking(session, 2)])
        .await;
    assert!(report.gone >= 1, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    let (got, _) = drain(&mut alive, Duration::from_millis(300)).await;
    assert_eq!(got.len(), 2);
    let left = registry.subscribers(&session_topic(session)).await.unwrap();
    assert_eq!(
        left.len(),
        1,
        "only the live connection stays subscribed: {left:?}"
    );
    assert_eq!(
        registry.user_of("ghostConnId=").await.unwrap(),
        None,
        "its connection row is gone too"
    );
}

#[tokio::test]
async fn two_hundred_connections_each_receive_their_own_events() {
    let rig = start().await;
    let user = {
        let _probe = rig.connect_as("user_many").await;
        rig.user_id("user_many").await
    };
    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut client = rig.connect_as("user_many").await;
        let session = rig.session(user).await;
        send(
            &mut client,
            json!({"action": "subscribe", "session_id": session}),
        )
        .await;
        clients.push((client, session));
    }
    for (client, _) in clients.iter_mut() {
        assert_eq!(next(client).await["event"], "subscribed");
    }
    let publishes = clients.iter().map(|(_, session)| {
        let (publisher, session) = (rig.ws.publisher.clone(), *session);
        async move { publisher.publish(session, &[thinking(session, 1)]).await }
    });
    for report in futures::future::join_all(publishes).await {
        assert_eq!(report.posts, 1, "{report:?}");
    }
    for (client, session) in clients.iter_mut() {
        let e = next(client).await;
        assert_eq!(e["session_id"], session.to_string());
        assert!(
            frame(client, Duration::from_millis(20)).await.is_none(),
            "nothing else"
        );
    }
}

#[tokio::test]
async fn a_price_reaches_its_assets_subscribers_only_until_they_unsubscribe() {
    let rig = start().await;
    let mut btc = rig.connect_as("user_price_a").await;
    let mut eth = rig.connect_as("user_price_b").await;
    let mut idle = rig.connect_as("user_price_c").await;
    for (client, asset) in [(&mut btc, "BTCUSDT"), (&mut eth, "ETHUSDT")] {
        send(
            client,
            json!({"action": "subscribe", "topic": "price", "asset": asset}),
        )
        .await;
        let answer = next(client).await;
        assert_eq!(answer["event"], "subscribed");
        assert_eq!(answer["data"], json!({"topic": "price", "asset": asset}));
    }
    let update = |price: f64| realtime::events::PriceUpdate {
        asset: "BTCUSDT".into(),
        price,
        time: "2026-12-04T20:00:00Z".into(),
    };
    // (other tests of this process may hold price subscriptions in the same table: the
    // assertions are on what these clients receive)
    let report = rig.ws.publisher.publish_price(update(97_001.5)).await;
    assert!(report.posts >= 1, "{report:?}");
    let got = next(&mut btc).await;
    assert_eq!(got["event"], "price_update");
    assert_eq!(got["session_id"], Value::Null);
    assert_eq!(got["seq"], Value::Null);
    assert_eq!(
        got["data"],
        json!({"asset": "BTCUSDT", "price": 97_001.5, "time": "2026-12-04T20:00:00Z"})
    );
    assert!(
        frame(&mut eth, Duration::from_millis(200)).await.is_none(),
        "another asset"
    );
    assert!(
        frame(&mut idle, Duration::from_millis(200)).await.is_none(),
        "no subscription"
    );
    send(
        &mut btc,
        json!({"action": "unsubscribe", "topic": "price", "asset": "BTCUSDT"}),
    )
    .await;
    assert_eq!(next(&mut btc).await["event"], "unsubscribed");
    rig.ws.publisher.publish_price(update(97_002.0)).await;
    assert!(frame(&mut btc, Duration::from_millis(200)).await.is_none());
}
