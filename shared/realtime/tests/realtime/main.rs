//! The event contract: an example of each event, as the README shows it, checked against a
//! snapshot (`UPDATE_SNAPSHOTS=1 cargo test -p alphalab-realtime` after an intended change).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use realtime::Envelope;
use realtime::events::*;
use uuid::Uuid;

fn examples() -> Vec<Envelope> {
    let ts: DateTime<Utc> = "2026-12-01T12:00:00.250Z".parse().unwrap();
    let session: Uuid = "7d0c4a3e-5b1f-4c1a-9e55-1f2d3c4b5a69".parse().unwrap();
    let state = |status: &str, reason: Option<&str>| SessionState {
        status: status.into(),
        speed: "normal".into(),
        reason: reason.map(Into::into),
    };
    let numbered = vec![
        Event::SessionInitialized(SessionInitialized {
            kind: "backtest".into(),
            asset: "BTCUSDT".into(),
            timeframe: "1h".into(),
            total_candles: Some(8760),
            starting_capital: 10_000.0,
            speed: "normal".into(),
            agent: AgentSummary {
                name: "Trend".into(),
                model: "anthropic/claude-3.5-sonnet".into(),
                mode: "omni".into(),
            },
            warmup: None,
        }),
        Event::Candle(CandleData {
            time: "2022-01-03T14:00:00Z".into(),
            open: 46_250.5,
            high: 46_480.0,
            low: 46_120.1,
            close: 46_401.9,
            volume: 812.4,
            indicators: BTreeMap::from([("rsi_14".into(), Some(58.3)), ("sma_50".into(), None)]),
            progress: Progress {
                index: 41,
                total: Some(8760),
            },
            gap_before: 0,
        }),
        Event::AiThinking(AiThinking { index: 41 }),
        Event::AiDecision(AiDecision {
            index: 41,
            action: "long".into(),
            confidence: 72,
            reasoning: "RSI turning up above the 50-SMA".into(),
            notes: vec!["leverage 3 capped to 2".into()],
        }),
        Event::PositionOpened(PositionOpened {
            trade_no: 3,
            side: "long".into(),
            time: "2022-01-03T14:00:00Z".into(),
            entry_price: 46_425.1,
            quantity: 0.2151,
            leverage: 2,
            stop_loss: Some(45_496.6),
            take_profit: None,
        }),
        Event::PositionClosed(PositionClosed {
            trade_no: 3,
            side: "long".into(),
            time: "2022-01-04T02:00:00Z".into(),
            entry_price: 46_425.1,
            exit_price: 45_496.6,
            pnl: -219.8,
            pnl_pct: -4.4,
            exit_type: "stop_loss".into(),
        }),
        Event::StatsUpdate(StatsUpdate {
            equity: 9_780.2,
            total_return_pct: -2.2,
            total_trades: 3,
            win_rate_pct: Some(33.3),
            max_drawdown_pct: 3.1,
        }),
        Event::SessionPaused(state("paused", None)),
        Event::SessionResumed(state("running", None)),
        Event::SessionStopped(state("stopped", Some("stopped by the user"))),
        Event::SessionSpeedChanged(SessionState {
            status: "running".into(),
            speed: "fast".into(),
            reason: None,
        }),
        Event::SessionCompleted(SessionCompleted {
            result: serde_json::json!({"metrics": {"total_trades": 12, "total_return_pct": 4.8}}),
            can_generate_certificate: true,
        }),
        Event::SessionFailed(SessionFailed {
            reason: "OpenRouter reports no credits".into(),
        }),
    ];
    let mut out: Vec<Envelope> = numbered
        .iter()
        .enumerate()
        .map(|(i, e)| Envelope::session(session, i as u64 + 1, e, ts))
        .collect();
    for (event, session_id) in [
        (
            Event::PriceUpdate(PriceUpdate {
                asset: "BTCUSDT".into(),
                price: 46_401.9,
                time: "2026-12-01T12:00:00Z".into(),
            }),
            None,
        ),
        (
            Event::Subscribed(Subscription {
                topic: format!("session#{session}"),
                asset: None,
                session: Some(Standing {
                    status: "running".into(),
                    finished: false,
                    speed: "fast".into(),
                    progress: StandingProgress {
                        cursor: 42,
                        total: Some(8760),
                    },
                    stats: Some(
                        serde_json::json!({"equity": 9780.2, "max_drawdown_pct": 3.1,
                        "total_return_pct": -2.2, "total_trades": 3, "win_rate_pct": 33.3}),
                    ),
                    position: None,
                    last_seq: 11,
                }),
            }),
            Some(session),
        ),
        (
            Event::Unsubscribed(Subscription {
                topic: "price".into(),
                asset: Some("BTCUSDT".into()),
                session: None,
            }),
            None,
        ),
        (Event::Pong, None),
        (Event::error("not_found", "session not found"), None),
    ] {
        out.push(Envelope::other(&event, session_id, ts));
    }
    out.push(Envelope::batch(session, out[1..3].to_vec(), ts));
    out
}

#[test]
fn every_event_matches_its_snapshot_and_carries_the_envelope() {
    let examples = examples();
    let names: Vec<&str> = examples.iter().map(|e| e.event.as_str()).collect();
    for name in [
        "session_initialized",
        "candle",
        "ai_thinking",
        "ai_decision",
        "position_opened",
        "position_closed",
        "stats_update",
        "session_completed",
        "session_paused",
        "session_resumed",
        "session_stopped",
        "session_speed_changed",
        "session_failed",
        "price_update",
        "subscribed",
        "unsubscribed",
        "pong",
        "error",
        "batch",
    ] {
        assert!(names.contains(&name), "no example of {name}");
    }
    let text: String = examples
        .iter()
        .map(|e| format!("{}\n", e.to_json()))
        .collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/events.jsonl");
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
        std::fs::write(path, &text).unwrap();
    }
    let expected =
        std::fs::read_to_string(path).expect("snapshot (UPDATE_SNAPSHOTS=1 to write it)");
    assert_eq!(text, expected);
    // session events are numbered; the others are not
    for e in &examples {
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["data", "event", "seq", "session_id", "ts"]);
        assert!(
            e.to_json()
                .starts_with(&format!("{{\"event\":\"{}\"", e.event)),
            "the name first"
        );
        let numbered = e.seq.is_some();
        let session_event = ![
            "price_update",
            "subscribed",
            "unsubscribed",
            "pong",
            "error",
            "batch",
        ]
        .contains(&e.event.as_str());
        assert_eq!(numbered, session_event, "{}", e.event);
    }
}
