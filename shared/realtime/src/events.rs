//! The events the server sends, one envelope for all:
//! `{"event": "<name>", "session_id": "<uuid>"|null, "seq": <n>|null, "ts": "<RFC 3339>", "data": {...}}`.
//! Session events carry the session's `seq`, which increases by exactly one per event, so a
//! client can detect a gap and re-sync over REST; the others (`price_update`, `subscribed`,
//! `unsubscribed`, `pong`, `error`) have `seq: null`. `batch` carries several session events in
//! order: `{"event": "batch", "session_id": ..., "data": {"events": [<envelope>, ...]}}`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Progress through a session's candles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 0-based index of this candle.
    pub index: u64,
    /// `null` for a forward session (it has no end).
    pub total: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInitialized {
    /// `backtest` or `forward`.
    #[serde(rename = "type")]
    pub kind: String,
    pub asset: String,
    pub timeframe: String,
    /// `null` for a forward session.
    pub total_candles: Option<u64>,
    pub starting_capital: f64,
    pub speed: String,
    pub agent: AgentSummary,
    /// The warm-up loaded: `{"candles", "first", "last"}` (a forward session's; a backtest's
    /// when it asked for one).
    pub warmup: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    pub name: String,
    pub model: String,
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandleData {
    /// Open time, RFC 3339.
    pub time: String,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    /// Indicator outputs by name; `null` while warming up.
    pub indicators: BTreeMap<String, Option<f64>>,
    pub progress: Progress,
    /// Intervals just before this candle the exchange has no candle for (an outage).
    #[serde(default)]
    pub gap_before: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiThinking {
    pub index: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiDecision {
    pub index: u64,
    /// `long`, `short`, `hold` or `close`.
    pub action: String,
    pub confidence: u8,
    pub reasoning: String,
    /// Why something was refused, clamped or adjusted.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionOpened {
    pub trade_no: u32,
    pub side: String,
    pub time: String,
    pub entry_price: f64,
    pub quantity: f64,
    pub leverage: u8,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionClosed {
    pub trade_no: u32,
    pub side: String,
    pub time: String,
    pub entry_price: f64,
    pub exit_price: f64,
    pub pnl: f64,
    pub pnl_pct: f64,
    /// `signal`, `stop_loss`, `take_profit`, `liquidation` or `session_end`.
    pub exit_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsUpdate {
    pub equity: f64,
    pub total_return_pct: f64,
    pub total_trades: u32,
    pub win_rate_pct: Option<f64>,
    pub max_drawdown_pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionCompleted {
    /// The same `result` the REST route returns.
    pub result: Value,
    /// Total PnL >= 0.
    pub can_generate_certificate: bool,
}

/// A session's state after a control (pause, resume, stop, speed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub status: String,
    pub speed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionFailed {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceUpdate {
    pub asset: String,
    pub price: f64,
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// `session#<uuid>`, or `price` (with `asset`).
    pub topic: String,
    /// The asset of a price subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// On subscribing to a session: where it stands (every later event has a greater `seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Standing>,
}

/// Where a session stands when a client subscribes: status, speed, progress, live stats, the
/// open position, and `last_seq`, the number of the last event numbered so far (a client takes
/// the events with a greater `seq` and drops the others).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    pub status: String,
    /// No event will follow (completed, failed, or stopped with its result written).
    pub finished: bool,
    pub speed: String,
    pub progress: StandingProgress,
    pub stats: Option<Value>,
    pub position: Option<Value>,
    pub last_seq: u64,
}

/// The next candle's index and how many there are (`null` for a forward session).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StandingProgress {
    pub cursor: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorData {
    /// `not_found`, `bad_message`, `bad_request`, `unknown_action`, `too_large`, `conflict`, `not_supported`, `unavailable`.
    pub code: String,
    pub message: String,
}

/// Every event the server sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    SessionInitialized(SessionInitialized),
    Candle(CandleData),
    AiThinking(AiThinking),
    AiDecision(AiDecision),
    PositionOpened(PositionOpened),
    PositionClosed(PositionClosed),
    StatsUpdate(StatsUpdate),
    SessionCompleted(SessionCompleted),
    SessionPaused(SessionState),
    SessionResumed(SessionState),
    SessionStopped(SessionState),
    /// A speed change (`status` unchanged).
    SessionSpeedChanged(SessionState),
    SessionFailed(SessionFailed),
    PriceUpdate(PriceUpdate),
    Subscribed(Subscription),
    Unsubscribed(Subscription),
    Pong,
    Error(ErrorData),
}

impl Event {
    /// The `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SessionInitialized(_) => "session_initialized",
            Self::Candle(_) => "candle",
            Self::AiThinking(_) => "ai_thinking",
            Self::AiDecision(_) => "ai_decision",
            Self::PositionOpened(_) => "position_opened",
            Self::PositionClosed(_) => "position_closed",
            Self::StatsUpdate(_) => "stats_update",
            Self::SessionCompleted(_) => "session_completed",
            Self::SessionPaused(_) => "session_paused",
            Self::SessionResumed(_) => "session_resumed",
            Self::SessionStopped(_) => "session_stopped",
            Self::SessionSpeedChanged(_) => "session_speed_changed",
            Self::SessionFailed(_) => "session_failed",
            Self::PriceUpdate(_) => "price_update",
            Self::Subscribed(_) => "subscribed",
            Self::Unsubscribed(_) => "unsubscribed",
            Self::Pong => "pong",
            Self::Error(_) => "error",
        }
    }

    /// Whether the event belongs to a session's numbered stream.
    pub fn is_session_event(&self) -> bool {
        !matches!(
            self,
            Self::PriceUpdate(_)
                | Self::Subscribed(_)
                | Self::Unsubscribed(_)
                | Self::Pong
                | Self::Error(_)
        )
    }

    fn data(&self) -> Value {
        let value = match self {
            Self::SessionInitialized(d) => serde_json::to_value(d),
            Self::Candle(d) => serde_json::to_value(d),
            Self::AiThinking(d) => serde_json::to_value(d),
            Self::AiDecision(d) => serde_json::to_value(d),
            Self::PositionOpened(d) => serde_json::to_value(d),
            Self::PositionClosed(d) => serde_json::to_value(d),
            Self::StatsUpdate(d) => serde_json::to_value(d),
            Self::SessionCompleted(d) => serde_json::to_value(d),
            Self::SessionPaused(d)
            | Self::SessionResumed(d)
            | Self::SessionStopped(d)
            | Self::SessionSpeedChanged(d) => serde_json::to_value(d),
            Self::SessionFailed(d) => serde_json::to_value(d),
            Self::PriceUpdate(d) => serde_json::to_value(d),
            Self::Subscribed(d) | Self::Unsubscribed(d) => serde_json::to_value(d),
            Self::Pong => Ok(Value::Object(Default::default())),
            Self::Error(d) => serde_json::to_value(d),
        };
        // every payload is plain data: serialising it cannot fail
        value.unwrap_or(Value::Null)
    }

    /// An `error` event.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Self::Error(ErrorData {
            code: code.into(),
            message: message.into(),
        })
    }
}

/// The envelope every message has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event: String,
    pub session_id: Option<Uuid>,
    pub seq: Option<u64>,
    pub ts: String,
    pub data: Value,
}

fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Envelope {
    /// A session event with its sequence number.
    pub fn session(session_id: Uuid, seq: u64, event: &Event, ts: DateTime<Utc>) -> Self {
        Self {
            event: event.name().into(),
            session_id: Some(session_id),
            seq: Some(seq),
            ts: rfc3339(ts),
            data: event.data(),
        }
    }

    /// An event outside a session's stream (`seq: null`).
    pub fn other(event: &Event, session_id: Option<Uuid>, ts: DateTime<Utc>) -> Self {
        Self {
            event: event.name().into(),
            session_id,
            seq: None,
            ts: rfc3339(ts),
            data: event.data(),
        }
    }

    /// A `batch` of session events, in order.
    pub fn batch(session_id: Uuid, events: Vec<Envelope>, ts: DateTime<Utc>) -> Self {
        Self {
            event: "batch".into(),
            session_id: Some(session_id),
            seq: None,
            ts: rfc3339(ts),
            data: serde_json::json!({ "events": events }),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
