//! The cross-cutting layer every AlphaLab function shares: configuration pieces, the one HTTP
//! error type and its mapping, our extractors, the Postgres pool, Clerk authentication, the HTTP
//! service wrapper, telemetry, and the shapes of the SQS, WebSocket and scheduled functions.
//! Domain code (repositories, request and response types) lives in the `store` crate.
//!
//! Nothing here knows whether it runs in Lambda, in the local tool or under test: a function's
//! `main.rs` reads its config pieces once, builds its state and serves it; the local tool merges
//! every function's routes into one server; the tests drive the same routers over HTTP.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod http;
pub mod lambda;
pub mod openapi;
pub mod query;
pub mod ratelimit;
pub mod state;
pub mod telemetry;

pub use config::{
    AwsConfig, ClerkConfig, ConfigError, DatabaseConfig, Env, FromEnv, TelemetryConfig,
};
pub use error::{ApiError, ApiResult, FieldError};
pub use state::{ApiConfig, ApiState};
