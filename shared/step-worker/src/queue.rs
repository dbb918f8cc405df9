//! The steps queue (SQS FIFO). One message is one step of one session:
//! `{"session_id", "user_id", "version"}`; group id = session id (one step of a session at a time,
//! in order), deduplication id = `<session>:<version>` (a step sent twice within SQS's five
//! minutes is delivered once; a later duplicate is refused by the version check). The watchdog's
//! message for a stalled session carries the same body under a deduplication id of its own
//! (`<session>:<version>:nudge:<time>`), so SQS does not drop it as a copy of the lost one.

use aws_sdk_sqs::Client;
use config::{ConfigError, Env, FromEnv};
use platform::AwsConfig;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `STEPS_QUEUE_URL` and the AWS variables.
#[derive(Debug, Clone)]
pub struct StepsConfig {
    pub queue_url: String,
    pub aws: AwsConfig,
}

impl FromEnv for StepsConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            queue_url: env.require("STEPS_QUEUE_URL")?,
            aws: AwsConfig::from_env(env)?,
        })
    }
}

/// The body of a step message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMessage {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// The session version this step continues from.
    pub version: i64,
}

impl StepMessage {
    pub fn dedup_id(&self) -> String {
        format!("{}:{}", self.session_id, self.version)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the steps queue: {0}")]
pub struct QueueError(String);

impl QueueError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

fn sqs_error<E: std::error::Error>(e: E) -> QueueError {
    QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
}

/// Sends step messages.
#[derive(Debug, Clone)]
pub struct StepQueue {
    client: Client,
    url: String,
}

impl StepQueue {
    pub async fn new(config: &StepsConfig) -> Self {
        Self {
            client: Client::new(&config.aws.sdk_config().await),
            url: config.queue_url.clone(),
        }
    }

    /// Sends `message` (FIFO: group = session, dedup id = session and version).
    pub async fn send(&self, message: &StepMessage) -> Result<(), QueueError> {
        self.send_as(message, message.dedup_id()).await
    }

    /// [`StepQueue::send`], tried three times (0.1 s and 0.4 s apart) before the error is
    /// returned: what the start, resume and stop paths use.
    pub async fn send_retrying(&self, message: &StepMessage) -> Result<(), QueueError> {
        let mut last = None;
        for wait in [0, 100, 400] {
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            match self.send(message).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| QueueError::new("not sent")))
    }

    /// The watchdog's message for a stalled session: the same body under a deduplication id of
    /// its own, so that SQS does not take it for a copy of the lost message.
    pub async fn nudge(&self, message: &StepMessage) -> Result<(), QueueError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        self.send_as(message, format!("{}:nudge:{now}", message.dedup_id()))
            .await
    }

    /// Sends `messages`, each under its deduplication id, ten per `SendMessageBatch` call (SQS's
    /// limit), one call after the other; returns how many were accepted (a refused entry is
    /// logged, and its session is sent again by the next tick or the watchdog).
    pub async fn send_batch(
        &self,
        messages: &[(StepMessage, String)],
    ) -> Result<usize, QueueError> {
        let mut accepted = 0;
        for chunk in messages.chunks(10) {
            accepted += self.send_chunk(chunk).await?;
        }
        Ok(accepted)
    }

    /// One `SendMessageBatch` call of at most ten messages.
    async fn send_chunk(&self, chunk: &[(StepMessage, String)]) -> Result<usize, QueueError> {
        let mut entries = Vec::with_capacity(chunk.len());
        for (i, (message, dedup_id)) in chunk.iter().enumerate() {
            let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
            entries.push(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .message_group_id(message.session_id.to_string())
                    .message_deduplication_id(dedup_id)
                    .build()
                    .map_err(sqs_error)?,
            );
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sqs_error)?;
        for failed in out.failed() {
            tracing::warn!(
                entry = failed.id(),
                code = failed.code(),
                "a step message was refused"
            );
        }
        Ok(out.successful().len())
    }

    async fn send_as(&self, message: &StepMessage, dedup_id: String) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(message.session_id.to_string())
            .message_deduplication_id(dedup_id)
            .send()
            .await
            .map(drop)
            .map_err(sqs_error)
    }

    /// Makes a received message visible again after `delay` (a handled failure backs off:
    /// FIFO queues refuse per-message delays, so the receipt's visibility is changed; DESIGN 5b).
    pub async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map(drop)
            .map_err(sqs_error)
    }
}
