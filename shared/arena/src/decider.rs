//! The agent's decision for a candle, made between the engine's `observe` and `apply`
//! (DESIGN 5a). A baseline decides in memory; a model is asked over OpenRouter with the
//! engine's prompts: the system text (identical for every call of a session) first, the
//! candle's data last, the reply constrained by the engine's JSON schema, `max_tokens` small.
//! The request's SHA-256 is kept with the decision.

use adapters::openrouter::{
    ChatRequest, Message, OpenRouter, OpenRouterError, ResponseFormat, RetryPolicy,
};
use chrono::DateTime;
use engine::baseline::Baseline;
use engine::decision::{Reasoning, parse};
use engine::{Action, Context, Decision, Order};
use secrecy::SecretString;
use store::steps::Thought;

/// Tokens a decision may use: a short JSON object (DESIGN 5b).
pub const MAX_TOKENS: u32 = 150;

/// How a session's agent decides.
pub enum Decider {
    Baseline(Baseline),
    Model(Model),
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
}

/// A call that cannot succeed by trying again (400, 401, 402, 403): the session ends.
#[derive(Debug)]
pub struct Fatal(pub OpenRouterError);

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

    /// Asks the model; a transient failure that outlasted the retries becomes a HOLD carrying
    /// the error, a final one is [`Fatal`].
    pub async fn decide(
        &mut self,
        request: ChatRequest,
        index: u64,
        time_ms: i64,
    ) -> Result<Thought, Fatal> {
        let hash = hash_hex(request.body().to_string().as_bytes());
        let mut thought = Thought {
            candle_index: index as i64,
            candle_time: DateTime::from_timestamp_millis(time_ms).unwrap_or_default(),
            prompt_hash: Some(hash),
            action: "hold".into(),
            reasoning: String::new(),
            confidence: None,
            order_details: None,
            raw_response: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: None,
            latency_ms: None,
            error: None,
        };
        let started = std::time::Instant::now();
        match self
            .openrouter
            .chat(&self.key, &request, &self.policy)
            .await
        {
            Ok(reply) => {
                // a model that refused the schema is asked for plain JSON from now on
                self.format = reply.format;
                let decision = parse(&reply.content);
                thought.action = decision.action.as_str().into();
                thought.reasoning = decision.reasoning.text().into_owned();
                thought.confidence = Some(i32::from(decision.confidence));
                thought.order_details = serde_json::to_value(decision.order).ok();
                thought.raw_response = decision.raw;
                thought.error = decision.error;
                thought.prompt_tokens = reply.prompt_tokens.map(|t| t as i32);
                thought.completion_tokens = reply.completion_tokens.map(|t| t as i32);
                thought.cost_usd = reply.cost;
                thought.latency_ms = Some(reply.latency.as_millis().min(i32::MAX as u128) as i32);
                Ok(thought)
            }
            Err(e) if e.is_transient() => {
                thought.reasoning = "the model could not be reached; holding".into();
                thought.error = Some(format!("model call failed: {e}"));
                thought.latency_ms =
                    Some(started.elapsed().as_millis().min(i32::MAX as u128) as i32);
                Ok(thought)
            }
            Err(e) => Err(Fatal(e)),
        }
    }
}

/// Whether a stored decision is a failed call (not a reply).
pub fn is_failed_call(thought: &Thought) -> bool {
    thought
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("model call failed"))
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
