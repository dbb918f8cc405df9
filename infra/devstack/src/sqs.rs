//! Lambda's SQS event source mapping, emulated against moto, as strict as AWS's:
//!
//! - up to `max_concurrency` invocations at once (the template's `StepMaxConcurrency`), each with
//!   `batch_size` records (the template's `BatchSize`: 1 for the steps), so several sessions
//!   advance together and one slow or failing session delays no other;
//! - records of one message group run in order, one invocation after the other; SQS itself
//!   hands out nothing more of a group while one of its messages is in flight;
//! - every invocation gets its deadline (`timeout` from its start: Lambda's function timeout)
//!   and is abandoned when it runs past it, as Lambda abandons it: nothing of its batch is
//!   deleted, so its records come back after the visibility timeout, each with a receive
//!   counted (moto moves a record to the dead-letter queue after `maxReceiveCount`, as SQS does);
//! - an invocation that dies (a panic here, a crash in AWS) is the same;
//! - records the handler does not report in `batchItemFailures` are deleted; a reported one is
//!   left to the queue (its handler set its visibility), and the group's later records of the
//!   same receive are released for SQS to hand out again in order.
//!
//! While no invocation runs it long-polls (1 s: a message sent is received at once). While some
//! run it polls without waiting (SQS hands out nothing of a group with a message in flight, and a
//! long poll that began then does not see the group free up when that message is deleted): an
//! empty receive waits a little longer each time (10 ms doubling to 100 ms), and a finished
//! invocation polls again at once, so a step's successor starts as soon as the step is done, as
//! with Lambda.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use tokio::time::Instant;

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
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
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

/// The function an event source mapping invokes: the batch and the invocation's deadline.
pub type Invoke = Arc<
    dyn Fn(SqsEvent, Instant) -> Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>>
        + Send
        + Sync,
>;

/// An event source mapping's settings, as the template declares them.
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    /// Seconds a received record stays invisible (the queue's `VisibilityTimeout`).
    pub visibility_secs: i32,
    /// The function's timeout: an invocation still running then is abandoned.
    pub timeout: Duration,
    /// Invocations at once (`ScalingConfig.MaximumConcurrency`).
    pub max_concurrency: usize,
    /// Records per invocation (`BatchSize`).
    pub batch_size: usize,
}

/// What the mapping did.
#[derive(Debug, Default)]
pub struct PollerStats {
    pub invocations: AtomicUsize,
    pub records: AtomicUsize,
    pub deleted: AtomicUsize,
    pub reported_failures: AtomicUsize,
    /// Invocations that died (panicked): none of their records were deleted.
    pub died: AtomicUsize,
    /// Invocations abandoned at their timeout: none of their records were deleted.
    pub timed_out: AtomicUsize,
    /// Records received again (`ApproximateReceiveCount` > 1).
    pub redelivered: AtomicUsize,
    /// Invocations running now, and the most at once so far.
    pub running: AtomicUsize,
    pub most_at_once: AtomicUsize,
}

/// A running mapping; stops when dropped.
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

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What became of one invocation.
enum Ended {
    Returned(SqsBatchResponse),
    Died,
    TimedOut,
}

struct Mapper {
    client: Client,
    queue_url: String,
    mapping: Mapping,
    invoke: Invoke,
    stats: Arc<PollerStats>,
    deletes: Deleter,
}

/// Deletes the records of finished invocations as Lambda's pollers do: several at once with
/// `DeleteMessageBatch` (at most 10 per call) when several invocations end together, one call
/// at a time. [`Deleter::delete`] returns once its record's call answered.
#[derive(Clone)]
struct Deleter {
    tx: tokio::sync::mpsc::UnboundedSender<(String, tokio::sync::oneshot::Sender<()>)>,
}

impl Deleter {
    fn start(
        client: Client,
        queue_url: String,
        stats: Arc<PollerStats>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(String, tokio::sync::oneshot::Sender<()>)>();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 10 {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let entries: Vec<_> = batch
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (receipt, _))| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(receipt)
                            .build()
                            .ok()
                    })
                    .collect();
                if let Ok(out) = client
                    .delete_message_batch()
                    .queue_url(&queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    stats
                        .deleted
                        .fetch_add(out.successful().len(), Ordering::SeqCst);
                }
                for (_, done) in batch {
                    let _ = done.send(());
                }
            }
        });
        (Self { tx }, task)
    }

    async fn delete(&self, receipt: String) {
        let (done, answered) = tokio::sync::oneshot::channel();
        if self.tx.send((receipt, done)).is_ok() {
            let _ = answered.await;
        }
    }
}

impl Mapper {
    /// Runs one invocation of `records` under the function's timeout.
    async fn invocation(&self, records: Vec<SqsMessage>) -> (Vec<SqsMessage>, Ended) {
        let stats = &self.stats;
        stats.invocations.fetch_add(1, Ordering::SeqCst);
        stats.records.fetch_add(records.len(), Ordering::SeqCst);
        let running = stats.running.fetch_add(1, Ordering::SeqCst) + 1;
        stats.most_at_once.fetch_max(running, Ordering::SeqCst);
        let mut event = SqsEvent::default();
        event.records = records.clone();
        let deadline = Instant::now() + self.mapping.timeout;
        // a task of its own, so that a dying invocation (a panic) is seen as such, and one past
        // its timeout can be abandoned (dropped where it stands, as Lambda freezes it)
        let task = tokio::spawn((self.invoke)(event, deadline));
        // dropped with the mapping (or abandoned at its timeout), the invocation dies with it
        let abort = AbortOnDrop(task.abort_handle());
        let ended = match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(response)) => Ended::Returned(response),
            Ok(Err(_)) => {
                stats.died.fetch_add(1, Ordering::SeqCst);
                Ended::Died
            }
            Err(_) => {
                stats.timed_out.fetch_add(1, Ordering::SeqCst);
                Ended::TimedOut
            }
        };
        drop(abort);
        stats.running.fetch_sub(1, Ordering::SeqCst);
        (records, ended)
    }

    /// The records of one message group, in order, `batch_size` per invocation; after a failure
    /// the rest are released (visible again, behind the failed one).
    async fn group(&self, records: Vec<SqsMessage>) {
        let batches: Vec<Vec<SqsMessage>> = records
            .chunks(self.mapping.batch_size.max(1))
            .map(<[SqsMessage]>::to_vec)
            .collect();
        let mut left = batches.into_iter();
        for batch in left.by_ref() {
            let (records, ended) = self.invocation(batch).await;
            let failed: Vec<String> = match &ended {
                Ended::Returned(response) => response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone())
                    .collect(),
                Ended::Died | Ended::TimedOut => break,
            };
            self.stats
                .reported_failures
                .fetch_add(failed.len(), Ordering::SeqCst);
            for r in &records {
                let id = r.message_id.clone().unwrap_or_default();
                if failed.contains(&id) {
                    continue;
                }
                let receipt = r.receipt_handle.clone().unwrap_or_default();
                self.deletes.delete(receipt).await;
            }
            if !failed.is_empty() {
                break;
            }
        }
        for r in left.flatten() {
            let receipt = r.receipt_handle.clone().unwrap_or_default();
            let _ = self
                .client
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await;
        }
    }
}

impl Poller {
    /// Polls `queue_url` until dropped, invoking `invoke` as `mapping` says. Refuses a
    /// visibility timeout shorter than the function's timeout, as Lambda refuses to create such
    /// a mapping (a record would come back while its invocation still runs).
    pub fn start(
        client: Client,
        queue_url: String,
        mapping: Mapping,
        invoke: Invoke,
    ) -> Result<Self> {
        anyhow::ensure!(
            Duration::from_secs(mapping.visibility_secs.max(0) as u64) >= mapping.timeout,
            "the queue's visibility timeout ({} s) is shorter than the function's timeout ({:?})",
            mapping.visibility_secs,
            mapping.timeout
        );
        let stats = Arc::new(PollerStats::default());
        let arn = format!(
            "arn:aws:sqs:us-east-1:123456789012:{}",
            queue_url.rsplit('/').next().unwrap_or_default()
        );
        let (deletes, deleter) = Deleter::start(client.clone(), queue_url.clone(), stats.clone());
        let mapper = Arc::new(Mapper {
            client,
            queue_url,
            mapping,
            invoke,
            stats: stats.clone(),
            deletes,
        });
        let slots = Arc::new(tokio::sync::Semaphore::new(mapping.max_concurrency.max(1)));
        let done = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(async move {
            // the deletes' task ends with the mapping
            let _deleter = AbortOnDrop(deleter.abort_handle());
            // the invocations in flight: aborted when the mapping is dropped
            let mut running = tokio::task::JoinSet::new();
            let mut idle = Duration::from_millis(10);
            loop {
                while running.try_join_next().is_some() {}
                // receive only what free invocations can take
                let Ok(first) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut permits = vec![first];
                while permits.len() < 10 {
                    match slots.clone().try_acquire_owned() {
                        Ok(p) => permits.push(p),
                        Err(_) => break,
                    }
                }
                let idle_mapping = running.is_empty();
                let received = mapper
                    .client
                    .receive_message()
                    .queue_url(&mapper.queue_url)
                    .max_number_of_messages(permits.len() as i32)
                    .visibility_timeout(mapper.mapping.visibility_secs)
                    .wait_time_seconds(i32::from(idle_mapping))
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await;
                let messages = match received {
                    Ok(r) => r.messages.unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                if messages.is_empty() {
                    drop(permits);
                    if !idle_mapping {
                        tokio::select! {
                            _ = done.notified() => {}
                            _ = tokio::time::sleep(idle) => {}
                        }
                        idle = (idle * 2).min(Duration::from_millis(100));
                    }
                    continue;
                }
                idle = Duration::from_millis(10);
                // one task per message group, its records in order
                let mut groups: Vec<(String, Vec<SqsMessage>)> = Vec::new();
                for m in messages {
                    let r = record(m, &arn);
                    if r.attributes
                        .get("ApproximateReceiveCount")
                        .and_then(|c| c.parse::<u32>().ok())
                        .is_some_and(|c| c > 1)
                    {
                        mapper.stats.redelivered.fetch_add(1, Ordering::SeqCst);
                    }
                    let group = r
                        .attributes
                        .get("MessageGroupId")
                        .cloned()
                        .unwrap_or_default();
                    match groups.iter_mut().find(|(g, _)| *g == group) {
                        Some((_, records)) => records.push(r),
                        None => groups.push((group, vec![r])),
                    }
                }
                for (_, records) in groups {
                    let Some(permit) = permits.pop() else { break };
                    let (mapper, done) = (mapper.clone(), done.clone());
                    running.spawn(async move {
                        mapper.group(records).await;
                        drop(permit);
                        done.notify_one();
                    });
                }
                // unused permits go back when `permits` drops
            }
        });
        Ok(Self { stats, task })
    }
}
