//! The step chain's functions under the local stack, as Lambda runs them: `alphalab serve`,
//! the benchmarks and the tests poll the steps queue (moto) with an event source mapping that
//! enforces the template's `BatchSize`, `MaximumConcurrency` and function timeout, run the
//! step-watchdog and forward-tick on timers, and feed the watchdog the dead-letter queue.

use std::sync::Arc;
use std::time::Duration;

use alphalab_devstack::aws::TemplateResources;
use alphalab_devstack::sqs::{Invoke, Mapping, Poller, StepsQueue, create_steps_queue};
use anyhow::{Context, Result};
use platform::{Env, FromEnv};

/// The visibility timeout of the local queue: 6x the step function's timeout (DESIGN 5b).
pub(crate) const VISIBILITY_SECS: u32 = 720;

/// Creates the local steps queue and its dead-letter queue (`maxReceiveCount` 5).
pub(crate) async fn create_queue(aws_endpoint: &str, name: &str) -> Result<StepsQueue> {
    let sqs = aws_sdk_sqs::Client::new(&alphalab_devstack::moto::sdk_config(aws_endpoint).await);
    create_steps_queue(&sqs, name, VISIBILITY_SECS, 5).await
}

/// The event source mapping template.yaml declares for `function`'s SQS event, with the
/// function's timeout unless `timeout` overrides it (`STEP_TIMEOUT_SECS`).
pub(crate) fn mapping(
    function: &str,
    timeout: Option<Duration>,
    visibility_secs: i32,
) -> Result<Mapping> {
    let template =
        TemplateResources::from_template(&crate::workspace_root().join("template.yaml"))?;
    let spec = template
        .mappings
        .iter()
        .find(|m| m.function == function)
        .with_context(|| format!("template.yaml has no SQS event for {function}"))?;
    Ok(Mapping {
        visibility_secs,
        timeout: timeout.unwrap_or(Duration::from_secs(spec.timeout_secs)),
        max_concurrency: spec.max_concurrency,
        batch_size: spec.batch_size,
    })
}

/// The backtest-step function as a mapping invokes it: its Lambda handler.
pub(crate) fn invoke(worker: step_worker::Worker) -> Invoke {
    Arc::new(move |event, deadline| {
        let worker = worker.clone();
        Box::pin(async move { alphalab_backtest_step::handle(&worker, event, deadline).await })
    })
}

/// Builds the step function from `env` and starts polling its queue (`STEPS_QUEUE_URL`) with
/// `mapping`.
pub(crate) async fn start(
    env: &Env<'_>,
    mapping: Mapping,
) -> Result<(Poller, step_worker::Worker)> {
    let config = alphalab_backtest_step::Config::from_env(env)?;
    let worker = alphalab_backtest_step::worker(&config).await?;
    let sqs = aws_sdk_sqs::Client::new(&config.steps.aws.sdk_config().await);
    let poller = Poller::start(
        sqs,
        config.steps.queue_url.clone(),
        mapping,
        invoke(worker.clone()),
    )?;
    Ok((poller, worker))
}

/// The step-watchdog, local: its tick every `interval`, and its dead-letter event source on
/// `dlq_url`. Both stop when the returned handles are dropped.
pub(crate) async fn start_watchdog(
    env: &Env<'_>,
    interval: Duration,
    dlq_url: &str,
) -> Result<(tokio::task::JoinHandle<()>, Poller)> {
    let config = alphalab_step_watchdog::Config::from_env(env)?;
    let watchdog = alphalab_step_watchdog::watchdog(&config).await?;
    let ticking = watchdog.clone();
    let ticks = tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = ticking.tick().await {
                tracing::warn!(error = %e, "watchdog run failed");
            }
        }
    });
    let sqs = aws_sdk_sqs::Client::new(&config.steps.aws.sdk_config().await);
    let dead: Invoke = Arc::new(move |event, _deadline| {
        let watchdog = watchdog.clone();
        Box::pin(async move { alphalab_step_watchdog::dead_letters(&watchdog, event).await })
    });
    // the dead-letter queue's visibility: 6x the watchdog's timeout (template.yaml)
    let poller = Poller::start(
        sqs,
        dlq_url.to_owned(),
        mapping("StepWatchdogFunction", None, 360)?,
        dead,
    )?;
    Ok((ticks, poller))
}

/// Sends a step to every session with work left (`alphalab serve` at start-up: the steps queue
/// lived in moto's memory, so any step in flight was lost). Each goes under a deduplication id
/// of its own; a session whose step was not lost finds it stale. Returns how many were sent.
pub(crate) async fn resume_unfinished(
    pool: &sqlx::PgPool,
    queue: &step_worker::StepQueue,
) -> Result<usize> {
    let sessions = store::steps::unfinished(pool).await?;
    for (session_id, user_id, version) in &sessions {
        queue
            .nudge(&step_worker::StepMessage {
                session_id: *session_id,
                user_id: *user_id,
                version: *version,
            })
            .await?;
    }
    Ok(sessions.len())
}

/// forward-tick, local: its Lambda handler every `interval` (EventBridge's `rate(1 minute)` in
/// AWS), each run ending before the function's timeout in template.yaml, as Lambda's would; the
/// next run starts only after the last one ended (the template's reserved concurrency of 1).
/// Stops when the returned handle is dropped (aborted).
pub(crate) async fn start_tick(env: &Env<'_>, interval: Duration) -> Result<TickHandle> {
    let config = alphalab_forward_tick::Config::from_env(env)?;
    let ticker = alphalab_forward_tick::ticker(&config).await?;
    let template =
        TemplateResources::from_template(&crate::workspace_root().join("template.yaml"))?;
    let timeout = Duration::from_secs(
        template
            .timeouts
            .get("ForwardTickFunction")
            .copied()
            .context("template.yaml has no ForwardTickFunction timeout")?,
    );
    let task = tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let deadline = tokio::time::Instant::now() + timeout;
            let event = serde_json::json!({
                "version": "0", "id": uuid::Uuid::new_v4().to_string(),
                "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "000000000000", "time": chrono::Utc::now().to_rfc3339(),
                "region": "us-east-1", "resources": [], "detail": {}
            });
            let run = alphalab_forward_tick::handle(&ticker, event, deadline);
            match tokio::time::timeout_at(deadline, run).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "forward tick failed"),
                Err(_) => tracing::warn!("forward tick timed out (the function's timeout)"),
            }
        }
    });
    Ok(TickHandle(task))
}

/// The local forward-tick schedule; dropping it stops it.
pub(crate) struct TickHandle(tokio::task::JoinHandle<()>);

impl Drop for TickHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}
