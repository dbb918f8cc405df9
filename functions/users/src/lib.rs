//! The users endpoint group (DESIGN section 3):
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/users/sync` | 200 `{"user"}`: profile fields from Clerk (email, name, avatar_url) |
//! | `GET /api/users/me` | 200 `{"user", "settings"}` |
//! | `GET /api/users/me/settings` | 200 `{"settings"}` |
//! | `PUT /api/users/me/settings` | 200 `{"settings"}`: the given fields change, the others stay |
//! | `DELETE /api/users/me` | 204: the account and everything it owns are deleted |
//!
//! Every route needs a Clerk bearer token; the caller's row is provisioned on first use.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use platform::auth::AuthUser;
use platform::extract::Json;
use platform::users::{self, ProfileUpdate, SettingsUpdate};
use platform::{ApiError, ApiResult, AppState};
use serde_json::{Value, json};

/// The routes, unfinished: the local tool merges them with other functions' routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users/sync", post(sync))
        .route("/api/users/me", get(me).delete(delete_account))
        .route(
            "/api/users/me/settings",
            get(get_settings).put(put_settings),
        )
}

/// The service Lambda serves.
pub fn router(state: AppState) -> Router {
    platform::http::service(routes(), state)
}

#[tracing::instrument(skip_all)]
async fn sync(
    State(state): State<AppState>,
    user: AuthUser,
    Json(update): Json<ProfileUpdate>,
) -> ApiResult<Json<Value>> {
    ApiError::check(update.validate())?;
    let user = users::update_profile(&state.pool, user.id, &update)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(json!({ "user": user })))
}

#[tracing::instrument(skip_all)]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    let profile = users::find(&state.pool, user.id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let settings = users::settings(&state.pool, user.id)
        .await?
        .ok_or(ApiError::NotFound("settings"))?;
    Ok(Json(json!({ "user": profile, "settings": settings })))
}

#[tracing::instrument(skip_all)]
async fn get_settings(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    let settings = users::settings(&state.pool, user.id)
        .await?
        .ok_or(ApiError::NotFound("settings"))?;
    Ok(Json(json!({ "settings": settings })))
}

#[tracing::instrument(skip_all)]
async fn put_settings(
    State(state): State<AppState>,
    user: AuthUser,
    Json(update): Json<SettingsUpdate>,
) -> ApiResult<Json<Value>> {
    ApiError::check(update.validate())?;
    let settings = users::update_settings(&state.pool, user.id, &update)
        .await?
        .ok_or(ApiError::NotFound("settings"))?;
    Ok(Json(json!({ "settings": settings })))
}

#[tracing::instrument(skip_all)]
async fn delete_account(State(state): State<AppState>, user: AuthUser) -> ApiResult<StatusCode> {
    if users::delete(&state.pool, user.id).await? {
        tracing::info!("account deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("user"))
    }
}
