//! The dashboard endpoint group (issue 23): the caller's figures at a glance and their activity.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/dashboard/stats` | 200 `{"stats"}` |
//! | `GET /api/dashboard/activity` | 200 `{"activity", "next_cursor"}`, newest first |
//!
//! Every route needs a Clerk bearer token. Activity rows are written where their events happen
//! (agents, keys, the arena, the step worker, certificates), not here.

use axum::Router;
use axum::extract::State;
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{Json, Query};
use platform::query::Params;
use platform::{ApiResult, ApiState};
use serde::{Deserialize, Serialize};
use store::dashboard::{self, Activity, DashboardStats};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The variables this function reads: database, Clerk, rate limit, log format.
pub type Config = platform::ApiConfig;

/// The routes with their OpenAPI operations (one registration for both).
pub fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(activity))
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
#[schema(as = DashboardStatsResponse)]
pub struct StatsResponse {
    pub stats: DashboardStats,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityResponse {
    pub activity: Vec<Activity>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The caller's figures.
#[utoipa::path(get, path = "/api/dashboard/stats", tag = "dashboard", security(("bearer" = [])),
    responses((status = 200, body = StatsResponse)))]
#[tracing::instrument(skip_all)]
async fn stats(State(api): State<ApiState>, user: AuthUser) -> ApiResult<Json<StatsResponse>> {
    let stats = dashboard::stats(&api.pool, user.id).await?;
    Ok(Json(StatsResponse { stats }))
}

/// A page of the activity feed.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityParams {
    /// Page size, 1..100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The caller's activity, newest first.
#[utoipa::path(get, path = "/api/dashboard/activity", tag = "dashboard", params(ActivityParams),
    security(("bearer" = [])),
    responses((status = 200, body = ActivityResponse), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn activity(
    State(api): State<ApiState>,
    user: AuthUser,
    Query(q): Query<ActivityParams>,
) -> ApiResult<Json<ActivityResponse>> {
    let mut p = Params::new();
    let limit = p.number("limit", q.limit.as_deref(), 1..=100, 20);
    let cursor = p.cursor(q.cursor.as_deref(), store::Cursor::decode);
    p.finish()?;
    let (activity, next) = dashboard::activity(&api.pool, user.id, cursor.as_ref(), limit).await?;
    Ok(Json(ActivityResponse {
        activity,
        next_cursor: next.map(|c| c.encode()),
    }))
}
