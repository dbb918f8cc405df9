//! Every function of the workspace, built from one environment as its Lambda would be: the list
//! the template test and the tenancy walker go through. A new function is added here (and the
//! template test fails until it is).

use platform::{ApiState, Env, FromEnv};
use utoipa::openapi::OpenApi;

/// Variables the functions need beyond the test environment's, with harmless values.
pub(crate) const EXTRA: &[(&str, &str)] = &[
    (
        "ENCRYPTION_KEYS",
        "v1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=;active=v1",
    ),
    ("CLERK_WEBHOOK_SECRET", "whsec_MDEyMzQ1Njc4OWFiY2RlZg=="),
    ("OPENROUTER_TIMEOUT_SECS", "2"),
    ("WEBSOCKET_API_ENDPOINT", "http://127.0.0.1:9/local"),
    (
        "STEPS_QUEUE_URL",
        "http://127.0.0.1:9/123456789012/none.fifo",
    ),
];

/// (binary name in template.yaml, OpenAPI document, the router its Lambda serves).
pub(crate) async fn all(
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<(&'static str, OpenApi, axum::Router)> {
    let env = Env::from_lookup(|name| {
        lookup(name).or_else(|| {
            EXTRA
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    });
    let api = ApiState::new(&platform::ApiConfig::from_env(&env).unwrap())
        .await
        .unwrap();
    let keys = alphalab_api_keys::State::new(&alphalab_api_keys::Config::from_env(&env).unwrap())
        .await
        .unwrap();
    let hooks =
        alphalab_webhooks::State::new(&alphalab_webhooks::Config::from_env(&env).unwrap()).unwrap();
    let arena = alphalab_arena::State::new(&alphalab_arena::Config::from_env(&env).unwrap())
        .await
        .unwrap();
    let certificates = alphalab_certificates::State::with(
        api.clone(),
        &alphalab_certificates::Config::from_env(&env).unwrap(),
    );
    vec![
        (
            "results",
            alphalab_results::openapi(),
            alphalab_results::router(api.clone()),
        ),
        (
            "certificates",
            alphalab_certificates::openapi(),
            alphalab_certificates::router(certificates),
        ),
        (
            "dashboard",
            alphalab_dashboard::openapi(),
            alphalab_dashboard::router(api.clone()),
        ),
        (
            "data",
            alphalab_data::openapi(),
            alphalab_data::router(api.clone()),
        ),
        (
            "export",
            alphalab_export::openapi(),
            alphalab_export::router(api.clone()),
        ),
        (
            "users",
            alphalab_users::openapi(),
            alphalab_users::router(api.clone()),
        ),
        (
            "notifications",
            alphalab_notifications::openapi(),
            alphalab_notifications::router(api.clone()),
        ),
        (
            "agents",
            alphalab_agents::openapi(),
            alphalab_agents::router(api),
        ),
        (
            "api-keys",
            alphalab_api_keys::openapi(),
            alphalab_api_keys::router(keys),
        ),
        (
            "webhooks",
            alphalab_webhooks::openapi(),
            alphalab_webhooks::router(hooks),
        ),
        (
            "arena",
            alphalab_arena::openapi(),
            alphalab_arena::router(arena),
        ),
    ]
}
