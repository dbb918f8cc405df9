//! SQS FIFO batches (`ReportBatchItemFailures`). Records of one batch are processed strictly in
//! order; on the first failure that record and every later one are reported as
//! `batchItemFailures` and not processed, so the queue redelivers them in their order (a FIFO
//! queue must not see a later message succeed before an earlier one; PLATFORM.md, SQS). Every
//! record's handler gets the invocation's deadline (Lambda's `Context::deadline`): records of a
//! batch share it, which is why the steps function takes one record per invocation.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{LambdaEvent, service_fn};
use tokio::time::Instant;

/// The instant of a Lambda deadline given in milliseconds since the epoch.
pub fn deadline_of(epoch_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Instant::now() + Duration::from_millis(epoch_ms.saturating_sub(now_ms))
}

/// Processes `event`'s records in order with `handle` (each given the invocation's `deadline`)
/// and reports the failed suffix.
pub async fn handle_fifo_batch<F, Fut, E>(
    event: SqsEvent,
    deadline: Instant,
    mut handle: F,
) -> SqsBatchResponse
where
    F: FnMut(SqsMessage, Instant) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut failures = Vec::new();
    let mut failed = false;
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        if !failed && let Err(err) = handle(record, deadline).await {
            tracing::warn!(message_id = %id, error = %err, "step failed; it and the rest of the batch go back to the queue");
            failed = true;
        }
        if failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failures.push(failure);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

/// Runs an SQS batch handler under the Lambda runtime: `handle` gets the event and the
/// invocation's deadline.
pub async fn serve<F, Fut>(handle: F) -> Result<(), super::Error>
where
    F: Fn(SqsEvent, Instant) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = SqsBatchResponse> + Send,
{
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handle = handle.clone();
        let deadline = deadline_of(event.context.deadline);
        async move { Ok::<_, super::Error>(handle(event.payload, deadline).await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: &[&str]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = ids
            .iter()
            .map(|id| {
                let mut m = SqsMessage::default();
                m.message_id = Some((*id).into());
                m.body = Some(format!("body-{id}"));
                m
            })
            .collect();
        event
    }

    fn reported(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn records_run_in_order_and_the_first_failure_reports_itself_and_every_later_one() {
        let mut seen = Vec::new();
        let response = handle_fifo_batch(batch(&["a", "b", "c", "d"]), Instant::now(), |m, _| {
            let body = m.body.unwrap_or_default();
            seen.push(body.clone());
            async move {
                if body == "body-b" {
                    Err("model timed out")
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(seen, ["body-a", "body-b"], "nothing after the failure runs");
        assert_eq!(reported(&response), ["b", "c", "d"]);
    }

    #[tokio::test]
    async fn a_clean_batch_reports_nothing() {
        let response = handle_fifo_batch(batch(&["a", "b"]), Instant::now(), |_, _| async {
            Ok::<_, String>(())
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
        // the wire shape Lambda reads
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json, serde_json::json!({"batchItemFailures": []}));
    }
}
