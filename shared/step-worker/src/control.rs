//! The one session-control service (pause, resume, stop, speed) behind the WebSocket actions
//! and the arena's REST routes. A control is one conditional `UPDATE` (it never waits for a
//! running step) that numbers the event announcing it and files it in the session's outbox;
//! the session's step publishes it, in seq order with its own events (a control published from
//! here could overtake a step's publish).
//!
//! A step is sent when one must run: resume and stop always (a stopped session is finished by a
//! step, at once even when paused), and any control of a paused session (its step publishes the
//! event and finds the session still paused). A running or pending session's step, queued or
//! under way, publishes the event at its next commit. The send is tried three times; when it
//! still fails the control has taken effect and the error says so: the client's retry (resume
//! and stop are idempotent) or the watchdog sends the step. Either message is harmless when a
//! step is already running: it carries the version read by the control, so it is deduplicated
//! or found stale.

use realtime::Envelope;
use sqlx::PgPool;
use store::sessions::{self, Control, Controlled, Refused};
use uuid::Uuid;

use crate::queue::{StepMessage, StepQueue};

/// Why a control could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The state changed but the step could not be sent (a retry of the control, or the
    /// watchdog, sends it).
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// What a control did: the new state and the event announcing it (`None` when a resume or stop
/// repeated changed nothing).
#[derive(Debug, Clone)]
pub struct Done {
    pub state: Controlled,
    pub envelope: Option<Envelope>,
}

#[derive(Clone)]
pub struct Controls {
    pub pool: PgPool,
    pub queue: StepQueue,
}

impl Controls {
    /// Applies `control` to the caller's session.
    pub async fn apply(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        control: &Control,
    ) -> Result<Result<Done, Refused>, ControlError> {
        let state = match sessions::control(&self.pool, user_id, session_id, control).await? {
            Ok(state) => state,
            Err(refused) => return Ok(Err(refused)),
        };
        let envelope = state
            .envelope
            .clone()
            .and_then(|e| serde_json::from_value(e).ok());
        if matches!(control, Control::Resume | Control::Stop) || state.was == "paused" {
            self.queue
                .send_retrying(&StepMessage {
                    session_id,
                    user_id,
                    version: state.version,
                })
                .await?;
        }
        Ok(Ok(Done { state, envelope }))
    }
}
