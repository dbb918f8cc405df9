//! Lambda's SQS event source mapping, emulated against moto: long-polls the queue for batches
//! of up to 10 records with the queue's visibility timeout, invokes the handler in process with
//! the `SqsEvent` Lambda would send, deletes the records the handler did not report in
//! `batchItemFailures`, and leaves everything to the queue when the invocation dies (a panic
//! here, a crash or timeout in AWS): those records come back after the visibility timeout, and
//! moto moves a record to the dead-letter queue after `maxReceiveCount` receives, as SQS does.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};

/// A FIFO queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct StepsQueue {
    pub url: String,
    pub dlq_url: String,
}

/// Creates `<name>.fifo` with a dead-letter queue `<name>-dlq.fifo` (`maxReceiveCount`
/// `max_receive`, visibility `visibility_secs`), as template.yaml declares the steps queue.
pub async fn create_steps_queue(
    client: &Client,
    name: &str,
    visibility_secs: u32,
    max_receive: u32,
) -> Result<StepsQueue> {
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .context("creating the dead-letter queue")?;
    let dlq_url = dlq.queue_url.context("dead-letter queue url")?;
    let arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("dead-letter queue arn")?;
    let queue = client
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max_receive })
                .to_string(),
        )
        .send()
        .await
        .context("creating the steps queue")?;
    Ok(StepsQueue {
        url: queue.queue_url.context("queue url")?,
        dlq_url,
    })
}

/// How many records a queue holds (visible + in flight).
pub async fn depth(client: &Client, url: &str) -> Result<usize> {
    let attributes = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let n = |name: QueueAttributeName| {
        attributes
            .get(&name)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    Ok(n(QueueAttributeName::ApproximateNumberOfMessages)
        + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// The function an event source mapping invokes.
pub type Invoke =
    Arc<dyn Fn(SqsEvent) -> Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>> + Send + Sync>;

/// What the poller did.
#[derive(Debug, Default)]
pub struct PollerStats {
    pub invocations: AtomicUsize,
    pub records: AtomicUsize,
    pub deleted: AtomicUsize,
    pub reported_failures: AtomicUsize,
    /// Invocations that died (panicked): none of their records were deleted.
    pub died: AtomicUsize,
}

/// A running poller; stops when dropped.
pub struct Poller {
    pub stats: Arc<PollerStats>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("stats", &self.stats)
            .finish()
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(message: aws_sdk_sqs::types::Message, arn: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id;
    record.receipt_handle = message.receipt_handle;
    record.body = message.body;
    record.md5_of_body = message.md5_of_body;
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(arn.into());
    record.aws_region = Some("us-east-1".into());
    let mut attributes = HashMap::new();
    for (name, value) in message.attributes.unwrap_or_default() {
        attributes.insert(name.as_str().to_owned(), value);
    }
    record.attributes = attributes;
    record
}

impl Poller {
    /// Polls `queue_url` until dropped, invoking `invoke` one batch at a time (the mapping's
    /// concurrency of one per message group is what FIFO gives anyway).
    pub fn start(client: Client, queue_url: String, visibility_secs: i32, invoke: Invoke) -> Self {
        let stats = Arc::new(PollerStats::default());
        let counters = stats.clone();
        let task = tokio::spawn(async move {
            let arn = format!(
                "arn:aws:sqs:us-east-1:123456789012:{}",
                queue_url.rsplit('/').next().unwrap_or_default()
            );
            loop {
                let received = client
                    .receive_message()
                    .queue_url(&queue_url)
                    .max_number_of_messages(10)
                    .visibility_timeout(visibility_secs)
                    .wait_time_seconds(1)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await;
                let messages = match received {
                    Ok(r) => r.messages.unwrap_or_default(),
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        continue;
                    }
                };
                if messages.is_empty() {
                    continue;
                }
                let mut event = SqsEvent::default();
                event.records = messages.into_iter().map(|m| record(m, &arn)).collect();
                let receipts: Vec<(String, String)> = event
                    .records
                    .iter()
                    .map(|r| {
                        (
                            r.message_id.clone().unwrap_or_default(),
                            r.receipt_handle.clone().unwrap_or_default(),
                        )
                    })
                    .collect();
                counters.invocations.fetch_add(1, Ordering::SeqCst);
                counters.records.fetch_add(receipts.len(), Ordering::SeqCst);
                // a task of its own, so that a dying invocation (a panic) is seen as such
                let outcome = tokio::spawn(invoke(event)).await;
                let Ok(response) = outcome else {
                    counters.died.fetch_add(1, Ordering::SeqCst);
                    continue;
                };
                let failed: Vec<&str> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.as_str())
                    .collect();
                counters
                    .reported_failures
                    .fetch_add(failed.len(), Ordering::SeqCst);
                let entries: Vec<DeleteMessageBatchRequestEntry> = receipts
                    .iter()
                    .filter(|(id, _)| !failed.contains(&id.as_str()))
                    .enumerate()
                    .filter_map(|(i, (_, receipt))| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(receipt)
                            .build()
                            .ok()
                    })
                    .collect();
                if !entries.is_empty() {
                    let n = entries.len();
                    if client
                        .delete_message_batch()
                        .queue_url(&queue_url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .is_ok()
                    {
                        counters.deleted.fetch_add(n, Ordering::SeqCst);
                    }
                }
            }
        });
        Self { stats, task }
    }
}
