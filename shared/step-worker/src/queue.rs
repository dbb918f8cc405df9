//! The steps queue (SQS FIFO). One message is one step of one session:
//! `{"session_id", "user_id", "version"}`; group id = session id (one step of a session at a time,
//! in order), deduplication id = `<session>:<version>` (a step sent twice within SQS's five
//! minutes is delivered once; a later duplicate is refused by the version check).

use aws_sdk_sqs::Client;
use platform::{AwsConfig, ConfigError, Env, FromEnv};
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
        let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(message.session_id.to_string())
            .message_deduplication_id(message.dedup_id())
            .send()
            .await
            .map(drop)
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }

    /// Makes a received message visible again at once (a handled failure is retried now, not
    /// after the visibility timeout; DESIGN 5b).
    pub async fn retry_now(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map(drop)
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}
