//! Every function's routes merged into one server, as API Gateway routes them in AWS, plus the
//! merged OpenAPI document at `GET /api/openapi.json`.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The merged document: every function's operations, the bearer scheme, the API's title.
pub(crate) fn document() -> OpenApi {
    let mut doc = alphalab_users::openapi();
    doc.info.title = "AlphaLab API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Every route but /api/health and the Clerk webhook takes a Clerk session token as \
         `Authorization: Bearer <token>`. Errors answer {\"error\": {\"code\", \"message\", \
         \"details\"}}."
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
    doc
}

/// Every function's routes with their state, and the document.
pub(crate) fn routes(users: alphalab_users::State) -> Router {
    let doc = document();
    alphalab_users::routes(users).route(
        "/api/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    )
}
