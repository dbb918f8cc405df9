//! OpenRouter (PLATFORM.md, OpenRouter): `GET {base}/key` to check a user's key, and
//! `POST {base}/chat/completions` for the arena's decisions (structured output, retries with
//! jittered backoff, usage and cost).

mod chat;
mod client;
mod error;
mod models;

pub use chat::{ChatReply, ChatRequest, KeyLimiter, Message, ResponseFormat, RetryPolicy, Usage};
pub use client::{OpenRouter, OpenRouterConfig};
pub use error::OpenRouterError;
pub use models::KeyInfo;
pub use models::Pricing;
