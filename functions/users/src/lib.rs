//! The users endpoint group (DESIGN section 3) and the health probe:
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/health` | 200 `{"status": "ok"}`, or 503 when the database does not answer (no token) |
//! | `GET /api/openapi.json` | 200: the API's OpenAPI document, the committed `openapi.json` (no token) |
//! | `POST /api/users/sync` | 200 `{"user"}`: profile fields from Clerk (email, name, avatar_url) |
//! | `GET /api/users/me` | 200 `{"user", "settings"}` |
//! | `GET /api/users/me/settings` | 200 `{"settings"}` |
//! | `PUT /api/users/me/settings` | 200 `{"settings"}`: the given fields change, the others stay |
//! | `DELETE /api/users/me` | 204: the account and everything it owns are deleted |
//!
//! Every other route needs a Clerk bearer token; the caller's row is provisioned on first use.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use platform::auth::AuthUser;
use platform::db;
use platform::error::ErrorBody;
use platform::extract::Json;
use platform::{ApiError, ApiResult, ApiState};
use serde::Serialize;
use store::users::{self, ProfileUpdate, Settings, SettingsUpdate, User};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The variables this function reads: database, Clerk, rate limit, log format.
pub type Config = platform::ApiConfig;

/// The routes with their OpenAPI operations (one registration for both).
pub fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(openapi_document))
        .routes(routes!(sync))
        .routes(routes!(me, delete_account))
        .routes(routes!(get_settings, put_settings))
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
pub struct HealthResponse {
    /// `ok`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    pub user: User,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    pub user: User,
    pub settings: Settings,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsResponse {
    pub settings: Settings,
}

/// Liveness and database reachability, for probes and the frontend. No token needed.
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody)))]
async fn health(State(api): State<ApiState>) -> ApiResult<Json<HealthResponse>> {
    db::ping(&api.pool)
        .await
        .map_err(|e| ApiError::Unavailable(format!("database: {e}")))?;
    Ok(Json(HealthResponse { status: "ok" }))
}

/// The API's contract: `openapi.json` of the repository, compiled in (a test fails when it
/// differs from what the code generates, so the deployed API and the local stack serve the
/// document of the code they run).
pub const OPENAPI_DOCUMENT: &str = include_str!("../../../openapi.json");

/// The whole API's OpenAPI 3.1 document (every function's operations). No token needed.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_document() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_DOCUMENT,
    )
}

/// Syncs profile fields from Clerk; absent fields stay as they are.
#[utoipa::path(post, path = "/api/users/sync", tag = "users", request_body = ProfileUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn sync(
    State(api): State<ApiState>,
    user: AuthUser,
    Json(update): Json<ProfileUpdate>,
) -> ApiResult<Json<UserResponse>> {
    ApiError::check(update.validate())?;
    let user = users::update_profile(&api.pool, user.id, &update)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(UserResponse { user }))
}

/// The caller's profile and settings.
#[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn me(State(api): State<ApiState>, user: AuthUser) -> ApiResult<Json<MeResponse>> {
    let profile = users::find(&api.pool, user.id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let settings = users::settings(&api.pool, user.id)
        .await?
        .ok_or(ApiError::NotFound("settings"))?;
    Ok(Json(MeResponse {
        user: profile,
        settings,
    }))
}

/// The caller's settings.
#[utoipa::path(get, path = "/api/users/me/settings", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = SettingsResponse), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn get_settings(
    State(api): State<ApiState>,
    user: AuthUser,
) -> ApiResult<Json<SettingsResponse>> {
    let settings = users::settings(&api.pool, user.id)
        .await?
        .ok_or(ApiError::NotFound("settings"))?;
    Ok(Json(SettingsResponse { settings }))
}

/// Changes the given settings; the others stay. Read-only fields are accepted and ignored.
#[utoipa::path(put, path = "/api/users/me/settings", tag = "users", request_body = SettingsUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = SettingsResponse), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn put_settings(
    State(api): State<ApiState>,
    user: AuthUser,
    Json(update): Json<SettingsUpdate>,
) -> ApiResult<Json<SettingsResponse>> {
    ApiError::check(update.validate())?;
    let settings = users::update_settings(&api.pool, user.id, &update)
        .await?
        .ok_or(ApiError::NotFound("settings"))?;
    Ok(Json(SettingsResponse { settings }))
}

/// Deletes the account and everything it owns.
#[utoipa::path(delete, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn delete_account(State(api): State<ApiState>, user: AuthUser) -> ApiResult<StatusCode> {
    if users::delete(&api.pool, user.id).await? {
        tracing::info!("account deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("user"))
    }
}
