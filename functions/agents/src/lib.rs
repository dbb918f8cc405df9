//! The agents endpoint group (DESIGN section 3): a user's trading agents.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/agents` | 200 `{"agents": [...], "next_cursor"}`, newest first; `limit` (1..100, 20), `cursor`, `include_archived` |
//! | `POST /api/agents` | 201 `{"agent"}` |
//! | `GET /api/agents/{id}` | 200 `{"agent"}` |
//! | `PUT /api/agents/{id}` | 200 `{"agent"}`: the given fields change |
//! | `DELETE /api/agents/{id}` | 204: archived when it has sessions, else removed |
//! | `POST /api/agents/{id}/duplicate` | 201 `{"agent"}` named `<name> (copy)`, `(copy 2)`, ... |
//!
//! Every rule is in `store::agents` (one place, with the types). Another user's agent is a 404;
//! another user's key as `api_key_id` is a 422 that reads exactly like a key that does not exist.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{Json, Path, Query};
use platform::{ApiError, ApiResult, ApiState};
use serde::{Deserialize, Serialize};
use store::agents::{self, Agent, AgentFields, AgentUpdate, NewAgent, Removed};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The variables this function reads: database, Clerk, rate limit, log format.
pub type Config = platform::ApiConfig;

/// The routes with their OpenAPI operations.
pub fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(duplicate))
}

/// The routes with their state, unfinished: the local tool merges them with other functions'.
pub fn routes(state: ApiState) -> Router {
    api().split_for_parts().0.with_state(state)
}

/// The service Lambda serves.
pub fn router(state: ApiState) -> Router {
    platform::http::service(routes(state), ())
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> OpenApi {
    api().split_for_parts().1
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentResponse {
    pub agent: Agent,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentsResponse {
    pub agents: Vec<Agent>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1..100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Also list archived agents (default false).
    pub include_archived: Option<bool>,
}

/// `Ok` when the key is the caller's (or none is named); else a 422 that does not reveal whether
/// the key exists for someone else.
async fn check_key(api: &ApiState, user: &AuthUser, fields: &AgentFields) -> ApiResult<()> {
    if let Some(key) = fields.api_key_id
        && store::api_keys::find(&api.pool, user.id, key)
            .await?
            .is_none()
    {
        return Err(ApiError::field("api_key_id", "API key not found"));
    }
    Ok(())
}

/// The caller's agents, newest first (archived ones only with `include_archived=true`).
#[utoipa::path(get, path = "/api/agents", tag = "agents", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AgentsResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn list(
    State(api): State<ApiState>,
    user: AuthUser,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<AgentsResponse>> {
    let (limit, cursor) = platform::extract::page(query.limit, query.cursor.as_deref())?;
    let include_archived = query.include_archived.unwrap_or(false);
    let (agents, next) =
        agents::list(&api.pool, user.id, include_archived, cursor.as_ref(), limit).await?;
    Ok(Json(AgentsResponse {
        agents,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// Creates an agent.
#[utoipa::path(post, path = "/api/agents", tag = "agents", request_body = NewAgent,
    security(("bearer" = [])),
    responses((status = 201, body = AgentResponse), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn create(
    State(api): State<ApiState>,
    user: AuthUser,
    Json(new): Json<NewAgent>,
) -> ApiResult<impl IntoResponse> {
    let fields = new.fields().map_err(ApiError::Validation)?;
    check_key(&api, &user, &fields).await?;
    let agent = agents::create(&api.pool, user.id, &fields, None).await?;
    Ok(platform::http::created(
        format!("/api/agents/{}", agent.id),
        Json(AgentResponse { agent }),
    ))
}

/// One of the caller's agents (archived ones too).
#[utoipa::path(get, path = "/api/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = AgentResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(agent_id = %id))]
async fn get_one(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AgentResponse>> {
    let agent = agents::find(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    Ok(Json(AgentResponse { agent }))
}

/// Changes the given fields of a live agent; read-only fields are accepted and ignored.
#[utoipa::path(put, path = "/api/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    request_body = AgentUpdate, security(("bearer" = [])),
    responses((status = 200, body = AgentResponse), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(agent_id = %id))]
async fn update(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Json(change): Json<AgentUpdate>,
) -> ApiResult<Json<AgentResponse>> {
    let current = agents::find(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    if current.archived_at.is_some() {
        return Err(ApiError::Conflict {
            field: None,
            message: "an archived agent cannot be changed; duplicate it instead".into(),
        });
    }
    let fields = change.apply_to(&current).map_err(ApiError::Validation)?;
    check_key(&api, &user, &fields).await?;
    let agent = agents::update(&api.pool, user.id, id, &fields)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    Ok(Json(AgentResponse { agent }))
}

/// Deletes an agent; one that has sessions is archived instead (its results keep their
/// snapshot).
#[utoipa::path(delete, path = "/api/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 204, description = "archived or deleted"), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(agent_id = %id))]
async fn delete(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    match agents::remove(&api.pool, user.id, id).await? {
        Removed::NotFound => Err(ApiError::NotFound("agent")),
        Removed::Archived | Removed::Deleted => Ok(StatusCode::NO_CONTENT),
    }
}

/// Copies an agent under the first free name `<name> (copy)`, `<name> (copy 2)`, ...
#[utoipa::path(post, path = "/api/agents/{id}/duplicate", tag = "agents",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 201, body = AgentResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(agent_id = %id))]
async fn duplicate(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let source = agents::find(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    let fields = AgentFields {
        name: agents::copy_name(&api.pool, user.id, &source.name).await?,
        mode: source.mode,
        model: source.model,
        indicators: source.indicators,
        strategy_prompt: source.strategy_prompt,
        api_key_id: source.api_key_id,
        temperature: source.temperature,
    };
    let agent = agents::create(&api.pool, user.id, &fields, Some(id)).await?;
    Ok(platform::http::created(
        format!("/api/agents/{}", agent.id),
        Json(AgentResponse { agent }),
    ))
}
