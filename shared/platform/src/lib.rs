//! What every AlphaLab function shares: typed configuration, the one error type and its HTTP
//! mapping, the Postgres pool, Clerk authentication, telemetry and the repositories.
//!
//! Nothing here knows whether it runs in Lambda, in the local tool or under test: a function's
//! `main.rs` builds an [`AppState`] once and serves its router with `lambda_http`, the local tool
//! merges every function's routes into one server, and the tests drive the same routers over HTTP.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod http;
pub mod state;
pub mod telemetry;
pub mod users;

pub use config::Config;
pub use error::{ApiError, ApiResult};
pub use state::AppState;
