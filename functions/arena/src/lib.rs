//! The arena endpoint group (DESIGN section 3), backtests:
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/arena/backtest/start` | 201 `{"session", "subscribe"}`: stored and its first step queued; nothing slow happens here |
//! | `GET /api/arena/sessions` | 200 `{"sessions": [...], "next_cursor"}`, newest first; `limit` (1..100, 20), `cursor` |
//! | `GET /api/arena/sessions/{id}` | 200 `{"session"}`: status, progress, live stats, `result` once finished |
//! | `POST /api/arena/backtest/{id}/pause` (`/resume`, `/stop`) | 200 `{"session"}` in its new state |
//! | `POST /api/arena/backtest/{id}/speed` | body `{"speed"}`; 200 `{"session"}` |
//!
//! The controls are `step_worker::Controls`, the service the WebSocket actions use too: each answers
//! at once (a running step reads the change between candles) and is announced to subscribers.
//! Another user's session is a 404, controls included.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State as AxumState};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use engine::{EngineConfig, Mode, Timeframe};
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{Json, Path, Query};
use platform::{ApiConfig, ApiError, ApiResult, ApiState, ConfigError, Env, FieldError, FromEnv};
use realtime::{Publisher, RealtimeConfig};
use serde::{Deserialize, Serialize};
use step_worker::{Controls, StepMessage, StepQueue, StepsConfig};
use store::sessions::{self, Control, NewSession, Refused, Session};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// At most this many candles per backtest.
pub const MAX_CANDLES: i64 = 50_000;
/// The largest starting capital accepted.
pub const MAX_CAPITAL: f64 = 1e9;

/// The variables this function reads: the API's, the WebSocket publisher's, `STEPS_QUEUE_URL`.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub realtime: RealtimeConfig,
    pub steps: StepsConfig,
}

impl FromEnv for Config {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            api: ApiConfig::from_env(env)?,
            realtime: RealtimeConfig::from_env(env)?,
            steps: StepsConfig::from_env(env)?,
        })
    }
}

/// What the handlers need, built once per cold start.
#[derive(Clone, FromRef)]
pub struct State {
    pub api: ApiState,
    pub controls: Controls,
}

impl State {
    pub async fn new(config: &Config) -> Result<Self, sqlx::Error> {
        let api = ApiState::new(&config.api).await?;
        let controls = Controls {
            pool: api.pool.clone(),
            publisher: Arc::new(Publisher::new(&config.realtime).await),
            queue: StepQueue::new(&config.steps).await,
        };
        Ok(Self { api, controls })
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

/// A backtest to start. Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBacktest {
    /// One of the caller's live agents.
    pub agent_id: Uuid,
    /// `BTCUSDT` or `ETHUSDT`.
    pub asset: String,
    /// `1m`, `5m`, `15m`, `1h`, `4h` or `1d`.
    pub timeframe: String,
    /// RFC 3339 or `YYYY-MM-DD` (UTC midnight); candles open at or after it.
    pub start_date: String,
    /// RFC 3339 or `YYYY-MM-DD`; candles open before it.
    pub end_date: String,
    /// Default: the user's `default_capital`.
    pub initial_capital: Option<f64>,
    /// `slow`, `normal` (default), `fast` or `instant`.
    pub speed: Option<String>,
    /// Fee per fill, basis points (default 10).
    pub fee_bps: Option<f64>,
    /// Slippage per fill, basis points (default 5).
    pub slippage_bps: Option<f64>,
    /// Maximum leverage, 1..the user's `max_leverage` (default 1).
    pub leverage: Option<u8>,
    /// Forced stop-loss, loss at the stop capped at 2 % of equity (default false).
    pub safety_mode: Option<bool>,
    /// Candles a model is asked about at once, 1..16 (default 4): speculative lookahead, the
    /// same result as 1, faster.
    pub lookahead: Option<u32>,
    /// Ask the model again instead of reusing answers to identical requests of earlier runs
    /// (default false).
    pub fresh_decisions: Option<bool>,
    /// USD the model may cost; the session stops (`budget`) before a call could exceed it.
    pub budget_usd: Option<f64>,
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
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1..100 (default 20).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpeedBody {
    /// `slow`, `normal`, `fast` or `instant`.
    pub speed: String,
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339.
fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The first candle Binance has of each supported pair (both listed on 2017-08-17).
fn listed_since(asset: &str) -> Option<DateTime<Utc>> {
    match asset {
        "BTCUSDT" | "ETHUSDT" => parse_date("2017-08-17"),
        _ => None,
    }
}

/// Everything that makes a start body valid, in one pass: every invalid field is named.
async fn validate(
    api: &ApiState,
    user_id: Uuid,
    body: &StartBacktest,
) -> ApiResult<Result<NewSession, Vec<FieldError>>> {
    let mut errors = Vec::new();
    let settings = store::users::settings(&api.pool, user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let agent = store::agents::find(&api.pool, user_id, body.agent_id).await?;
    match &agent {
        None => errors.push(FieldError::new("agent_id", "agent not found")),
        Some(a) if a.archived_at.is_some() => errors.push(FieldError::new(
            "agent_id",
            "the agent is archived; duplicate it to test it again",
        )),
        Some(a) if engine::baseline::Kind::from_model(&a.model).is_none() => {
            match store::api_keys::for_session(&api.pool, user_id, a.api_key_id).await? {
                None => errors.push(FieldError::new(
                    "agent_id",
                    "the agent needs an OpenRouter key: add one (POST /api/api-keys) or set the agent's api_key_id",
                )),
                Some(key) if matches!(key.status.as_str(), "invalid" | "no_credits") => errors
                    .push(FieldError::new(
                        "agent_id",
                        format!(
                            "the agent's OpenRouter key is {}{}; validate it again or use another key",
                            key.status,
                            key.status_reason.map(|r| format!(" ({r})")).unwrap_or_default()
                        ),
                    )),
                Some(_) => {}
            }
        }
        Some(_) => {}
    }
    if !store::SUPPORTED_ASSETS.contains(&body.asset.as_str()) {
        errors.push(FieldError::new(
            "asset",
            format!("must be one of {}", store::SUPPORTED_ASSETS.join(", ")),
        ));
    }
    let timeframe = Timeframe::parse(&body.timeframe);
    if timeframe.is_none() {
        errors.push(FieldError::new(
            "timeframe",
            format!("must be one of {}", store::SUPPORTED_TIMEFRAMES.join(", ")),
        ));
    }
    let start = parse_date(&body.start_date);
    let end = parse_date(&body.end_date);
    if start.is_none() {
        errors.push(FieldError::new(
            "start_date",
            "must be RFC 3339 or YYYY-MM-DD",
        ));
    }
    if end.is_none() {
        errors.push(FieldError::new(
            "end_date",
            "must be RFC 3339 or YYYY-MM-DD",
        ));
    }
    let mut total = 0;
    if let (Some(start), Some(end)) = (start, end) {
        if end <= start {
            errors.push(FieldError::new("end_date", "must be after start_date"));
        } else if end > Utc::now() {
            errors.push(FieldError::new("end_date", "must not be in the future"));
        }
        if let Some(listed) = listed_since(&body.asset)
            && start < listed
        {
            errors.push(FieldError::new(
                "start_date",
                format!(
                    "{} has data from {} on",
                    body.asset,
                    listed.format("%Y-%m-%d")
                ),
            ));
        }
        if let Some(tf) = timeframe
            && end > start
            && end <= Utc::now()
        {
            let span = (end - start).num_milliseconds();
            total = (span + tf.millis() - 1) / tf.millis();
            if total > MAX_CANDLES {
                errors.push(FieldError::new(
                    "end_date",
                    format!(
                        "the range holds {total} {} candles; at most {MAX_CANDLES}",
                        tf.as_str()
                    ),
                ));
            }
        }
    }
    let capital = body.initial_capital.unwrap_or(settings.default_capital);
    if !(capital.is_finite() && capital > 0.0 && capital <= MAX_CAPITAL) {
        errors.push(FieldError::new(
            "initial_capital",
            format!("must be greater than 0 and at most {MAX_CAPITAL}"),
        ));
    }
    let speed = body.speed.clone().unwrap_or_else(|| "normal".into());
    if !sessions::SPEEDS.contains(&speed.as_str()) {
        errors.push(FieldError::new(
            "speed",
            format!("must be one of {}", sessions::SPEEDS.join(", ")),
        ));
    }
    let fee = body.fee_bps.unwrap_or(engine::rules::DEFAULT_FEE_BPS);
    if !(fee.is_finite() && (0.0..=1000.0).contains(&fee)) {
        errors.push(FieldError::new("fee_bps", "must be between 0 and 1000"));
    }
    let slippage = body
        .slippage_bps
        .unwrap_or(engine::rules::DEFAULT_SLIPPAGE_BPS);
    if !(slippage.is_finite() && (0.0..=1000.0).contains(&slippage)) {
        errors.push(FieldError::new(
            "slippage_bps",
            "must be between 0 and 1000",
        ));
    }
    let leverage = body.leverage.unwrap_or(1);
    let max_leverage = settings.max_leverage.clamp(1, 5) as u8;
    if !(1..=max_leverage).contains(&leverage) {
        errors.push(FieldError::new(
            "leverage",
            format!("must be between 1 and your max_leverage setting ({max_leverage})"),
        ));
    }
    let lookahead = body
        .lookahead
        .unwrap_or(step_worker::worker::DEFAULT_LOOKAHEAD as u32);
    if !(1..=step_worker::worker::MAX_LOOKAHEAD as u32).contains(&lookahead) {
        errors.push(FieldError::new(
            "lookahead",
            format!(
                "must be between 1 and {}",
                step_worker::worker::MAX_LOOKAHEAD
            ),
        ));
    }
    if let Some(budget) = body.budget_usd
        && !(budget.is_finite() && budget > 0.0)
    {
        errors.push(FieldError::new(
            "budget_usd",
            "must be a positive amount of USD",
        ));
    }
    let (Some(agent), Some(timeframe), Some(start), Some(end), true) =
        (agent, timeframe, start, end, errors.is_empty())
    else {
        return Ok(Err(errors));
    };
    let mut config = EngineConfig::new(body.asset.clone(), timeframe);
    config.initial_capital = capital;
    config.mode = Mode::parse(&agent.mode).unwrap_or(Mode::Omni);
    config.safety = body.safety_mode.unwrap_or(false);
    config.max_leverage = leverage;
    config.fee_bps = fee;
    config.slippage_bps = slippage;
    // a baseline's own indicators first, then the agent's others
    let mut indicators: Vec<String> = engine::baseline::Kind::from_model(&agent.model)
        .map(|k| {
            k.required_indicators()
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
        .unwrap_or_default();
    for name in &agent.indicators {
        if !indicators.contains(name) {
            indicators.push(name.clone());
        }
    }
    config.indicators = indicators;
    if let Err(e) = engine::Engine::new(config.clone()) {
        return Ok(Err(vec![FieldError::new("agent_id", e.to_string())]));
    }
    let snapshot = serde_json::json!({
        "id": agent.id, "name": agent.name, "model": agent.model, "mode": agent.mode,
        "indicators": agent.indicators, "strategy_prompt": agent.strategy_prompt,
        "temperature": agent.temperature, "api_key_id": agent.api_key_id,
    });
    let run_config = serde_json::json!({
        "engine": config,
        "fee_bps": fee, "slippage_bps": slippage, "leverage": leverage,
        "safety_mode": body.safety_mode.unwrap_or(false),
        "lookahead": lookahead,
        "fresh_decisions": body.fresh_decisions.unwrap_or(false),
        "budget_usd": body.budget_usd,
    });
    Ok(Ok(NewSession {
        agent_id: agent.id,
        asset: body.asset.clone(),
        timeframe: timeframe.as_str().into(),
        start,
        end,
        starting_capital: capital,
        speed,
        agent_snapshot: snapshot,
        config: run_config,
        total_candles: total,
    }))
}

/// Starts a backtest: validates, stores the session and sends its first step.
#[utoipa::path(post, path = "/api/arena/backtest/start", tag = "arena", security(("bearer" = [])),
    request_body = StartBacktest,
    responses((status = 201, body = StartedResponse), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn start(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Json(body): Json<StartBacktest>,
) -> ApiResult<(StatusCode, Json<StartedResponse>)> {
    let new = validate(&state.api, user.id, &body)
        .await?
        .map_err(ApiError::Validation)?;
    let session = sessions::create(&state.api.pool, user.id, &new).await?;
    let first = StepMessage {
        session_id: session.id,
        user_id: user.id,
        version: 0,
    };
    if let Err(e) = state.controls.queue.send(&first).await {
        // nothing half-done: the session goes, and the client may simply retry
        sessions::discard_unstarted(&state.api.pool, user.id, session.id).await?;
        return Err(ApiError::Unavailable(e.to_string()));
    }
    tracing::info!(session_id = %session.id, "backtest started");
    let subscribe = Subscribe {
        action: "subscribe",
        session_id: session.id,
    };
    Ok((
        StatusCode::CREATED,
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

/// Resumes a paused session (its next step is sent).
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
