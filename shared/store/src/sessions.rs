//! Test sessions: ownership checks and the one session-control service that the WebSocket actions
//! and the arena's REST routes share (pause, resume, stop, speed). A control is one conditional
//! `UPDATE` on the sessions table: it never waits for a running step (the step reads these
//! fields between candles), and it takes the session's next event number in the same statement.

use sqlx::PgPool;
use uuid::Uuid;

pub const SPEEDS: &[&str] = &["slow", "normal", "fast", "instant"];

/// What a client asks of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Stop,
    Speed(String),
}

impl Control {
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Stop => "stop",
            Self::Speed(_) => "change the speed of",
        }
    }
}

/// A session's state after a control, and the sequence number of the event that announces it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Controlled {
    pub status: String,
    pub speed: String,
    pub seq: i64,
}

/// Why a control did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not the caller's, or no such session.
    NotFound,
    /// The session's status does not allow it (`completed` cannot be paused, ...).
    WrongState { status: String },
}

/// Whether `session_id` is one of the caller's sessions.
pub async fn owns(pool: &PgPool, user_id: Uuid, session_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM test_sessions WHERE user_id = $1 AND id = $2)")
        .bind(user_id)
        .bind(session_id)
        .fetch_one(pool)
        .await
}

/// Applies `control` to the caller's session when its status allows it.
pub async fn control(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
    control: &Control,
) -> Result<Result<Controlled, Refused>, sqlx::Error> {
    let (sql, speed): (&'static str, Option<&str>) = match control {
        Control::Pause => (
            "UPDATE test_sessions SET status = 'paused', event_seq = event_seq + 1, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND status IN ('pending', 'running')
             RETURNING status, speed, event_seq AS seq",
            None,
        ),
        Control::Resume => (
            "UPDATE test_sessions SET status = 'running', event_seq = event_seq + 1, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND status = 'paused'
             RETURNING status, speed, event_seq AS seq",
            None,
        ),
        Control::Stop => (
            "UPDATE test_sessions SET status = 'stopped', failure_reason = 'stopped by the user',
                 completed_at = now(), event_seq = event_seq + 1, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND status IN ('pending', 'running', 'paused')
             RETURNING status, speed, event_seq AS seq",
            None,
        ),
        Control::Speed(speed) => (
            "UPDATE test_sessions SET speed = $3, event_seq = event_seq + 1, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND status IN ('pending', 'running', 'paused')
             RETURNING status, speed, event_seq AS seq",
            Some(speed.as_str()),
        ),
    };
    let mut query = sqlx::query_as(sql).bind(user_id).bind(session_id);
    if let Some(speed) = speed {
        query = query.bind(speed);
    }
    let updated: Option<Controlled> = query.fetch_optional(pool).await?;
    if let Some(done) = updated {
        return Ok(Ok(done));
    }
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM test_sessions WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(session_id)
            .fetch_optional(pool)
            .await?;
    Ok(Err(match status {
        None => Refused::NotFound,
        Some(status) => Refused::WrongState { status },
    }))
}
