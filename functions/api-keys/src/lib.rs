//! The api-keys endpoint group (DESIGN section 3): a user's OpenRouter keys.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/api-keys` | 200 `{"api_keys": [...]}`, newest first |
//! | `POST /api/api-keys` | 201 `{"api_key"}` and `Location`; body `{"name", "key"}`; validated with OpenRouter within the request |
//! | `GET /api/api-keys/{id}` | 200 `{"api_key"}` (masked, as in the list) |
//! | `POST /api/api-keys/{id}/validate` | 200 `{"api_key"}` with the new status |
//! | `PUT /api/api-keys/{id}/default` | 200 `{"api_key"}` |
//! | `DELETE /api/api-keys/{id}` | 204; 409 naming the live agents that use it |
//!
//! The key is encrypted (AES-256-GCM, bound to the user and the row) before it is stored and
//! decrypted only in memory for the OpenRouter call. It never appears in a response, a log line or
//! an error: responses carry `masked_key` (prefix, `…`, last four characters).

use std::sync::Arc;

use adapters::crypto::{Keyring, Sealed};
use adapters::openrouter::{OpenRouter, OpenRouterConfig, OpenRouterError};
use axum::Router;
use axum::extract::{FromRef, State as AxumState};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use platform::auth::AuthUser;
use platform::error::ErrorBody;
use platform::extract::{Json, Path};
use platform::{ApiConfig, ApiError, ApiResult, ApiState, ConfigError, Env, FieldError, FromEnv};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use store::api_keys::{self, ApiKey, CheckResult, Deleted, NewKey};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The variables this function reads: the API's, `ENCRYPTION_KEYS`, `OPENROUTER_*`.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub keys: Keyring,
    pub openrouter: OpenRouterConfig,
}

impl FromEnv for Config {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            api: ApiConfig::from_env(env)?,
            keys: Keyring::from_env(env)?,
            openrouter: OpenRouterConfig::from_env(env)?,
        })
    }
}

/// What the handlers need, built once per cold start.
#[derive(Clone, FromRef)]
pub struct State {
    pub api: ApiState,
    pub keys: Arc<Keyring>,
    pub openrouter: OpenRouter,
}

impl State {
    pub async fn new(config: &Config) -> Result<Self, sqlx::Error> {
        Ok(Self {
            api: ApiState::new(&config.api).await?,
            keys: Arc::new(config.keys.clone()),
            openrouter: OpenRouter::new(config.openrouter.clone()),
        })
    }
}

/// The routes with their OpenAPI operations.
pub fn api() -> OpenApiRouter<State> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, delete))
        .routes(routes!(validate))
        .routes(routes!(set_default))
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyResponse {
    pub api_key: ApiKey,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeysResponse {
    pub api_keys: Vec<ApiKey>,
}

/// A key to add. Unknown fields are refused.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// 1..64 characters (surrounding spaces are trimmed).
    #[schema(pattern = "\\S", max_length = 64)]
    pub name: String,
    /// The OpenRouter key (`sk-or-v1-...`): 20..256 printable ASCII characters without spaces.
    /// Write-only: never shown again.
    #[schema(value_type = String, write_only, pattern = "^\\s*[!-~]{20,256}\\s*$")]
    pub key: SecretString,
}

const NAME_MAX: usize = 64;

fn validate_new(name: &str, key: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let len = name.chars().count();
    if len == 0 || len > NAME_MAX {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {NAME_MAX} characters"),
        ));
    }
    let key_ok = (20..=256).contains(&key.len()) && key.chars().all(|c| c.is_ascii_graphic());
    if !key_ok {
        // says nothing of the key itself
        errors.push(FieldError::new(
            "key",
            "must be an OpenRouter API key: 20 to 256 printable characters without spaces",
        ));
    }
    errors
}

/// Lists the caller's keys, newest first.
#[utoipa::path(get, path = "/api/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, body = ApiKeysResponse), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn list(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
) -> ApiResult<Json<ApiKeysResponse>> {
    let api_keys = api_keys::list(&api.pool, user.id).await?;
    Ok(Json(ApiKeysResponse { api_keys }))
}

/// Adds a key: encrypted, stored (the first one becomes the default), then checked with
/// OpenRouter within the request, so the answer carries its status. A key OpenRouter rejects is
/// kept (status `invalid`) so the user sees why.
#[utoipa::path(post, path = "/api/api-keys", tag = "api-keys", request_body = NewApiKey,
    security(("bearer" = [])),
    responses((status = 201, body = ApiKeyResponse), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn create(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Json(new): Json<NewApiKey>,
) -> ApiResult<impl IntoResponse> {
    let name = new.name.trim();
    let key = new.key.expose_secret().trim();
    ApiError::check(validate_new(name, key))?;
    let id = Uuid::new_v4();
    let sealed = state
        .keys
        .seal(user.id, id, key)
        .map_err(ApiError::internal)?;
    let masked = api_keys::mask(key);
    api_keys::insert(
        &state.api.pool,
        user.id,
        &NewKey {
            id,
            name,
            masked_key: &masked,
            encrypted_key: &sealed.bytes,
            key_version: sealed.version,
        },
    )
    .await?;
    let secret = SecretString::from(key.to_owned());
    let checked = check(&state, user.id, id, &secret).await?;
    tracing::info!(api_key_id = %id, status = %checked.status, "key added");
    Ok(platform::http::created(
        format!("/api/api-keys/{id}"),
        Json(ApiKeyResponse { api_key: checked }),
    ))
}

/// One of the caller's keys (masked, as in the list).
#[utoipa::path(get, path = "/api/api-keys/{id}", tag = "api-keys",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = ApiKeyResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(api_key_id = %id))]
async fn get_one(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ApiKeyResponse>> {
    let api_key = api_keys::find(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("api key"))?;
    Ok(Json(ApiKeyResponse { api_key }))
}

/// Checks the key with OpenRouter again and records what it says.
#[utoipa::path(post, path = "/api/api-keys/{id}/validate", tag = "api-keys",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = ApiKeyResponse), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(api_key_id = %id))]
async fn validate(
    AxumState(state): AxumState<State>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ApiKeyResponse>> {
    let stored = api_keys::stored(&state.api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("api key"))?;
    let sealed = Sealed {
        version: stored.key_version,
        bytes: stored.encrypted_key,
    };
    let secret = state.keys.open(user.id, id, &sealed).map_err(|e| {
        tracing::error!(error = %e, "a stored key does not decrypt");
        ApiError::Conflict {
            field: Some("key"),
            message: "the stored key cannot be decrypted; delete it and add it again".into(),
        }
    })?;
    let api_key = check(&state, user.id, id, &secret).await?;
    Ok(Json(ApiKeyResponse { api_key }))
}

/// Asks OpenRouter about `secret` and records the outcome on the key `id`.
async fn check(state: &State, user_id: Uuid, id: Uuid, secret: &SecretString) -> ApiResult<ApiKey> {
    let outcome = state.openrouter.key_info(secret).await;
    // an answer from OpenRouter could quote what it was sent: never store or show the key
    let scrub = |text: String| text.replace(secret.expose_secret(), "[key]");
    let result = match outcome {
        Ok(info) if info.is_spent() => CheckResult {
            status: "no_credits",
            reason: Some("the key's credit limit is spent".into()),
            details: Some((info.label.map(scrub), info.limit, info.usage)),
        },
        Ok(info) => CheckResult {
            status: "valid",
            reason: None,
            details: Some((info.label.map(scrub), info.limit, info.usage)),
        },
        Err(e @ OpenRouterError::Rejected { .. }) => CheckResult {
            status: "invalid",
            reason: Some(scrub(e.to_string())),
            details: None,
        },
        Err(e @ OpenRouterError::NoCredits { .. }) => CheckResult {
            status: "no_credits",
            reason: Some(scrub(e.to_string())),
            details: None,
        },
        // transient: the key stays usable; the reason says what happened
        Err(e) => CheckResult {
            status: "error",
            reason: Some(scrub(e.to_string())),
            details: None,
        },
    };
    api_keys::record_check(&state.api.pool, user_id, id, &result)
        .await?
        .ok_or(ApiError::NotFound("api key"))
}

/// Makes the key the caller's default (atomically: never two, never none).
#[utoipa::path(put, path = "/api/api-keys/{id}/default", tag = "api-keys",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = ApiKeyResponse), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(api_key_id = %id))]
async fn set_default(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ApiKeyResponse>> {
    let api_key = api_keys::set_default(&api.pool, user.id, id)
        .await?
        .ok_or(ApiError::NotFound("api key"))?;
    Ok(Json(ApiKeyResponse { api_key }))
}

/// Deletes the key, unless live agents use it (409 naming them); a deleted default is replaced by
/// the most recent other key.
#[utoipa::path(delete, path = "/api/api-keys/{id}", tag = "api-keys",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(api_key_id = %id))]
async fn delete(
    AxumState(api): AxumState<ApiState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    match api_keys::delete(&api.pool, user.id, id).await? {
        Deleted::Deleted => Ok(StatusCode::NO_CONTENT),
        Deleted::NotFound => Err(ApiError::NotFound("api key")),
        Deleted::InUse(agents) => Err(ApiError::Conflict {
            field: Some("id"),
            message: format!(
                "the key is used by {}: {}; give them another key or archive them first",
                if agents.len() == 1 {
                    "an agent"
                } else {
                    "agents"
                },
                agents.join(", ")
            ),
        }),
    }
}
