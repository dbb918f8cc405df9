//! Scheduled events (EventBridge rules such as `rate(1 minute)`): the handler gets the time the
//! schedule fired, which is the clock a scheduled job should use (a retried invocation keeps it).

use std::future::Future;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lambda_runtime::{LambdaEvent, service_fn};

/// One firing of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// When the schedule fired (the event's `time`).
    pub time: DateTime<Utc>,
    /// The event id (the same on a retried delivery).
    pub id: String,
}

/// Reads a scheduled event and runs `handle` with its tick.
pub async fn handle_tick<F, Fut, E>(event: EventBridgeEvent, handle: F) -> Result<(), E>
where
    F: FnOnce(Tick) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let tick = Tick {
        time: event.time.unwrap_or_else(Utc::now),
        id: event.id.unwrap_or_default(),
    };
    tracing::info!(tick = %tick.time, id = %tick.id, "scheduled run");
    handle(tick).await
}

/// Runs a scheduled handler under the Lambda runtime; an error fails the invocation (EventBridge
/// retries it).
pub async fn serve<F, Fut, E>(handle: F) -> Result<(), super::Error>
where
    F: Fn(Tick) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<super::Error>,
{
    lambda_runtime::run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| {
        let handle = handle.clone();
        async move { handle_tick(event.payload, handle).await.map_err(Into::into) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scheduled_event_gives_its_firing_time() {
        // the event EventBridge sends for a schedule rule
        let event: EventBridgeEvent = serde_json::from_value(serde_json::json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-12-01T12:34:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/forward-tick"],
            "detail": {}
        }))
        .unwrap();
        let mut got = None;
        handle_tick(event, |tick| {
            got = Some(tick);
            async { Ok::<_, String>(()) }
        })
        .await
        .unwrap();
        let tick = got.unwrap();
        assert_eq!(tick.time.to_rfc3339(), "2026-12-01T12:34:00+00:00");
        assert_eq!(tick.id, "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa");
    }
}
