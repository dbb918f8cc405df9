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
use platform::{ApiError, ApiResult, ApiState};
use serde::{Deserialize, Serialize};
use store::FieldError;
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
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `true`: only unread ones; `false`: only read ones; absent: all.
    #[param(value_type = Option<bool>)]
    pub unread: Option<String>,
    /// Page size, 1..100 (default 20).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// (unread filter, limit, cursor), or every bad parameter named.
    fn parse(&self) -> Result<(Option<bool>, i64, Option<store::Cursor>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let unread = match self.unread.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                errors.push(FieldError::new("unread", "must be true or false"));
                None
            }
        };
        let max = store::page::MAX_PAGE;
        let limit = match self.limit.as_deref().map(str::parse::<i64>) {
            None => store::page::DEFAULT_PAGE,
            Some(Ok(n)) if (1..=max).contains(&n) => n,
            Some(_) => {
                errors.push(FieldError::new(
                    "limit",
                    format!("must be a whole number between 1 and {max}"),
                ));
                store::page::DEFAULT_PAGE
            }
        };
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(text) => {
                let cursor = store::Cursor::decode(text);
                if cursor.is_none() {
                    errors.push(FieldError::new("cursor", "not a cursor this API gave out"));
                }
                cursor
            }
        };
        if errors.is_empty() {
            Ok((unread, limit, cursor))
        } else {
            Err(errors)
        }
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
    let (unread, limit, cursor) = query.parse().map_err(ApiError::Validation)?;
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
