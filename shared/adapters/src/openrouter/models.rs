//! Wire types exactly as OpenRouter sends them (only the fields we read).

use serde::Deserialize;

/// `GET /key` answers `{"data": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyResponse {
    pub(crate) data: KeyInfo,
}

/// What OpenRouter says of a key. Amounts are USD credits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KeyInfo {
    /// OpenRouter's label for the key (itself a masked form of the key).
    #[serde(default)]
    pub label: Option<String>,
    /// Spending limit; `None` is unlimited.
    #[serde(default)]
    pub limit: Option<f64>,
    /// What is left of the limit; `None` when unlimited.
    #[serde(default)]
    pub limit_remaining: Option<f64>,
    /// Credits used so far.
    #[serde(default)]
    pub usage: Option<f64>,
    #[serde(default)]
    pub is_free_tier: Option<bool>,
}

impl KeyInfo {
    /// A limit that is spent: the key cannot pay for a call.
    pub fn is_spent(&self) -> bool {
        self.limit_remaining.is_some_and(|left| left <= 0.0)
    }
}

/// The error body: `{"error": {"code": 401, "message": "..."}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorResponse {
    pub(crate) error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// A model's listed price, USD per token (`GET /models`: `pricing.prompt`, `pricing.completion`,
/// sent as strings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub prompt: f64,
    pub completion: f64,
}

impl Pricing {
    pub fn cost(&self, prompt_tokens: u32, completion_tokens: u32) -> f64 {
        self.prompt * f64::from(prompt_tokens) + self.completion * f64::from(completion_tokens)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ModelsResponse {
    pub(crate) data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ModelEntry {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) pricing: Option<PricingStrings>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PricingStrings {
    #[serde(default)]
    pub(crate) prompt: Option<String>,
    #[serde(default)]
    pub(crate) completion: Option<String>,
}
