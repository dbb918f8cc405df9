//! The notifications endpoint group (issue 23): the caller's feed.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/notifications` | 200 `{"notifications", "unread_count", "next_cursor"}`, newest first |
//! | `POST /api/notifications/{id}/read` | 200 `{"notification"}`: idempotent, the first `read_at` is kept |
//! | `POST /api/notifications/read-all` | 200 `{"updated"}`: how many were unread |
//! | `DELETE /api/notifications/{id}` | 204, then 404 |
//!
//! Every route needs a Clerk bearer token. Another user's notification is a 404, as a random id.
//! Rows are written where their events happen (the step worker, the keys), not here.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{Json, Path, Query};
use platform::query::Params;
use platform::{ApiError, ApiResult, ApiState};
use serde::{Deserialize, Serialize};
use store::notifications::{self, Notification};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The variables this function reads: database, Clerk, rate limit, log format.
pub type Config = platform::ApiConfig;

/// The routes with their OpenAPI operations (one registration for both).
pub fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read_all))
        .routes(routes!(read))
        .routes(routes!(delete))
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
pub struct NotificationsResponse {
    pub notifications: Vec<Notification>,
    /// All the caller's unread notifications, whatever the page or filter.
    pub unread_count: i64,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationResponse {
    pub notification: Notification,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpdatedResponse {
    /// How many notifications were marked read.
    pub updated: u64,
}

/// Query parameters of the list, read as text so that a bad value is a 422 naming it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `true`: only unread ones; `false`: only read ones; absent: all.
    #[param(value_type = Option<bool>)]
    pub unread: Option<String>,
    /// Page size, 1..100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// (unread filter, limit, cursor), or a 422 naming every bad parameter.
    fn parse(&self) -> Result<(Option<bool>, i64, Option<store::Cursor>), ApiError> {
        let mut p = Params::new();
        let unread = p.boolean("unread", self.unread.as_deref());
        let limit = p.number(
            "limit",
            self.limit.as_deref(),
            1..=store::page::MAX_PAGE,
            store::page::DEFAULT_PAGE,
        );
        let cursor = p.cursor(self.cursor.as_deref(), store::Cursor::decode);
        p.finish()?;
        Ok((unread, limit, cursor))
    }
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = NotificationsResponse), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn list(
    State(api): State<ApiState>,
    user: AuthUser,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<NotificationsResponse>> {
    let (unread, limit, cursor) = query.parse()?;
    let (items, next) =
        notifications::list(&api.pool, user.id, unread, cursor.as_ref(), limit).await?;
    let unread_count = notifications::unread_count(&api.pool, user.id).await?;
    Ok(Json(NotificationsResponse {
        notifications: items,
        unread_count,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// Marks one notification read; marking it again keeps the first `read_at`.
#[utoipa::path(post, path = "/api/notifications/{id}/read", tag = "notifications",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = NotificationResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn read(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<NotificationResponse>> {
    let notification = notifications::mark_read(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("notification"))?;
    Ok(Json(NotificationResponse { notification }))
}

/// Marks every unread notification of the caller read.
#[utoipa::path(post, path = "/api/notifications/read-all", tag = "notifications",
    security(("bearer" = [])), responses((status = 200, body = UpdatedResponse)))]
#[tracing::instrument(skip_all)]
async fn read_all(State(api): State<ApiState>, user: AuthUser) -> ApiResult<Json<UpdatedResponse>> {
    let updated = notifications::mark_all_read(&api.pool, user.id).await?;
    Ok(Json(UpdatedResponse { updated }))
}

/// Deletes one notification.
#[utoipa::path(delete, path = "/api/notifications/{id}", tag = "notifications",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn delete(
    State(api): State<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    if notifications::delete(&api.pool, user.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("notification"))
    }
}
