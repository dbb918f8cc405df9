//! Every function's routes merged into one server, as API Gateway routes them in AWS (the users
//! function serves the OpenAPI document at `GET /api/openapi.json`, as in AWS), the merged
//! document (`alphalab openapi`) and CORS (API Gateway answers CORS in AWS, from the template's
//! `CorsAllowedOrigins`).

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method};
use platform::{ApiConfig, ApiState, Env, FromEnv};
use tower_http::cors::CorsLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Every function's state, built from one environment (the arena function's AWS calls from its
/// own, `arena`). The authenticated functions share one [`ApiState`] (one pool) here; in AWS each
/// Lambda has its own.
pub(crate) struct States {
    pub(crate) api: ApiState,
    pub(crate) api_keys: alphalab_api_keys::State,
    pub(crate) webhooks: alphalab_webhooks::State,
    pub(crate) arena: alphalab_arena::State,
    pub(crate) certificates: alphalab_certificates::State,
}

impl States {
    pub(crate) async fn from_env(env: &Env<'_>, arena: &Env<'_>) -> Result<Self> {
        let config = ApiConfig::from_env(env)?;
        platform::telemetry::init(&config.telemetry);
        let api = ApiState::new(&config).await?;
        let keys = alphalab_api_keys::Config::from_env(env)?;
        let api_keys = alphalab_api_keys::State {
            api: api.clone(),
            keys: Arc::new(keys.keys),
            openrouter: adapters::openrouter::OpenRouter::new(keys.openrouter),
        };
        let hooks = alphalab_webhooks::Config::from_env(env)?;
        let webhooks = alphalab_webhooks::State {
            pool: api.pool.clone(),
            secret: Arc::new(hooks.secret),
        };
        let arena_config = alphalab_arena::Config::from_env(arena)?;
        let arena = alphalab_arena::State {
            api: api.clone(),
            controls: step_worker::Controls {
                pool: api.pool.clone(),
                queue: step_worker::StepQueue::new(&arena_config.steps).await,
            },
            max_active_sessions: arena_config.max_active_sessions,
            forward_max_active: arena_config.forward_max_active,
        };
        let certificates = alphalab_certificates::State::with(
            api.clone(),
            &alphalab_certificates::Config::from_env(env)?,
        );
        Ok(Self {
            api,
            api_keys,
            webhooks,
            arena,
            certificates,
        })
    }
}

/// Each create (201 with `Location`) and where what it created is read: (path of the create,
/// JSON pointer of the new id in its answer, path of the read). The document links the create to
/// every operation on the created resource, so a client (and a fuzzer) can walk create, read,
/// update and delete.
const CREATES: &[(&str, &str, &str)] = &[
    ("/api/agents", "/agent/id", "/api/agents/{id}"),
    (
        "/api/agents/{id}/duplicate",
        "/agent/id",
        "/api/agents/{id}",
    ),
    ("/api/api-keys", "/api_key/id", "/api/api-keys/{id}"),
    (
        "/api/arena/backtest/start",
        "/session/id",
        "/api/arena/sessions/{id}",
    ),
    (
        "/api/arena/forward/start",
        "/session/id",
        "/api/arena/sessions/{id}",
    ),
    (
        "/api/certificates",
        "/certificate/id",
        "/api/certificates/{id}",
    ),
];

/// Paths that act on a created resource of `read`'s kind (the read itself, and the operations
/// under it or elsewhere that take its id).
fn acting_on(read: &str, path: &str) -> bool {
    let sessions = read == "/api/arena/sessions/{id}"
        && (path.starts_with("/api/arena/backtest/{id}") || path == "/api/arena/forward/{id}/stop");
    path == read || path.starts_with(&format!("{read}/")) || sessions
}

/// The merged document: every function's operations, the bearer scheme, the API's title, the
/// answers every route gets from the platform layer, and the links of the creates.
pub(crate) fn document() -> serde_json::Value {
    let mut doc = alphalab_users::openapi();
    doc.merge(alphalab_api_keys::openapi());
    doc.merge(alphalab_agents::openapi());
    doc.merge(alphalab_notifications::openapi());
    doc.merge(alphalab_webhooks::openapi());
    doc.merge(alphalab_arena::openapi());
    doc.merge(alphalab_results::openapi());
    doc.merge(alphalab_certificates::openapi());
    doc.merge(alphalab_dashboard::openapi());
    doc.merge(alphalab_data::openapi());
    doc.merge(alphalab_export::openapi());
    doc.info.title = "AlphaLab API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Every route but /api/health, /api/openapi.json, the Clerk webhook, the certificate verify \
         and the ledger keys takes a Clerk session token as `Authorization: Bearer <token>` \
         (their operations declare an empty `security`). Errors answer {\"error\": {\"code\", \
         \"message\", \"details\"}}."
            .into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    let mut doc = serde_json::to_value(doc).expect("the document serialises");
    platform::openapi::complete(&mut doc);
    link_creates(&mut doc);
    doc
}

/// Declares `Location` on every create's 201 and links it to the operations on what it created.
fn link_creates(doc: &mut serde_json::Value) {
    let operations: Vec<(String, String)> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, op)| Some((path.clone(), op["operationId"].as_str()?.to_owned())))
                .collect::<Vec<_>>()
        })
        .collect();
    for (create, pointer, read) in CREATES {
        let links: serde_json::Map<String, serde_json::Value> = operations
            .iter()
            .filter(|(path, _)| acting_on(read, path))
            .map(|(_, id)| {
                (
                    id.clone(),
                    serde_json::json!({
                        "operationId": id,
                        "parameters": {"id": format!("$response.body#{pointer}")}
                    }),
                )
            })
            .collect();
        let created = &mut doc["paths"][*create]["post"]["responses"]["201"];
        assert!(created.is_object(), "{create} answers 201");
        created["links"] = serde_json::Value::Object(links);
        created["headers"]["Location"] = serde_json::json!({
            "description": format!("Where what was created is read ({read})."),
            "schema": {"type": "string"}
        });
    }
}

/// Every function's routes with their state.
pub(crate) fn routes(states: States) -> Router {
    alphalab_users::routes(states.api.clone())
        .merge(alphalab_notifications::routes(states.api.clone()))
        .merge(alphalab_results::routes(states.api.clone()))
        .merge(alphalab_dashboard::routes(states.api.clone()))
        .merge(alphalab_data::routes(states.api.clone()))
        .merge(alphalab_export::routes(states.api.clone()))
        .merge(alphalab_certificates::routes(states.certificates))
        .merge(alphalab_agents::routes(states.api))
        .merge(alphalab_api_keys::routes(states.api_keys))
        .merge(alphalab_webhooks::routes(states.webhooks))
        .merge(alphalab_arena::routes(states.arena))
}

/// CORS for the comma-separated `origins`, with the methods and headers the template allows.
pub(crate) fn cors(origins: &str) -> Result<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            HeaderValue::from_str(o)
                .with_context(|| format!("CORS_ALLOWED_ORIGINS: bad origin {o}"))
        })
        .collect::<Result<_>>()?;
    Ok(CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            HeaderName::from_static("authorization"),
            HeaderName::from_static("content-type"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("retry-after"),
            HeaderName::from_static("x-next-cursor"),
            HeaderName::from_static("content-disposition"),
        ])
        .max_age(std::time::Duration::from_secs(600)))
}
