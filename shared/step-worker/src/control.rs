//! The one session-control service (pause, resume, stop, speed) behind the WebSocket actions
//! and the arena's REST routes. A control is one conditional `UPDATE` (it never waits for a
//! running step), announced to the session's subscribers with its own `seq`. Resume sends the
//! step that continues the chain; stop sends one too, so a paused session is finished (position
//! closed, result written) without waiting. Either message is harmless when a step is already
//! running: it carries the version read by the control, so it is deduplicated or found stale.

use std::sync::Arc;

use chrono::Utc;
use realtime::events::{Event, SessionState};
use realtime::publisher::Report;
use realtime::{Envelope, Publisher};
use sqlx::PgPool;
use store::sessions::{self, Control, Controlled, Refused};
use uuid::Uuid;

use crate::queue::{StepMessage, StepQueue};

/// Why a control could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The state changed but the step could not be sent (the watchdog re-sends it).
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// What a control did: the new state, the event announcing it and how it was delivered.
#[derive(Debug, Clone)]
pub struct Done {
    pub state: Controlled,
    pub envelope: Envelope,
    pub report: Report,
}

#[derive(Clone)]
pub struct Controls {
    pub pool: PgPool,
    pub publisher: Arc<Publisher>,
    pub queue: StepQueue,
}

impl Controls {
    /// Applies `control` to the caller's session and announces it.
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
        let payload = SessionState {
            status: state.status.clone(),
            speed: state.speed.clone(),
            reason: matches!(control, Control::Stop).then(|| "stopped by the user".into()),
        };
        let event = match control {
            Control::Pause => Event::SessionPaused(payload),
            Control::Resume => Event::SessionResumed(payload),
            Control::Stop => Event::SessionStopped(payload),
            // a speed change is announced as the state it leaves the session in
            Control::Speed(_) => match payload.status.as_str() {
                "paused" => Event::SessionPaused(payload),
                _ => Event::SessionResumed(payload),
            },
        };
        let envelope = Envelope::session(session_id, state.seq as u64, &event, Utc::now());
        let report = self
            .publisher
            .publish(session_id, std::slice::from_ref(&envelope))
            .await;
        if matches!(control, Control::Resume | Control::Stop) {
            self.queue
                .send(&StepMessage {
                    session_id,
                    user_id,
                    version: state.version,
                })
                .await?;
        }
        Ok(Ok(Done {
            state,
            envelope,
            report,
        }))
    }
}
