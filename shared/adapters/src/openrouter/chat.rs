//! `POST {base}/chat/completions` (PLATFORM.md, OpenRouter): one decision per call, structured
//! output, retried with jittered exponential backoff on 408, 429 (after its `Retry-After`), 5xx,
//! timeouts and broken connections; never on 400, 401, 402 or 403. A model that refuses
//! `json_schema` (400) is asked again once with `json_object`. A 200 without a usable message is
//! billed: it is asked again at most once, and what every 200 cost is reported with the outcome.
//!
//! Everything a call waits on ends before the caller's deadline: an attempt starts only when its
//! timeout ends before it, a backoff or a `Retry-After` is waited only when the next attempt fits
//! after it; otherwise the call ends [`OpenRouterError::OutOfTime`] (not asked, or not again).

use std::time::Duration;

use tokio::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::OpenRouter;
use super::error::OpenRouterError;
use super::models::ErrorResponse;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

/// How the reply is constrained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `{"type": "json_schema", ...}` with the engine's reply schema.
    JsonSchema,
    /// `{"type": "json_object"}`: for models that refuse a schema.
    JsonObject,
}

/// A decision request. The key is passed separately and never stored here.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    /// System text first (identical across a session's calls), the candle's data last.
    pub messages: Vec<Message>,
    pub temperature: f64,
    pub max_tokens: u32,
    pub format: ResponseFormat,
    /// The JSON schema sent with [`ResponseFormat::JsonSchema`].
    pub schema: Value,
}

impl ChatRequest {
    /// The body as sent.
    pub fn body(&self) -> Value {
        let response_format = match self.format {
            ResponseFormat::JsonSchema => json!({
                "type": "json_schema",
                "json_schema": { "name": "decision", "strict": true, "schema": self.schema },
            }),
            ResponseFormat::JsonObject => json!({ "type": "json_object" }),
        };
        json!({
            "model": self.model,
            "messages": self.messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "response_format": response_format,
            "stream": false,
        })
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// The message content (the decision JSON, possibly malformed: the engine's parser decides).
    pub content: String,
    /// Wall time of the whole call, retries included.
    pub latency: Duration,
    /// The format that was accepted (after a fallback: `JsonObject`).
    pub format: ResponseFormat,
}

/// What a call was billed: every 200 OpenRouter answered, the unusable ones included.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Requests answered with a 200 (each is billed).
    pub requests: u32,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    /// USD, the sum of OpenRouter's `usage.cost`; `None` when no answer said (the caller prices
    /// the tokens).
    pub cost: Option<f64>,
}

impl Usage {
    fn add(&mut self, other: &Usage) {
        let sum_u = |a: Option<u32>, b: Option<u32>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        };
        self.requests += other.requests;
        self.prompt_tokens = sum_u(self.prompt_tokens, other.prompt_tokens);
        self.completion_tokens = sum_u(self.completion_tokens, other.completion_tokens);
        self.cost = match (self.cost, other.cost) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }
}

/// How many attempts and how long to wait between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Requests at most (the first included).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, each wait drawn between half and all of it.
    pub base_delay: Duration,
    /// No single wait is longer (a `Retry-After` beyond it is cut to it).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (1-based `attempt` just failed with `error`).
    pub fn delay(&self, attempt: u32, error: &OpenRouterError) -> Duration {
        if let Some(secs) = error.retry_after() {
            return Duration::from_secs(secs).min(self.max_delay);
        }
        let full = self
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        // "equal jitter": half fixed, half random, so retries of many sessions spread out
        let half = full / 2;
        half + half.mul_f64(unit_random())
    }
}

/// A uniform number in [0, 1) from the system's random source.
fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    cost: Option<f64>,
}

/// Maps an error status and body to our error (no key material is in either).
pub(super) fn classify(status: u16, retry_after: Option<u64>, body: &[u8]) -> OpenRouterError {
    let message = || {
        serde_json::from_slice::<ErrorResponse>(body)
            .ok()
            .and_then(|e| e.error.message)
            .unwrap_or_else(|| "no message".into())
    };
    match status {
        400 => OpenRouterError::BadRequest { message: message() },
        401 | 403 => OpenRouterError::Rejected {
            status,
            message: message(),
        },
        // the in-flight hold on a prepaid key's balance passes; running out of credits does not
        402 if String::from_utf8_lossy(body).contains("in_flight_budget_exhausted") => {
            OpenRouterError::InFlightBudget { retry_after }
        }
        402 => OpenRouterError::NoCredits { message: message() },
        429 => OpenRouterError::RateLimited { retry_after },
        _ => OpenRouterError::UnexpectedStatus { status },
    }
}

/// The calls of one key, shared by a step's concurrent requests: at most `max_concurrent` in
/// flight, and a `Retry-After` one of them receives (429, 402 in-flight) holds them all.
#[derive(Debug)]
pub struct KeyLimiter {
    slots: tokio::sync::Semaphore,
    blocked_until: std::sync::Mutex<Option<Instant>>,
    rate_limited: std::sync::atomic::AtomicBool,
}

impl KeyLimiter {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            slots: tokio::sync::Semaphore::new(max_concurrent.max(1)),
            blocked_until: std::sync::Mutex::new(None),
            rate_limited: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether a 429 was seen since the last call (and forget it).
    pub fn take_rate_limited(&self) -> bool {
        self.rate_limited
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    fn hold_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut blocked = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.is_none_or(|b| b < until) {
            *blocked = Some(until);
        }
    }

    /// Waits out a `Retry-After` hold when what follows it (`then`) still ends by `deadline`;
    /// `false` when it would not.
    async fn wait_turn(&self, then: Duration, deadline: Instant) -> bool {
        let until = *self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        let start = until.map_or_else(Instant::now, |u| u.max(Instant::now()));
        if start + then > deadline {
            return false;
        }
        tokio::time::sleep_until(start).await;
        true
    }
}

impl OpenRouter {
    /// Asks `request.model` for a decision with `key`, retrying transient failures per `policy`,
    /// within `limiter`'s bounds, everything ending before `deadline`. The error returned is the
    /// last one; the usage is what every 200 of the call was billed.
    pub async fn chat(
        &self,
        key: &SecretString,
        request: &ChatRequest,
        policy: &RetryPolicy,
        limiter: &KeyLimiter,
        deadline: Instant,
    ) -> (Result<ChatReply, OpenRouterError>, Usage) {
        let started = Instant::now();
        let timeout = self.config.chat_timeout;
        let mut request = request.clone();
        let mut usage = Usage::default();
        let mut attempt = 0;
        let mut fell_back = false;
        let mut empty_replies = 0;
        loop {
            attempt += 1;
            let result = {
                let Ok(Ok(_slot)) =
                    tokio::time::timeout_at(deadline, limiter.slots.acquire()).await
                else {
                    return (Err(OpenRouterError::OutOfTime), usage);
                };
                // after the slot: a call queued behind one that got a Retry-After waits it out
                if !limiter.wait_turn(timeout, deadline).await {
                    return (Err(OpenRouterError::OutOfTime), usage);
                }
                let (result, billed) = self.chat_once(key, &request).await;
                usage.add(&billed);
                result
            };
            if let Err(e) = &result {
                if matches!(e, OpenRouterError::RateLimited { .. }) {
                    limiter
                        .rate_limited
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                if let Some(secs) = e.retry_after() {
                    limiter.hold_for(Duration::from_secs(secs).min(policy.max_delay));
                }
            }
            match result {
                Ok(mut reply) => {
                    reply.latency = started.elapsed();
                    return (Ok(reply), usage);
                }
                Err(OpenRouterError::BadRequest { .. })
                    if request.format == ResponseFormat::JsonSchema && !fell_back =>
                {
                    // the model does not take a schema: the same question as a JSON object
                    fell_back = true;
                    request.format = ResponseFormat::JsonObject;
                }
                // a billed answer without a message: asked again once, no more
                Err(e @ OpenRouterError::EmptyReply { .. }) => {
                    empty_replies += 1;
                    if empty_replies > 1 || attempt >= policy.max_attempts {
                        return (Err(e), usage);
                    }
                }
                // a Retry-After wait is the limiter's (shared with the key's other calls)
                Err(e) if e.is_transient() && attempt < policy.max_attempts => {
                    if e.retry_after().is_none() {
                        let wait = policy.delay(attempt, &e);
                        if Instant::now() + wait + timeout > deadline {
                            return (Err(OpenRouterError::OutOfTime), usage);
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
                Err(e) => return (Err(e), usage),
            }
        }
    }

    /// One request; the usage is what it was billed (a 200, usable or not).
    async fn chat_once(
        &self,
        key: &SecretString,
        request: &ChatRequest,
    ) -> (Result<ChatReply, OpenRouterError>, Usage) {
        let timeout = self.config.chat_timeout;
        let sent = self
            .http
            .post(format!("{}/chat/completions", self.config.base_url))
            .timeout(timeout)
            .bearer_auth(key.expose_secret())
            .header("X-OpenRouter-Title", "AlphaLab")
            .json(&request.body())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return (Err(self.transport_within(e, timeout)), Usage::default()),
        };
        let status = response.status().as_u16();
        let retry_after = crate::http::retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            // a 200 whose body never arrived was still answered, and billed
            Err(e) if status == 200 => {
                let error = OpenRouterError::EmptyReply {
                    detail: self.transport_within(e, timeout).to_string(),
                };
                return (Err(error), Usage::billed());
            }
            Err(e) => return (Err(self.transport_within(e, timeout)), Usage::default()),
        };
        if status != 200 {
            return (Err(classify(status, retry_after, &body)), Usage::default());
        }
        let Ok(parsed) = serde_json::from_slice::<ChatResponse>(&body) else {
            let error = OpenRouterError::EmptyReply {
                detail: "the body is not a chat completion".into(),
            };
            return (Err(error), Usage::billed());
        };
        let usage = Usage {
            requests: 1,
            prompt_tokens: parsed.usage.as_ref().and_then(|u| u.prompt_tokens),
            completion_tokens: parsed.usage.as_ref().and_then(|u| u.completion_tokens),
            cost: parsed.usage.as_ref().and_then(|u| u.cost),
        };
        let content = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .filter(|c| !c.trim().is_empty());
        let Some(content) = content else {
            let error = OpenRouterError::EmptyReply {
                detail: "no choices[0].message.content".into(),
            };
            return (Err(error), usage);
        };
        let reply = ChatReply {
            content,
            latency: Duration::ZERO,
            format: request.format,
        };
        (Ok(reply), usage)
    }
}

impl Usage {
    /// One billed request whose usage is unknown.
    fn billed() -> Self {
        Self {
            requests: 1,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let policy = RetryPolicy::default();
        for attempt in 1..=3 {
            let full = Duration::from_millis(500) * (1 << (attempt - 1));
            let d = policy.delay(attempt, &OpenRouterError::UnexpectedStatus { status: 500 });
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        let limited = OpenRouterError::RateLimited {
            retry_after: Some(3),
        };
        assert_eq!(policy.delay(1, &limited), Duration::from_secs(3));
        let long = OpenRouterError::RateLimited {
            retry_after: Some(3600),
        };
        assert_eq!(policy.delay(1, &long), Duration::from_secs(20));
    }

    #[test]
    fn final_statuses_are_not_retried() {
        for status in [400, 401, 402, 403] {
            assert!(!classify(status, None, b"{}").is_transient(), "{status}");
        }
        let in_flight = classify(
            402,
            Some(2),
            br#"{"error":{"code":402,"message":"in_flight_budget_exhausted: requests in flight hold the balance"}}"#,
        );
        assert_eq!(
            in_flight,
            OpenRouterError::InFlightBudget {
                retry_after: Some(2)
            }
        );
        assert!(in_flight.is_transient());
        for status in [408, 429, 500, 502, 503] {
            assert!(classify(status, None, b"{}").is_transient(), "{status}");
        }
    }

    #[test]
    fn the_body_carries_the_schema_or_json_object() {
        let mut request = ChatRequest {
            model: "openai/gpt-4o-mini".into(),
            messages: vec![Message {
                role: "user",
                content: "hi".into(),
            }],
            temperature: 0.3,
            max_tokens: 150,
            format: ResponseFormat::JsonSchema,
            schema: json!({"type": "object"}),
        };
        let body = request.body();
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(body["max_tokens"], 150);
        request.format = ResponseFormat::JsonObject;
        assert_eq!(
            request.body()["response_format"],
            json!({"type": "json_object"})
        );
    }
}
