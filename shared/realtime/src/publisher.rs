//! The publisher: fans a session's events out to its subscribers with PostToConnection
//! (`aws-sdk-apigatewaymanagement`; locally the same calls reach `alphalab serve`'s gateway).
//!
//! - The subscriber list is read once per publish, not per event.
//! - Runs of events are packed into `batch` messages that stay within API Gateway's 32 KB frame
//!   (a single event goes as itself), so a burst costs few posts.
//! - Connections are served concurrently (at most `WS_PUBLISH_CONCURRENCY`), each one strictly
//!   in order. A post that fails (not 410) is tried twice more (after 50 ms and 200 ms); if it
//!   still fails, nothing more of this publish goes to that connection, so its next event shows
//!   the gap in `seq` (the client re-reads the session over REST).
//! - A `GoneException` (410) deletes exactly that connection and its subscriptions; no failure of
//!   one subscriber fails the publish. A watcher is a connection a post reached.

use std::time::Duration;

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use chrono::Utc;
use futures::StreamExt;
use platform::{AwsConfig, ConfigError, Env, FromEnv};
use uuid::Uuid;

use crate::events::{Envelope, Event, PriceUpdate};
use crate::registry::{Registry, price_topic, session_topic};

/// API Gateway's WebSocket frame limit, in bytes (also for posts to `@connections`).
pub const FRAME_LIMIT: usize = 32 * 1024;

/// `WEBSOCKET_API_ENDPOINT` (the `@connections` endpoint: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`;
/// locally the gateway of `alphalab serve`), `CONNECTIONS_TABLE`, `SUBSCRIPTIONS_TABLE`,
/// `WS_PUBLISH_CONCURRENCY` (1..256, default 32), and the AWS variables.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    pub endpoint: String,
    pub connections_table: String,
    pub subscriptions_table: String,
    pub concurrency: usize,
    pub aws: AwsConfig,
}

impl FromEnv for RealtimeConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let endpoint = env
            .require("WEBSOCKET_API_ENDPOINT")?
            .trim_end_matches('/')
            .to_owned();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "WEBSOCKET_API_ENDPOINT",
                reason: "expected https://{api-id}.execute-api.{region}.amazonaws.com/{stage}"
                    .into(),
            });
        }
        Ok(Self {
            endpoint,
            connections_table: env
                .get("CONNECTIONS_TABLE")
                .unwrap_or_else(|| "ConnectionsTable".into()),
            subscriptions_table: env
                .get("SUBSCRIPTIONS_TABLE")
                .unwrap_or_else(|| "SubscriptionsTable".into()),
            concurrency: env.number("WS_PUBLISH_CONCURRENCY", 32, 1..=256)?,
            aws: AwsConfig::from_env(env)?,
        })
    }
}

/// What a publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Connections subscribed when the publish started.
    pub connections: Vec<String>,
    /// Connections that received at least one message (the session's watchers).
    pub reached: usize,
    /// Messages per connection.
    pub frames: usize,
    /// Posts made (frames x connections reached).
    pub posts: usize,
    /// Bytes posted.
    pub bytes: usize,
    /// Connections found gone (410) and pruned.
    pub gone: usize,
    /// Posts that failed otherwise.
    pub failed: usize,
}

/// How one post went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// 410: the connection is gone; it was pruned.
    Gone,
    Failed,
}

#[derive(Debug, Clone)]
pub struct Publisher {
    client: Client,
    registry: Registry,
    concurrency: usize,
}

impl Publisher {
    /// Builds the clients (no I/O).
    pub async fn new(config: &RealtimeConfig) -> Self {
        let sdk = config.aws.sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let management = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
            .endpoint_url(&config.endpoint)
            .timeout_config(
                aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build();
        Self {
            client: Client::from_conf(management),
            registry: Registry::new(
                dynamo,
                config.connections_table.clone(),
                config.subscriptions_table.clone(),
            ),
            concurrency: config.concurrency,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Posts one message to one connection; a gone connection is pruned.
    pub async fn post(&self, connection_id: &str, frame: &str) -> Delivery {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(frame.as_bytes()))
            .send()
            .await;
        match result {
            Ok(_) => Delivery::Sent,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {
                tracing::info!(connection_id, "connection gone; pruning it");
                if let Err(e) = self.registry.disconnect(connection_id).await {
                    tracing::warn!(connection_id, error = %e, "could not prune a gone connection");
                }
                Delivery::Gone
            }
            Err(e) => {
                tracing::warn!(
                    connection_id,
                    error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&e),
                    "post to connection failed"
                );
                Delivery::Failed
            }
        }
    }

    /// [`Publisher::post`], a failed post (not a gone connection) tried twice more.
    async fn post_retrying(&self, connection_id: &str, frame: &str) -> Delivery {
        let mut delivery = self.post(connection_id, frame).await;
        for wait in [50, 200] {
            if delivery != Delivery::Failed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(wait)).await;
            delivery = self.post(connection_id, frame).await;
        }
        delivery
    }

    /// Sends one envelope to one connection (replies to a client's message).
    pub async fn send(&self, connection_id: &str, envelope: &Envelope) -> Delivery {
        self.post(connection_id, &envelope.to_json()).await
    }

    /// Publishes a session's events, in order, to everyone subscribed to it.
    pub async fn publish(&self, session_id: Uuid, events: &[Envelope]) -> Report {
        let connections = match self.registry.subscribers(&session_topic(session_id)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(session_id = %session_id, error = %e, "no subscriber list; events not pushed");
                return Report::default();
            }
        };
        self.deliver(connections, pack(session_id, events)).await
    }

    /// Pushes `price_update` (`session_id` and `seq` null) to the subscribers of `asset`'s
    /// price, and to no one else.
    pub async fn publish_price(&self, update: PriceUpdate) -> Report {
        let connections = match self.registry.subscribers(&price_topic(&update.asset)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(asset = %update.asset, error = %e, "no subscriber list; price not pushed");
                return Report::default();
            }
        };
        let frame = Envelope::other(&Event::PriceUpdate(update), None, Utc::now()).to_json();
        self.deliver(connections, vec![frame]).await
    }

    /// Posts `frames`, in order, to each of `connections` (a connection that fails stops taking
    /// the rest: they would fail the same way, or arrive out of order).
    async fn deliver(&self, connections: Vec<String>, frames: Vec<String>) -> Report {
        let mut report = Report {
            frames: frames.len(),
            ..Report::default()
        };
        let frames = &frames;
        let results: Vec<(usize, usize, Delivery)> = futures::stream::iter(connections.clone())
            .map(|connection: String| async move {
                let (mut posts, mut bytes) = (0, 0);
                for frame in frames {
                    match self.post_retrying(&connection, frame).await {
                        Delivery::Sent => {
                            posts += 1;
                            bytes += frame.len();
                        }
                        other => return (posts, bytes, other),
                    }
                }
                (posts, bytes, Delivery::Sent)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (posts, bytes, last) in results {
            report.posts += posts;
            report.bytes += bytes;
            report.reached += usize::from(posts > 0);
            match last {
                Delivery::Gone => report.gone += 1,
                Delivery::Failed => report.failed += 1,
                Delivery::Sent => {}
            }
        }
        report.connections = connections;
        report
    }
}

/// The messages for a run of a session's events: one event goes as itself; several go as
/// `batch` envelopes, each as full as fits in [`FRAME_LIMIT`] bytes (an event too large for a
/// frame of its own is sent alone, and API Gateway will refuse it).
pub fn pack(session_id: Uuid, events: &[Envelope]) -> Vec<String> {
    if events.len() == 1 {
        return vec![events[0].to_json()];
    }
    let ts = Utc::now();
    // the batch envelope around the events, exactly as serde writes it
    let empty = Envelope::batch(session_id, Vec::new(), ts).to_json();
    let (prefix, suffix) = empty.split_at(empty.len() - 3); // `]}}`
    let mut frames = Vec::new();
    let mut items: Vec<String> = Vec::new();
    let mut size = prefix.len() + suffix.len();
    let flush = |items: &mut Vec<String>, frames: &mut Vec<String>| {
        match items.len() {
            0 => {}
            // a lone event needs no batch around it
            1 => frames.push(items.remove(0)),
            _ => frames.push(format!("{prefix}{}{suffix}", items.join(","))),
        }
        items.clear();
    };
    for event in events {
        let json = event.to_json();
        let added = json.len() + usize::from(!items.is_empty());
        if !items.is_empty() && size + added > FRAME_LIMIT {
            flush(&mut items, &mut frames);
            size = prefix.len() + suffix.len();
        }
        size += json.len() + usize::from(!items.is_empty());
        items.push(json);
    }
    flush(&mut items, &mut frames);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{AiThinking, Event};

    #[test]
    fn a_burst_packs_into_batches_under_32_kb_in_order() {
        let session = Uuid::new_v4();
        let events: Vec<Envelope> = (0..1000)
            .map(|i| {
                Envelope::session(
                    session,
                    i + 1,
                    &Event::AiThinking(AiThinking { index: i }),
                    Utc::now(),
                )
            })
            .collect();
        let frames = pack(session, &events);
        let total: usize = events.iter().map(|e| e.to_json().len() + 1).sum();
        assert!(
            frames.len() <= total / FRAME_LIMIT + 2,
            "{} frames for {total} bytes",
            frames.len()
        );
        let mut seq = 0;
        for frame in &frames {
            assert!(frame.len() <= FRAME_LIMIT, "{}", frame.len());
            let batch: Envelope = serde_json::from_str(frame).unwrap();
            assert_eq!(batch.event, "batch");
            assert_eq!(batch.session_id, Some(session));
            for e in batch.data["events"].as_array().unwrap() {
                seq += 1;
                assert_eq!(e["seq"], seq);
            }
        }
        assert_eq!(seq, 1000);
        // one event goes as itself
        let one = pack(session, &events[..1]);
        assert_eq!(one, [events[0].to_json()]);
    }
}
