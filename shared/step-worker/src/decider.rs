//! The agent's decision for a candle, made between the engine's `observe` and `apply`
//! (DESIGN 5a). A baseline decides in memory; a model is asked over OpenRouter with the
//! engine's prompts: the system text (identical for every call of a session) first, the
//! candle's data last, the reply constrained by the engine's JSON schema, `max_tokens` small.
//! The request's SHA-256 is kept with the decision.

use std::sync::Arc;

use adapters::openrouter::{
    ChatRequest, KeyLimiter, Message, OpenRouter, OpenRouterError, Pricing, ResponseFormat,
    RetryPolicy, Usage,
};
use chrono::DateTime;
use engine::baseline::Baseline;
use engine::decision::{Reasoning, parse};
use engine::{Action, Context, Decision, Order};
use secrecy::SecretString;
use store::steps::Thought;

/// How the error of a decision whose call failed (after its retries) begins: such a candle
/// holds and counts towards `MODEL_MAX_FAILURES`.
const FAILED_CALL: &str = "model call failed";

/// Tokens a decision may use: a short JSON object (DESIGN 5b).
pub const MAX_TOKENS: u32 = 150;

/// How a session's agent decides.
pub enum Decider {
    Baseline(Baseline),
    Model(Box<Model>),
}

/// A model agent's calls.
pub struct Model {
    pub openrouter: OpenRouter,
    /// Decrypted for this step only; never logged.
    pub key: SecretString,
    pub model: String,
    pub temperature: f64,
    pub system: String,
    pub format: ResponseFormat,
    pub policy: RetryPolicy,
    /// Shared by the step's concurrent calls with this key.
    pub limiter: Arc<KeyLimiter>,
    /// The model's listed price, fetched once when a reply has no `usage.cost` or a budget needs
    /// an estimate (`None` inside: not listed).
    pub pricing: tokio::sync::OnceCell<Option<Pricing>>,
}

/// A model's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub content: String,
    pub latency_ms: u32,
    /// The format the answered request had (after a fallback: `JsonObject`).
    pub format: ResponseFormat,
}

/// How one call ended; `usage` is what it was billed (every 200, the unusable ones included).
#[derive(Debug)]
pub enum Call {
    Answered {
        answer: Answer,
        usage: Usage,
    },
    /// A transient failure that outlasted the retries, or a 200 without a usable message twice:
    /// the candle holds, with this error.
    Failed {
        error: String,
        usage: Usage,
    },
    /// Not asked, or not asked again: the step's deadline came first. The next step asks.
    NotAsked {
        usage: Usage,
    },
    /// Cannot succeed by trying again (400, 401, 402, 403): the session ends.
    Fatal(OpenRouterError),
}

impl Model {
    /// The request for the candle `ctx` describes.
    pub fn request(&self, ctx: &Context<'_>) -> ChatRequest {
        ChatRequest {
            model: self.model.clone(),
            messages: vec![
                Message {
                    role: "system",
                    content: self.system.clone(),
                },
                Message {
                    role: "user",
                    content: engine::prompt::candle_prompt(ctx),
                },
            ],
            temperature: self.temperature,
            max_tokens: MAX_TOKENS,
            format: self.format,
            schema: engine::prompt::response_schema(),
        }
    }

    /// Asks the model (concurrently with the window's other calls), everything ending before
    /// `deadline`.
    pub async fn call(&self, request: &ChatRequest, deadline: tokio::time::Instant) -> Call {
        let started = std::time::Instant::now();
        let (result, usage) = self
            .openrouter
            .chat(&self.key, request, &self.policy, &self.limiter, deadline)
            .await;
        match result {
            Ok(reply) => Call::Answered {
                answer: Answer {
                    content: reply.content,
                    latency_ms: reply.latency.as_millis().min(u32::MAX as u128) as u32,
                    format: reply.format,
                },
                usage,
            },
            Err(OpenRouterError::OutOfTime) => Call::NotAsked { usage },
            Err(e) if e.is_transient() => Call::Failed {
                error: format!(
                    "{FAILED_CALL} after {} ms: {e}",
                    started.elapsed().as_millis()
                ),
                usage,
            },
            Err(e) => Call::Fatal(e),
        }
    }

    /// The model's listed price (fetched once, before `deadline`; `None` when unknown).
    pub async fn pricing(&self, deadline: tokio::time::Instant) -> Option<Pricing> {
        *self
            .pricing
            .get_or_init(|| async {
                tokio::time::timeout_at(deadline, self.openrouter.pricing(&self.model))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            })
            .await
    }

    /// What a call was billed: OpenRouter's `usage.cost`, else the listed price of its tokens.
    pub async fn cost(&self, usage: &Usage, deadline: tokio::time::Instant) -> Option<f64> {
        if usage.requests == 0 {
            return None;
        }
        match usage.cost {
            Some(cost) => Some(cost),
            None => self.pricing(deadline).await.map(|p| {
                p.cost(
                    usage.prompt_tokens.unwrap_or(0),
                    usage.completion_tokens.unwrap_or(0),
                )
            }),
        }
    }
}

/// The stored decision for candle `index` from an answer to the request `hash` (a billed
/// answer without a usable message is a failed call: HOLD with its error).
pub fn thought_from(answer: &store::decisions::Cached, index: u64, time_ms: i64) -> Thought {
    if let Some(error) = &answer.error {
        let mut thought = failed_thought(error.clone(), &answer.request_hash, index, time_ms);
        thought.prompt_tokens = answer.prompt_tokens;
        thought.completion_tokens = answer.completion_tokens;
        thought.cost_usd = answer.cost_usd;
        thought.latency_ms = answer.latency_ms;
        thought.answer_hash = Some(hash_hex(answer.content.as_bytes()));
        return thought;
    }
    let decision = parse(&answer.content);
    Thought {
        candle_index: index as i64,
        candle_time: DateTime::from_timestamp_millis(time_ms).unwrap_or_default(),
        prompt_hash: Some(answer.request_hash.clone()),
        action: decision.action.as_str().into(),
        reasoning: decision.reasoning.text().into_owned(),
        confidence: Some(i32::from(decision.confidence)),
        order_details: serde_json::to_value(decision.order).ok(),
        raw_response: decision.raw,
        prompt_tokens: answer.prompt_tokens,
        completion_tokens: answer.completion_tokens,
        cost_usd: answer.cost_usd,
        latency_ms: answer.latency_ms,
        error: decision.error,
        from_cache: false,
        answer_hash: Some(hash_hex(answer.content.as_bytes())),
    }
}

/// The stored decision for a candle whose call failed after its retries: HOLD with the error.
pub fn failed_thought(error: String, hash: &str, index: u64, time_ms: i64) -> Thought {
    Thought {
        candle_index: index as i64,
        candle_time: DateTime::from_timestamp_millis(time_ms).unwrap_or_default(),
        prompt_hash: Some(hash.to_owned()),
        action: "hold".into(),
        reasoning: "the model could not be reached; holding".into(),
        confidence: None,
        order_details: None,
        raw_response: None,
        prompt_tokens: None,
        completion_tokens: None,
        cost_usd: None,
        latency_ms: None,
        error: Some(error),
        from_cache: false,
        answer_hash: None,
    }
}

/// Whether a stored decision is a failed call (not a reply).
pub fn is_failed_call(thought: &Thought) -> bool {
    thought
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with(FAILED_CALL))
}

/// The decision a stored thought says (what a replay applies).
pub fn decision_of(thought: &Thought) -> Decision {
    let action = Action::parse(&thought.action).unwrap_or(Action::Hold);
    let order: Order = thought
        .order_details
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let confidence = thought.confidence.unwrap_or(0).clamp(0, 100) as u8;
    let mut decision = Decision::new(
        action,
        Reasoning::Text(thought.reasoning.clone()),
        confidence,
        order,
    );
    decision.error = thought.error.clone();
    decision
}

/// Lowercase hex SHA-256.
pub fn hash_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
