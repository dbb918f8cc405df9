//! The step chain's safety net (DESIGN section 5): the `step-watchdog` function.
//!
//! - Every minute ([`Watchdog::tick`]; locally every `--watchdog-interval` seconds) it re-sends a
//!   step for every session with work left (pending, running, or stopped but not finished) that
//!   has not advanced for `STEP_STALL_SECS` (900 s: longer than the queue's visibility timeout,
//!   so it never races a normal redelivery): a message lost altogether, a send that failed after
//!   a commit or a control. Its message is a step message like the lost one, under a
//!   deduplication id of its own; the version protocol makes any duplicate harmless.
//! - It consumes the steps dead-letter queue ([`Watchdog::dead_letter`]): a message that is still
//!   its session's current one ends the session `failed` with a reason for people (its steps
//!   died or timed out on every delivery); a closed chain's message has its successor re-sent;
//!   a stale one is dropped.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use config::{ConfigError, Env, FromEnv};
use realtime::Publisher;
use sqlx::PgPool;

use crate::queue::{StepMessage, StepQueue};
use crate::reconcile::{Action, reconcile};
use crate::worker::{StepError, chain_of};

/// `STEP_STALL_SECS` (default 900): how long a session with work left may go without advancing
/// before the watchdog re-sends its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogConfig {
    pub stall: Duration,
}

impl FromEnv for WatchdogConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            stall: Duration::from_secs(env.number("STEP_STALL_SECS", 900, 1..=86_400)?),
        })
    }
}

/// Sessions re-sent per run, at most (the rest wait for the next minute).
const BATCH: i64 = 500;

#[derive(Clone)]
pub struct Watchdog {
    pub pool: PgPool,
    pub queue: StepQueue,
    pub publisher: Arc<Publisher>,
    pub config: WatchdogConfig,
}

impl Watchdog {
    /// One run: re-sends the step of every stalled session; returns how many were sent.
    pub async fn tick(&self) -> Result<usize, sqlx::Error> {
        let stalled =
            store::steps::claim_stalled(&self.pool, self.config.stall.as_secs() as i64, BATCH)
                .await?;
        let mut sent = 0;
        for s in stalled {
            let message = StepMessage {
                session_id: s.id,
                user_id: s.user_id,
                version: s.version,
            };
            match self.queue.nudge(&message).await {
                Ok(()) => {
                    sent += 1;
                    tracing::warn!(session_id = %s.id, version = s.version, "stalled session: its step was sent again");
                }
                Err(e) => {
                    tracing::error!(session_id = %s.id, error = %e, "could not re-send a stalled session's step");
                    store::steps::unclaim(&self.pool, s.user_id, s.id).await?;
                }
            }
        }
        Ok(sent)
    }

    /// One record of the steps dead-letter queue.
    pub async fn dead_letter(&self, record: SqsMessage) -> Result<(), StepError> {
        let Some(message) = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<StepMessage>(b).ok())
        else {
            tracing::error!(message_id = ?record.message_id, "unreadable dead letter dropped");
            return Ok(());
        };
        let Some(s) = store::steps::load(&self.pool, message.user_id, message.session_id).await?
        else {
            return Ok(());
        };
        match reconcile(message.version, &chain_of(&s)) {
            Action::Run | Action::Resume => {
                let id = record.message_id.clone().unwrap_or_default();
                let reason = crate::reasons::dead_lettered(&id);
                crate::commit::fail_current(&self.pool, &self.publisher, &message, &reason).await?;
            }
            Action::ResendSuccessor => {
                self.queue
                    .nudge(&StepMessage {
                        version: s.version,
                        ..message
                    })
                    .await?;
            }
            Action::Stale | Action::Over => {
                tracing::info!(session_id = %message.session_id, "a stale dead letter dropped");
            }
        }
        Ok(())
    }
}
