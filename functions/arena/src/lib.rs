//! The arena endpoint group (DESIGN section 3), backtests and forward tests:
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/arena/backtest/start` | 201 `{"session", "subscribe"}`: stored and its first step queued; nothing slow happens here |
//! | `POST /api/arena/forward/start` | 201 `{"session", "subscribe"}`: stored and its first step queued (no exchange call here) |
//! | `GET /api/arena/forward/active` | 200 `{"sessions": [...]}`: the caller's forward sessions pending, running or stopping |
//! | `POST /api/arena/forward/{id}/stop` | 200 `{"session"}` `stopping`: its step finalises it `completed` |
//! | `GET /api/arena/sessions` | 200 `{"sessions": [...], "next_cursor"}`, newest first; `limit` (1..100, 20), `cursor` |
//! | `GET /api/arena/sessions/{id}` | 200 `{"session"}`: status, progress, live stats, `result` once finished |
//! | `POST /api/arena/backtest/{id}/pause` (`/resume`, `/stop`) | 200 `{"session"}` in its new state |
//! | `POST /api/arena/backtest/{id}/speed` | body `{"speed"}`; 200 `{"session"}` |
//!
//! The controls are `step_worker::Controls`, the service the WebSocket actions use too: each
//! answers at once (a running step reads the change between candles) and its event reaches
//! subscribers through the session's step, in seq order. The start rules are
//! `step_worker::plan::plan_backtest` and `plan_forward`; this crate routes. Another user's
//! session is a 404, controls included. A forward session is not paused, resumed or sped up
//! (409 `not_supported`).

use axum::Router;
use axum::extract::{FromRef, State as AxumState};
use axum::response::IntoResponse;
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{Json, Path, Query};
use platform::{ApiConfig, ApiError, ApiResult, ApiState, ConfigError, Env, FieldError, FromEnv};
use serde::{Deserialize, Serialize};
use step_worker::plan::{Facts, StartBacktest, StartForward, plan_backtest, plan_forward};
use step_worker::{Controls, StepMessage, StepQueue, StepsConfig};
use store::sessions::{self, Control, NotStarted, Refused, Session};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The variables this function reads: the API's, `STEPS_QUEUE_URL`,
/// `MAX_ACTIVE_SESSIONS_PER_USER` (1..1000, default 5: backtests pending, running or paused at
/// once per user) and `FORWARD_MAX_ACTIVE` (1..1000, default 10: forward sessions pending,
/// running or stopping at once per user).
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub steps: StepsConfig,
    pub max_active_sessions: i64,
    pub forward_max_active: i64,
}

impl FromEnv for Config {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            api: ApiConfig::from_env(env)?,
            steps: StepsConfig::from_env(env)?,
            max_active_sessions: env.number("MAX_ACTIVE_SESSIONS_PER_USER", 5, 1..=1_000)?,
            forward_max_active: env.number("FORWARD_MAX_ACTIVE", 10, 1..=1_000)?,
        })
    }
}

/// What the handlers need, built once per cold start.
#[derive(Clone, FromRef)]
pub struct State {
    pub api: ApiState,
    pub controls: Controls,
    #[from_ref(skip)]
    pub max_active_sessions: i64,
    #[from_ref(skip)]
    pub forward_max_active: i64,
}

impl State {
    pub async fn new(config: &Config) -> Result<Self, sqlx::Error> {
        let api = ApiState::new(&config.api).await?;
        let controls = Controls {
            pool: api.pool.clone(),
            queue: StepQueue::new(&config.steps).await,
        };
        Ok(Self {
            api,
            controls,
            max_active_sessions: config.max_active_sessions,
            forward_max_active: config.forward_max_active,
        })
    }
}

/// The routes with their OpenAPI operations.
pub fn api() -> OpenApiRouter<State> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(stop))
        .routes(routes!(speed))
        .routes(routes!(forward_start))
        .routes(routes!(forward_active))
        .routes(routes!(forward_stop))
}

/// The routes with their state, unfinished: the local tool merges them with other functions'.
pub fn routes(state: State) -> Router {
    api().split_for_parts().0.with_state(state)
}

/// The service Lambda serves.
pub fn router(state: State) -> Router {
    platform::http::service(routes(state), ())
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> OpenApi {
    api().split_for_parts().1
}

/// What a client sends over the WebSocket to watch the session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Subscribe {
    pub action: &'static str,
    pub session_id: Uuid,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StartedResponse {
    pub session: Session,
    pub subscribe: Subscribe,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionResponse {
    pub session: Session,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionsResponse {
    pub sessions: Vec<Session>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1..100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpeedBody {
    /// `slow`, `normal`, `fast` or `instant`.
    #[schema(pattern = "^(slow|normal|fast|instant)$")]
    pub speed: String,
}

/// Starts a backtest: validates, stores the session and sends its first step.
#[utoipa::path(post, path = "/api/arena/backtest/start", tag = "arena", security(("bearer" = [])),
    request_body = StartBacktest,
    responses((status = 201, body = StartedResponse), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`session_limit_reached`: the user has MAX_ACTIVE_SESSIONS_PER_USER sessions pending, running or paused"),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn start(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Json(body): Json<StartBacktest>,
) -> ApiResult<impl IntoResponse + use<>> {
    let facts = Facts::load(&state.api.pool, user.id, body.agent_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let new = plan_backtest(&body, &facts).map_err(ApiError::Validation)?;
    let session = match sessions::create(&state.api.pool, user.id, &new, state.max_active_sessions)
        .await?
    {
        Ok(session) => session,
        Err(NotStarted::TooManyActive { active }) => {
            return Err(ApiError::LimitReached {
                code: "session_limit_reached",
                message: format!(
                    "you have {active} backtests pending, running or paused (at most {}): stop or finish one first",
                    state.max_active_sessions
                ),
            });
        }
    };
    launch(&state, &user, session).await
}

/// Sends a stored session's first step; a session whose step cannot be queued is removed (the
/// client may simply retry).
async fn launch(
    state: &State,
    user: &AuthUser,
    session: Session,
) -> ApiResult<impl IntoResponse + use<>> {
    let first = StepMessage {
        session_id: session.id,
        user_id: user.id,
        version: 0,
    };
    if let Err(e) = state.controls.queue.send_retrying(&first).await {
        // nothing half-done: the session goes, and the client may simply retry
        sessions::discard_unstarted(&state.api.pool, user.id, session.id).await?;
        return Err(ApiError::Unavailable(e.to_string()));
    }
    tracing::info!(session_id = %session.id, kind = %session.kind, "session started");
    let subscribe = Subscribe {
        action: "subscribe",
        session_id: session.id,
    };
    Ok(platform::http::created(
        format!("/api/arena/sessions/{}", session.id),
        Json(StartedResponse { session, subscribe }),
    ))
}

/// The caller's sessions, newest first.
#[utoipa::path(get, path = "/api/arena/sessions", tag = "arena", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = SessionsResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn list(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<SessionsResponse>> {
    let (limit, cursor) = platform::extract::page(query.limit, query.cursor.as_deref())?;
    let (sessions, next) = sessions::list(&api.pool, user.id, cursor.as_ref(), limit).await?;
    Ok(Json(SessionsResponse {
        sessions,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// One of the caller's sessions.
#[utoipa::path(get, path = "/api/arena/sessions/{id}", tag = "arena", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SessionResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(session_id = %id))]
async fn get_one(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SessionResponse>> {
    let session = sessions::find(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    Ok(Json(SessionResponse { session }))
}

async fn control(
    state: &State,
    user: &AuthUser,
    id: Uuid,
    control: Control,
) -> ApiResult<Json<SessionResponse>> {
    let done = state
        .controls
        .apply(user.id, id, &control)
        .await
        .map_err(|e| match e {
            step_worker::control::ControlError::Database(e) => ApiError::from(e),
            // the control took effect; its step was not sent: a retry (resume and stop are
            // idempotent) or the watchdog sends it
            step_worker::control::ControlError::Queue(e) => ApiError::Unavailable(e.to_string()),
        })?;
    match done {
        Ok(_) => {}
        Err(Refused::NotFound) => return Err(ApiError::NotFound("session")),
        Err(Refused::WrongState { status }) => {
            return Err(ApiError::Conflict {
                field: None,
                message: format!("cannot {} a session that is {status}", control.verb()),
            });
        }
        Err(Refused::NotSupported) => {
            return Err(ApiError::LimitReached {
                code: "not_supported",
                message: format!(
                    "cannot {} a forward session: it decides each candle when it closes (stop it instead)",
                    control.verb()
                ),
            });
        }
    }
    let session = sessions::find(&state.api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    Ok(Json(SessionResponse { session }))
}

/// Pauses a pending or running session (the running step stops at its next candle).
#[utoipa::path(post, path = "/api/arena/backtest/{id}/pause", tag = "arena", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SessionResponse), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(session_id = %id))]
async fn pause(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SessionResponse>> {
    control(&state, &user, id, Control::Pause).await
}

/// Resumes a paused session (its next step is sent). Resuming a session that runs already
/// changes nothing and sends its step again: a retry after a failure is safe.
#[utoipa::path(post, path = "/api/arena/backtest/{id}/resume", tag = "arena", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SessionResponse), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(session_id = %id))]
async fn resume(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SessionResponse>> {
    control(&state, &user, id, Control::Resume).await
}

/// Stops a session: the step closes any position at the last close and writes the result.
/// Stopping a session that is stopping already sends its step again.
#[utoipa::path(post, path = "/api/arena/backtest/{id}/stop", tag = "arena", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SessionResponse), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(session_id = %id))]
async fn stop(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SessionResponse>> {
    control(&state, &user, id, Control::Stop).await
}

/// Changes the pace of a session.
#[utoipa::path(post, path = "/api/arena/backtest/{id}/speed", tag = "arena", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = SpeedBody,
    responses((status = 200, body = SessionResponse), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(session_id = %id))]
async fn speed(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<SpeedBody>,
) -> ApiResult<Json<SessionResponse>> {
    if !sessions::SPEEDS.contains(&body.speed.as_str()) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "speed",
            format!("must be one of {}", sessions::SPEEDS.join(", ")),
        )]));
    }
    control(&state, &user, id, Control::Speed(body.speed)).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActiveResponse {
    /// Newest first; at most `FORWARD_MAX_ACTIVE`.
    pub sessions: Vec<Session>,
}

/// Starts a forward test: validates, stores the session and sends its first step (which reads
/// the exchange's clock, anchors the session and loads its warm-up).
#[utoipa::path(post, path = "/api/arena/forward/start", tag = "arena", security(("bearer" = [])),
    request_body = StartForward,
    responses((status = 201, body = StartedResponse), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`forward_limit_reached`: the user has FORWARD_MAX_ACTIVE forward sessions pending, running or stopping"),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn forward_start(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Json(body): Json<StartForward>,
) -> ApiResult<impl IntoResponse + use<>> {
    let facts = Facts::load(&state.api.pool, user.id, body.agent_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let new = plan_forward(&body, &facts).map_err(ApiError::Validation)?;
    let session = match sessions::create(&state.api.pool, user.id, &new, state.forward_max_active)
        .await?
    {
        Ok(session) => session,
        Err(NotStarted::TooManyActive { active }) => {
            return Err(ApiError::LimitReached {
                code: "forward_limit_reached",
                message: format!(
                    "you have {active} forward tests pending, running or stopping (at most {}): stop one first",
                    state.forward_max_active
                ),
            });
        }
    };
    launch(&state, &user, session).await
}

/// The caller's forward sessions pending, running or stopping, newest first.
#[utoipa::path(get, path = "/api/arena/forward/active", tag = "arena", security(("bearer" = [])),
    responses((status = 200, body = ActiveResponse), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn forward_active(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
) -> ApiResult<Json<ActiveResponse>> {
    let sessions = sessions::active_forward(&api.pool, user.id).await?;
    Ok(Json(ActiveResponse { sessions }))
}

/// Stops a forward session: 200 at once with status `stopping`; its next step closes any
/// position at the last decided candle's close, writes the result and ends it `completed`.
/// Stopping a session that is stopping already sends its step again.
#[utoipa::path(post, path = "/api/arena/forward/{id}/stop", tag = "arena", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SessionResponse), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(session_id = %id))]
async fn forward_stop(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SessionResponse>> {
    // a backtest's id is not a forward session
    match sessions::find(&state.api.pool, user.id, id).await? {
        Some(s) if s.kind == "forward" => {}
        _ => return Err(ApiError::NotFound("session")),
    }
    control(&state, &user, id, Control::Stop).await
}
