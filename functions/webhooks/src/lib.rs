//! The webhooks endpoint group (DESIGN section 3): `POST /api/webhooks/clerk`, Clerk's user events
//! delivered by Svix. No JWT: the Svix signature over the raw body authenticates the delivery.
//!
//! - `user.created`, `user.updated`: the user is created or updated (email from
//!   `primary_email_address_id`, name from first and last name, avatar from `image_url`);
//! - `user.deleted`: the account and everything it owns are deleted;
//! - any other type: acknowledged and ignored;
//! - a replayed `svix-id` has no second effect (recorded for a week);
//! - a bad, missing or stale signature answers 401; a body over 1 MiB 413.
//!
//! Variables: `DATABASE_URL`, `CLERK_WEBHOOK_SECRET` (`whsec_` + base64), `LOG_FORMAT`. This
//! function needs no Clerk JWKS and no rate limiter.

use std::sync::Arc;

use adapters::svix::{self, WebhookSecret};
use axum::Router;
use axum::extract::{FromRef, State as AxumState};
use axum::http::HeaderMap;
use platform::error::ErrorBody;
use platform::extract::{Json, RawBody};
use platform::{
    ApiError, ApiResult, ConfigError, DatabaseConfig, Env, FromEnv, TelemetryConfig, db,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use store::webhooks::{self, ClerkProfile, Effect};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The variables this function reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub secret: WebhookSecret,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_env(env)?,
            secret: WebhookSecret::from_env(env)?,
            telemetry: TelemetryConfig::from_env(env)?,
        })
    }
}

#[derive(Clone, FromRef)]
pub struct State {
    pub pool: PgPool,
    pub secret: Arc<WebhookSecret>,
}

impl State {
    pub fn new(config: &Config) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pool: db::pool(&config.database)?,
            secret: Arc::new(config.secret.clone()),
        })
    }
}

pub fn api() -> OpenApiRouter<State> {
    OpenApiRouter::new().routes(routes!(clerk))
}

pub fn routes(state: State) -> Router {
    api().split_for_parts().0.with_state(state)
}

pub fn router(state: State) -> Router {
    platform::http::service(routes(state), ())
}

pub fn openapi() -> OpenApi {
    api().split_for_parts().1
}

/// What happened to a delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookResponse {
    /// The event type.
    pub r#type: String,
    /// `applied`, `duplicate` (this `svix-id` was processed before) or `ignored` (a type we do
    /// not act on).
    pub outcome: &'static str,
}

// Clerk's payload (PLATFORM.md): {data, object: "event", type, timestamp, instance_id}.
#[derive(Debug, Deserialize)]
struct Event {
    r#type: String,
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct ClerkUser {
    id: String,
    #[serde(default)]
    email_addresses: Vec<EmailAddress>,
    #[serde(default)]
    primary_email_address_id: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    image_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EmailAddress {
    id: String,
    email_address: String,
}

fn profile(user: ClerkUser) -> ClerkProfile {
    let email = user
        .primary_email_address_id
        .as_deref()
        .and_then(|primary| user.email_addresses.iter().find(|e| e.id == primary))
        .or(user.email_addresses.first())
        .map(|e| e.email_address.clone());
    let name = [user.first_name, user.last_name]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    ClerkProfile {
        clerk_id: user.id,
        email,
        name: (!name.is_empty()).then_some(name),
        avatar_url: user.image_url.filter(|u| !u.is_empty()),
    }
}

fn effect(event: &Event) -> ApiResult<Effect> {
    let user = || {
        serde_json::from_value::<ClerkUser>(event.data.clone())
            .map_err(|e| ApiError::InvalidBody(format!("data: {e}")))
    };
    Ok(match event.r#type.as_str() {
        "user.created" | "user.updated" => Effect::Upsert(profile(user()?)),
        "user.deleted" => {
            let id = event
                .data
                .get("id")
                .and_then(|v| v.as_str())
                .filter(|id| !id.is_empty())
                .ok_or_else(|| ApiError::field("data.id", "missing"))?;
            Effect::Delete {
                clerk_id: id.to_owned(),
            }
        }
        _ => Effect::Ignore,
    })
}

/// Receives a Clerk event (Svix-signed).
#[utoipa::path(post, path = "/api/webhooks/clerk", tag = "webhooks",
    responses((status = 200, body = WebhookResponse), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
async fn clerk(
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<WebhookResponse>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    svix::verify(
        &state.secret,
        header("svix-id"),
        header("svix-timestamp"),
        header("svix-signature"),
        &body,
        now,
    )
    .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let svix_id = header("svix-id").unwrap_or_default().to_owned();
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    let effect = effect(&event)?;
    let applied = webhooks::apply(&state.pool, &svix_id, &event.r#type, &effect).await?;
    let outcome = match (applied, &effect) {
        (false, _) => "duplicate",
        (true, Effect::Ignore) => "ignored",
        (true, _) => "applied",
    };
    tracing::info!(svix_id = %svix_id, event_type = %event.r#type, outcome, "clerk webhook");
    Ok(Json(WebhookResponse {
        r#type: event.r#type,
        outcome,
    }))
}
