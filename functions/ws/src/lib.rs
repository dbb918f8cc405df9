//! The WebSocket function (API Gateway WebSocket API, route selection `$request.body.action`).
//!
//! - `$connect` (`wss://<api>/<stage>?token=<Clerk session token>`): the token is verified with the
//!   same Clerk code as HTTP; any failure refuses the connection (401; 503 when Clerk's keys
//!   cannot be had); the connection is recorded (user, time, 2-hour TTL).
//! - `$disconnect`: the connection and its subscriptions are forgotten.
//! - `$default`: the client's actions (README, "Realtime"): `subscribe` / `unsubscribe` to one of
//!   the caller's sessions (the `subscribed` answer says where the session stands, with the
//!   `seq` of its last event) or to an asset's prices, `ping`, and the session controls `pause`,
//!   `resume`, `stop`, `change_speed`, which go through `step_worker::Controls`, the service the
//!   arena's REST routes share: the session's step publishes the control's event to the
//!   subscribers, in seq order with its own, and a caller not subscribed gets it directly. Every
//!   answer is an event pushed to the connection; a bad message gets an `error` event and the
//!   connection stays usable.

use std::sync::Arc;

use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;
use platform::auth::{AuthError, Authenticator};
use platform::lambda::ws::{WebSocketHandler, response};
use platform::{ClerkConfig, ConfigError, DatabaseConfig, Env, FromEnv, TelemetryConfig};
use realtime::events::{ErrorData, Event, Standing, StandingProgress, Subscription};
use realtime::registry::{price_topic, session_topic};
use realtime::{Envelope, Publisher, RealtimeConfig};
use serde_json::Value;
use sqlx::PgPool;
use step_worker::{Controls, StepQueue, StepsConfig};
use store::sessions::{self, Control, Refused};
use uuid::Uuid;

/// The route keys the WebSocket API sends to this function (template.yaml declares the same).
pub const ROUTE_KEYS: &[&str] = &["$connect", "$disconnect", "$default"];

/// API Gateway's frame limit: a longer message is refused with an `error` event.
pub const MESSAGE_LIMIT: usize = 32 * 1024;

/// The variables this function reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub clerk: ClerkConfig,
    pub realtime: RealtimeConfig,
    pub steps: StepsConfig,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_env(env)?,
            clerk: ClerkConfig::from_env(env)?,
            realtime: RealtimeConfig::from_env(env)?,
            steps: StepsConfig::from_env(env)?,
            telemetry: TelemetryConfig::from_env(env)?,
        })
    }
}

/// The handler, built once per cold start.
#[derive(Clone)]
pub struct Ws {
    pub pool: PgPool,
    pub auth: Arc<Authenticator>,
    pub publisher: Arc<Publisher>,
    pub controls: Controls,
}

impl Ws {
    pub async fn new(config: &Config) -> Result<Self, sqlx::Error> {
        let pool = platform::db::pool(&config.database)?;
        let publisher = Arc::new(Publisher::new(&config.realtime).await);
        Ok(Self {
            controls: Controls {
                pool: pool.clone(),
                queue: StepQueue::new(&config.steps).await,
            },
            pool,
            auth: Arc::new(Authenticator::new(config.clerk.clone())),
            publisher,
        })
    }

    async fn reply(&self, connection: &str, event: Event, session_id: Option<Uuid>) {
        self.publisher
            .send(connection, &Envelope::other(&event, session_id, Utc::now()))
            .await;
    }
}

fn connection_id(request: &ApiGatewayWebsocketProxyRequest) -> &str {
    request
        .request_context
        .connection_id
        .as_deref()
        .unwrap_or_default()
}

impl WebSocketHandler for Ws {
    async fn connect(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(token) = request.query_string_parameters.first("token") else {
            return response(401, Some("missing ?token=".into()));
        };
        let claims = match self.auth.verify(token).await {
            Ok(claims) => claims,
            Err(AuthError::KeysUnavailable(cause)) => {
                tracing::error!(cause = %cause, "connection refused: no signing keys");
                return response(503, None);
            }
            Err(e) => {
                tracing::info!(reason = %e, "connection refused");
                return response(401, Some(e.to_string()));
            }
        };
        let user = match store::users::provision(&self.pool, &claims.sub).await {
            Ok(Some(user)) => user,
            Ok(None) | Err(_) => return response(503, None),
        };
        match self
            .publisher
            .registry()
            .connect(connection_id(request), user)
            .await
        {
            Ok(()) => {
                tracing::info!(user_id = %user, "connected");
                response(200, None)
            }
            Err(e) => {
                tracing::error!(error = %e, "connection refused: registry unavailable");
                response(503, None)
            }
        }
    }

    async fn disconnect(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        if let Err(e) = self
            .publisher
            .registry()
            .disconnect(connection_id(request))
            .await
        {
            // the rows expire with their TTL anyway
            tracing::warn!(error = %e, "disconnect not recorded");
        }
        response(200, None)
    }

    async fn message(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let connection = connection_id(request);
        let body = request.body.as_deref().unwrap_or_default();
        if let Err(error) = self.act(connection, body).await {
            self.reply(connection, Event::Error(error), None).await;
        }
        response(200, None)
    }
}

/// A field of a message, as a string.
fn text<'a>(message: &'a Value, field: &str) -> Result<&'a str, ErrorData> {
    match message.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(refusal("bad_message", format!("{field}: must be a string"))),
        None => Err(refusal("bad_message", format!("{field}: missing"))),
    }
}

fn session_field(message: &Value) -> Result<Uuid, ErrorData> {
    text(message, "session_id")?
        .parse()
        .map_err(|_| refusal("bad_message", "session_id: must be a UUID"))
}

/// The `error` event's payload for a refused message.
/// A topic as a client names it: `price` (with its `asset`), or the session's topic.
fn shown(topic: String, asset: &Option<String>) -> String {
    if asset.is_some() {
        "price".into()
    } else {
        topic
    }
}

fn refusal(code: &str, message: impl Into<String>) -> ErrorData {
    ErrorData {
        code: code.into(),
        message: message.into(),
    }
}

/// A session's standing as the `subscribed` event says it.
fn standing(s: sessions::Standing) -> Standing {
    Standing {
        status: s.status,
        finished: s.finished,
        speed: s.speed,
        progress: StandingProgress {
            cursor: s.cursor.max(0) as u64,
            total: s.total.map(|t| t.max(0) as u64),
        },
        stats: s.stats,
        position: s.position.filter(|p| !p.is_null()),
        last_seq: s.last_seq.max(0) as u64,
    }
}

fn not_found() -> ErrorData {
    refusal("not_found", "session not found")
}

impl Ws {
    /// Carries out one client message; `Err` is the `error` event to send back.
    async fn act(&self, connection: &str, body: &str) -> Result<(), ErrorData> {
        if body.len() > MESSAGE_LIMIT {
            return Err(refusal(
                "too_large",
                format!("messages are limited to {MESSAGE_LIMIT} bytes"),
            ));
        }
        let message: Value = serde_json::from_str(body)
            .map_err(|_| refusal("bad_message", "not JSON: send {\"action\": ...}"))?;
        if !message.is_object() {
            return Err(refusal("bad_message", "a message is a JSON object"));
        }
        let action = text(&message, "action")?;
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "message failed");
            refusal("unavailable", "temporarily unavailable; try again")
        };
        let user = self
            .publisher
            .registry()
            .user_of(connection)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| refusal("not_found", "unknown connection; reconnect"))?;
        match action {
            "ping" => {
                self.reply(connection, Event::Pong, None).await;
                Ok(())
            }
            "subscribe" | "unsubscribe" => {
                let (topic, session_id, asset) = match message.get("topic").and_then(Value::as_str)
                {
                    Some("price") => {
                        let asset = text(&message, "asset")?;
                        if !store::SUPPORTED_ASSETS.contains(&asset) {
                            return Err(refusal(
                                "bad_request",
                                format!(
                                    "asset: must be one of {}",
                                    store::SUPPORTED_ASSETS.join(", ")
                                ),
                            ));
                        }
                        (price_topic(asset), None, Some(asset.to_owned()))
                    }
                    Some(other) => {
                        return Err(refusal(
                            "bad_message",
                            format!(
                                "topic: unknown topic `{other}`; omit it for a session, or use price"
                            ),
                        ));
                    }
                    None => {
                        let session = session_field(&message)?;
                        // another user's session and no session read the same
                        if !sessions::owns(&self.pool, user, session)
                            .await
                            .map_err(|e| unavailable(&e))?
                        {
                            return Err(not_found());
                        }
                        (session_topic(session), Some(session), None)
                    }
                };
                let registry = self.publisher.registry();
                let result = if action == "subscribe" {
                    registry.subscribe(&topic, connection, user).await
                } else {
                    registry.unsubscribe(&topic, connection).await
                };
                result.map_err(|e| unavailable(&e))?;
                let event = if action == "subscribe" {
                    // read after the subscription is written: every event numbered later is
                    // published to this connection
                    let session = match session_id {
                        Some(id) => sessions::standing(&self.pool, user, id)
                            .await
                            .map_err(|e| unavailable(&e))?
                            .map(standing),
                        None => None,
                    };
                    Event::Subscribed(Subscription {
                        topic: shown(topic, &asset),
                        asset,
                        session,
                    })
                } else {
                    Event::Unsubscribed(Subscription {
                        topic: shown(topic, &asset),
                        asset,
                        session: None,
                    })
                };
                self.reply(connection, event, session_id).await;
                Ok(())
            }
            "pause" | "resume" | "stop" | "change_speed" => {
                let session = session_field(&message)?;
                let control = match action {
                    "pause" => Control::Pause,
                    "resume" => Control::Resume,
                    "stop" => Control::Stop,
                    _ => {
                        let speed = text(&message, "speed")?;
                        if !sessions::SPEEDS.contains(&speed) {
                            return Err(refusal(
                                "bad_message",
                                format!("speed: must be one of {}", sessions::SPEEDS.join(", ")),
                            ));
                        }
                        Control::Speed(speed.to_owned())
                    }
                };
                let done = self
                    .controls
                    .apply(user, session, &control)
                    .await
                    .map_err(|e| unavailable(&e))?;
                let done = match done {
                    Ok(done) => done,
                    Err(Refused::NotFound) => return Err(not_found()),
                    Err(Refused::WrongState { status }) => {
                        return Err(refusal(
                            "conflict",
                            format!("cannot {} a session that is {status}", control.verb()),
                        ));
                    }
                    Err(Refused::NotSupported) => {
                        return Err(refusal(
                            "not_supported",
                            format!(
                                "cannot {} a forward session: it decides each candle when it closes (stop it instead)",
                                control.verb()
                            ),
                        ));
                    }
                };
                // a subscriber gets the event from the session's step, in seq order; the caller
                // sees the answer even when not subscribed
                if let Some(envelope) = &done.envelope {
                    let subscribed = self
                        .publisher
                        .registry()
                        .is_subscribed(&session_topic(session), connection)
                        .await
                        .unwrap_or(false);
                    if !subscribed {
                        self.publisher.send(connection, envelope).await;
                    }
                }
                Ok(())
            }
            other => Err(refusal(
                "unknown_action",
                format!(
                    "unknown action `{other}`; the actions are subscribe, unsubscribe, ping, pause, resume, stop, change_speed"
                ),
            )),
        }
    }
}
