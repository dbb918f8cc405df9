//! The calls.

use std::time::Duration;

use config::{ConfigError, Env, FromEnv};
use secrecy::{ExposeSecret, SecretString};

use super::error::OpenRouterError;
use super::models::{KeyInfo, KeyResponse, ModelsResponse, Pricing};

/// `OPENROUTER_BASE_URL` (default `https://openrouter.ai/api/v1`), `OPENROUTER_TIMEOUT_SECS`
/// (1..25, default 10: well inside API Gateway's 30 s, since keys are checked within requests)
/// and `OPENROUTER_CHAT_TIMEOUT_SECS` (1..120, default 30: one decision call of the step worker).
#[derive(Debug, Clone)]
pub struct OpenRouterConfig {
    pub base_url: String,
    pub timeout: Duration,
    pub chat_timeout: Duration,
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
        let chat_timeout =
            Duration::from_secs(env.number("OPENROUTER_CHAT_TIMEOUT_SECS", 30, 1..=120)?);
        Ok(Self {
            base_url,
            timeout,
            chat_timeout,
        })
    }
}

/// An OpenRouter client; cheap to clone.
#[derive(Debug, Clone)]
pub struct OpenRouter {
    pub(super) http: reqwest::Client,
    pub(super) config: OpenRouterConfig,
}

impl OpenRouter {
    pub fn new(config: OpenRouterConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .unwrap_or_default();
        Self { http, config }
    }

    /// How long one chat request may take (`OPENROUTER_CHAT_TIMEOUT_SECS`).
    pub fn chat_timeout(&self) -> Duration {
        self.config.chat_timeout
    }

    /// `GET /key` with `key`: what OpenRouter knows of it.
    pub async fn key_info(&self, key: &SecretString) -> Result<KeyInfo, OpenRouterError> {
        let response = self
            .http
            .get(format!("{}/key", self.config.base_url))
            .timeout(self.config.timeout)
            .bearer_auth(key.expose_secret())
            .header("X-OpenRouter-Title", "AlphaLab")
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let retry_after = crate::http::retry_after(response.headers());
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        if status != 200 {
            return Err(super::chat::classify(status, retry_after, &body));
        }
        serde_json::from_slice::<KeyResponse>(&body)
            .map(|r| r.data)
            .map_err(|e| OpenRouterError::InvalidBody(e.to_string()))
    }

    /// `GET /models`: the listed price of `model` (`None` when it is not listed or has none).
    pub async fn pricing(&self, model: &str) -> Result<Option<Pricing>, OpenRouterError> {
        let response = self
            .http
            .get(format!("{}/models", self.config.base_url))
            .timeout(self.config.timeout)
            .header("X-OpenRouter-Title", "AlphaLab")
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        if status != 200 {
            return Err(super::chat::classify(status, None, &body));
        }
        let list: ModelsResponse = serde_json::from_slice(&body)
            .map_err(|e| OpenRouterError::InvalidBody(e.to_string()))?;
        let number = |s: &Option<String>| s.as_deref().and_then(|v| v.trim().parse::<f64>().ok());
        Ok(list
            .data
            .into_iter()
            .find(|m| m.id == model)
            .and_then(|m| m.pricing)
            .and_then(|p| {
                Some(Pricing {
                    prompt: number(&p.prompt)?,
                    completion: number(&p.completion)?,
                })
            }))
    }

    pub(super) fn transport(&self, err: reqwest::Error) -> OpenRouterError {
        self.transport_within(err, self.config.timeout)
    }

    pub(super) fn transport_within(
        &self,
        err: reqwest::Error,
        timeout: Duration,
    ) -> OpenRouterError {
        if err.is_timeout() {
            OpenRouterError::Timeout(timeout.as_secs())
        } else {
            // without the URL: it is ours, but keep errors short and free of anything else
            OpenRouterError::Network(err.without_url().to_string())
        }
    }
}
