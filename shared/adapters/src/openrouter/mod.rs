//! OpenRouter (PLATFORM.md, OpenRouter): `GET {base}/key` to check a user's key. The chat
//! completions client comes with the arena.

mod client;
mod error;
mod models;

pub use client::{OpenRouter, OpenRouterConfig};
pub use error::OpenRouterError;
pub use models::KeyInfo;
