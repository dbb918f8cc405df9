//! The calls.

use std::time::Duration;

use platform::{ConfigError, Env, FromEnv};
use secrecy::{ExposeSecret, SecretString};

use super::error::OpenRouterError;
use super::models::{ErrorResponse, KeyInfo, KeyResponse};

/// `OPENROUTER_BASE_URL` (default `https://openrouter.ai/api/v1`) and `OPENROUTER_TIMEOUT_SECS`
/// (1..25, default 10: well inside API Gateway's 30 s, since keys are checked within requests).
#[derive(Debug, Clone)]
pub struct OpenRouterConfig {
    pub base_url: String,
    pub timeout: Duration,
}

impl FromEnv for OpenRouterConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let base_url = env
            .get("OPENROUTER_BASE_URL")
            .unwrap_or_else(|| "https://openrouter.ai/api/v1".into())
            .trim_end_matches('/')
            .to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "OPENROUTER_BASE_URL",
                reason: "expected an http(s) URL".into(),
            });
        }
        let timeout = Duration::from_secs(env.number("OPENROUTER_TIMEOUT_SECS", 10, 1..=25)?);
        Ok(Self { base_url, timeout })
    }
}

/// An OpenRouter client; cheap to clone.
#[derive(Debug, Clone)]
pub struct OpenRouter {
    http: reqwest::Client,
    config: OpenRouterConfig,
}

impl OpenRouter {
    pub fn new(config: OpenRouterConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .unwrap_or_default();
        Self { http, config }
    }

    /// `GET /key` with `key`: what OpenRouter knows of it.
    pub async fn key_info(&self, key: &SecretString) -> Result<KeyInfo, OpenRouterError> {
        let response = self
            .http
            .get(format!("{}/key", self.config.base_url))
            .bearer_auth(key.expose_secret())
            .header("X-OpenRouter-Title", "AlphaLab")
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        let message = || {
            serde_json::from_slice::<ErrorResponse>(&body)
                .ok()
                .and_then(|e| e.error.message)
                .unwrap_or_else(|| "no message".into())
        };
        match status {
            200 => serde_json::from_slice::<KeyResponse>(&body)
                .map(|r| r.data)
                .map_err(|e| OpenRouterError::InvalidBody(e.to_string())),
            401 | 403 => Err(OpenRouterError::Rejected {
                status,
                message: message(),
            }),
            402 => Err(OpenRouterError::NoCredits { message: message() }),
            429 => Err(OpenRouterError::RateLimited { retry_after }),
            _ => Err(OpenRouterError::UnexpectedStatus { status }),
        }
    }

    fn transport(&self, err: reqwest::Error) -> OpenRouterError {
        if err.is_timeout() {
            OpenRouterError::Timeout(self.config.timeout.as_secs())
        } else {
            // without the URL: it is ours, but keep errors short and free of anything else
            OpenRouterError::Network(err.without_url().to_string())
        }
    }
}
