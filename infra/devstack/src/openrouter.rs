//! A local stand-in for OpenRouter: a real HTTP server on 127.0.0.1 speaking OpenRouter's
//! documented wire format (PLATFORM.md, OpenRouter), including its error responses and slow
//! answers. What it answers to `GET /api/v1/key` depends on the key it is sent:
//!
//! | key contains | answer |
//! |---|---|
//! | `spent` | 200, a limit of 10 with 0 remaining |
//! | `reject` | 401 `{"error": {"code": 401, "message": "No auth credentials found"}}` |
//! | `forbid` | 403 |
//! | `broke` | 402 `{"error": {"code": 402, "message": "Insufficient credits"}}` |
//! | `busy` | 429 with `Retry-After: 30` |
//! | `down` | 500 |
//! | `slow` | 200 after 30 s (longer than any client timeout) |
//! | anything else | 200 `{"data": {"label", "limit": 25, "limit_remaining": 20.5, "usage": 4.5, ...}}` |
//!
//! Every request's bearer token is recorded, so a test can check what was sent.
//!
//! `POST /api/v1/chat/completions` answers like OpenRouter (`choices[0].message.content`,
//! `usage` with tokens and `cost`) with a decision that is a pure function of the prompt (mostly
//! HOLD), unless a test sets a [`Script`]: per request it may answer a status (401, 402, 429 with
//! `Retry-After`, 500...), a malformed reply, or answer late. A model id containing `no-schema`
//! refuses `response_format: json_schema` with a 400, as some models do. The keys above behave
//! the same here (`reject` 401, `broke` 402).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// A running mock; its server lives as long as the test's runtime.
#[derive(Debug, Clone)]
pub struct MockOpenRouter {
    /// The value for `OPENROUTER_BASE_URL`.
    pub base_url: String,
    shared: Shared,
}

#[derive(Clone, Default)]
struct Shared {
    /// The demo models' server: free answers (no cost), the demo models listed.
    demo: bool,
    seen: Arc<Mutex<Vec<String>>>,
    fail_with: Arc<Mutex<Option<u16>>>,
    calls: Arc<Mutex<Vec<ChatCall>>>,
    script: Arc<Mutex<Option<Script>>>,
    latency: Arc<Mutex<Duration>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// One chat request as the mock received it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCall {
    /// 1-based, over the mock's life.
    pub n: usize,
    pub model: String,
    /// The last message's content (the candle's data).
    pub prompt: String,
    /// 1 for the first request with this prompt, 2 for its first retry, ...
    pub attempt: usize,
    /// `json_schema` or `json_object`.
    pub format: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
    /// Whether it was answered with a decision (200), as opposed to an error status.
    pub answered: bool,
    /// SHA-256 (hex) of the request body as received: the key the decision cache files the
    /// answer under.
    pub body_hash: String,
    /// Chat requests in flight when this one arrived (itself included).
    pub in_flight: usize,
}

/// What the mock answers to one chat request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The default: a decision derived from the prompt.
    Decide,
    /// 200 with this message content (malformed text, a chosen decision...).
    Content(String),
    /// This status with OpenRouter's error body, and `Retry-After` when given.
    Status(u16, Option<u64>),
    /// The default answer after this long (longer than a client's timeout: a timeout).
    Late(Duration),
    /// 402 `in_flight_budget_exhausted` with this `Retry-After` (the key's balance is held by
    /// requests in flight; not out of credits).
    InFlightBudget(u64),
    /// 200 with `usage` (billed) and no message content, as OpenRouter sometimes answers.
    Empty,
}

/// Chooses the reply per request.
pub type Script = Arc<dyn Fn(&ChatCall) -> Reply + Send + Sync>;

/// A number that is a pure function of a prompt (FNV-1a: stable across runs and platforms),
/// for answers that any order of calls reproduces.
pub fn prompt_number(prompt: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in prompt.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The decision the mock gives a prompt: a pure function of its text, HOLD about 80 % of the
/// time, else long, short or close.
pub fn decision_for(prompt: &str) -> String {
    let h = prompt_number(prompt);
    let action = match h % 20 {
        0 | 1 => "long",
        2 => "short",
        3 => "close",
        _ => "hold",
    };
    json!({
        "action": action,
        "reasoning": format!("mock decision {}", h % 1000),
        "confidence": 50 + (h % 50),
        "order": { "stop_loss_pct": 2.0, "take_profit_pct": 4.0 },
    })
    .to_string()
}

impl MockOpenRouter {
    /// Serves on a free port of 127.0.0.1 on the current runtime.
    pub async fn start() -> Result<Self> {
        Self::serve(Shared::default(), ([127, 0, 0, 1], 0).into()).await
    }

    /// The demo models of `alphalab serve --demo-models` ([`DEMO_MODELS`]) on `addr`: every key
    /// is accepted, every answer is free and takes `latency`.
    pub async fn start_demo(addr: std::net::SocketAddr, latency: Duration) -> Result<Self> {
        let shared = Shared {
            demo: true,
            ..Shared::default()
        };
        *shared.latency.lock().unwrap_or_else(|p| p.into_inner()) = latency;
        *shared.script.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(|call: &ChatCall| {
                Reply::Content(demo_answer(&call.model, &call.prompt))
            }));
        Self::serve(shared, addr).await
    }

    async fn serve(shared: Shared, addr: std::net::SocketAddr) -> Result<Self> {
        let app = Router::new()
            .route("/api/v1/key", get(key))
            .route("/api/v1/chat/completions", post(chat))
            .route("/api/v1/models", get(models))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .context("binding the local OpenRouter")?;
        let base_url = format!("http://{}/api/v1", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url, shared })
    }

    /// The bearer tokens received so far, in order.
    pub fn keys_seen(&self) -> Vec<String> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every chat request so far, in order.
    pub fn chat_calls(&self) -> Vec<ChatCall> {
        self.shared
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many chat requests were answered with a decision (200), per prompt.
    pub fn answered_prompts(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for call in self.chat_calls().into_iter().filter(|c| c.answered) {
            *out.entry(call.prompt).or_insert(0) += 1;
        }
        out
    }

    /// Answers chat requests per `script` from now on (`None`: the default decisions).
    pub fn script(&self) -> Option<Script> {
        self.shared
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every chat answer takes at least this long (a model's latency).
    pub fn set_latency(&self, latency: Duration) {
        *self
            .shared
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = latency;
    }

    pub fn set_script(&self, script: Option<Script>) {
        *self.shared.script.lock().unwrap_or_else(|p| p.into_inner()) = script;
    }

    /// From now on every request answers `status` (401, 402, 429, 500...), or normally again
    /// with `None`.
    pub fn fail_with(&self, status: Option<u16>) {
        *self
            .shared
            .fail_with
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = status;
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": status.as_u16(), "message": message } })),
    )
        .into_response()
}

async fn key(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let Some(key) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
    else {
        return error(StatusCode::UNAUTHORIZED, "No auth credentials found");
    };
    shared
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(key.clone());
    let forced = *shared.fail_with.lock().unwrap_or_else(|p| p.into_inner());
    let key = match forced {
        Some(401) => "reject".to_owned(),
        Some(402) => "broke".to_owned(),
        Some(429) => "busy".to_owned(),
        Some(_) => "down".to_owned(),
        None => key,
    };
    let label = format!(
        "{}...{}",
        &key[..key.len().min(10)],
        &key[key.len().saturating_sub(3)..]
    );
    if key.contains("reject") {
        return error(StatusCode::UNAUTHORIZED, "No auth credentials found");
    }
    if key.contains("forbid") {
        return error(StatusCode::FORBIDDEN, "Key disabled");
    }
    if key.contains("broke") {
        return error(StatusCode::PAYMENT_REQUIRED, "Insufficient credits");
    }
    if key.contains("busy") {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
        return response;
    }
    if key.contains("down") {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    if key.contains("slow") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let (limit, remaining, usage) = if key.contains("spent") {
        (10.0, 0.0, 10.0)
    } else {
        (25.0, 20.5, 4.5)
    };
    axum::Json(json!({
        "data": {
            "label": label,
            "limit": limit,
            "limit_remaining": remaining,
            "limit_reset": null,
            "usage": usage,
            "usage_daily": 0.5,
            "usage_weekly": 1.5,
            "usage_monthly": 4.5,
            "is_free_tier": false,
            "is_provisioning_key": false,
        }
    }))
    .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
}

/// Counts a request in flight until it is answered (or dropped).
struct InFlight {
    gauge: Arc<std::sync::atomic::AtomicUsize>,
    count: usize,
}

impl InFlight {
    fn enter(gauge: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        let count = gauge.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Self {
            gauge: gauge.clone(),
            count,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn chat(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let Some(key) = bearer(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "No auth credentials found");
    };
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON body");
    };
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    let prompt = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let format = request["response_format"]["type"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    let in_flight = InFlight::enter(&shared.in_flight);
    let call = {
        let mut calls = shared.calls.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = calls.iter().filter(|c| c.prompt == prompt).count() + 1;
        let call = ChatCall {
            n: calls.len() + 1,
            model: model.clone(),
            prompt: prompt.clone(),
            attempt,
            format: format.clone(),
            temperature: request["temperature"].as_f64(),
            max_tokens: request["max_tokens"].as_u64(),
            answered: false,
            in_flight: in_flight.count,
            body_hash: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes())
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        };
        calls.push(call.clone());
        call
    };
    if key.contains("reject") {
        return error(StatusCode::UNAUTHORIZED, "No auth credentials found");
    }
    if key.contains("broke") {
        return error(StatusCode::PAYMENT_REQUIRED, "Insufficient credits");
    }
    if model.contains("no-schema") && format == "json_schema" {
        return error(
            StatusCode::BAD_REQUEST,
            "response_format json_schema is not supported by this model",
        );
    }
    let script = shared
        .script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let reply = script.map(|s| s(&call)).unwrap_or(Reply::Decide);
    let latency = *shared.latency.lock().unwrap_or_else(|p| p.into_inner());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let content = match reply {
        Reply::Empty => None,
        Reply::Decide => Some(decision_for(&prompt)),
        Reply::Content(text) => Some(text),
        Reply::Late(delay) => {
            tokio::time::sleep(delay).await;
            Some(decision_for(&prompt))
        }
        Reply::InFlightBudget(retry_after) => {
            let mut response = (
                StatusCode::PAYMENT_REQUIRED,
                axum::Json(json!({ "error": { "code": 402,
                    "message": "in_flight_budget_exhausted: requests in flight hold the key's remaining balance",
                    "metadata": { "reason": "in_flight_budget_exhausted" } } })),
            )
                .into_response();
            if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Reply::Status(status, retry_after) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = error(status, status.canonical_reason().unwrap_or("Error"));
            if let Some(secs) = retry_after
                && let Ok(value) = header::HeaderValue::from_str(&secs.to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
    };
    // answered with a decision (an empty 200 is billed, but answers nothing)
    if content.is_some()
        && let Some(c) = shared
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(call.n - 1)
    {
        c.answered = true;
    }
    let prompt_tokens = (body.len() / 4) as u64;
    let price = if shared.demo { 0.0 } else { 1.0 };
    let mut usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 40,
        "total_tokens": prompt_tokens + 40,
        "cost": price * (prompt_tokens as f64 * 1e-7 + 40.0 * 4e-7),
    });
    // a model id containing `nocost`: OpenRouter sent no cost (priced from GET /models)
    if model.contains("nocost")
        && let Some(u) = usage.as_object_mut()
    {
        u.remove("cost");
    }
    axum::Json(json!({
        "id": format!("gen-{}", call.n),
        "object": "chat.completion",
        "model": model,
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": { "role": "assistant", "content": content },
        }],
        "usage": usage,
    }))
    .into_response()
}

/// The listed price of the mock's models: the same as the `usage.cost` it sends (USD 1e-7 per
/// prompt token, 4e-7 per completion token).
pub const PRICE_PROMPT: f64 = 1e-7;
pub const PRICE_COMPLETION: f64 = 4e-7;

async fn models(State(shared): State<Shared>) -> Response {
    if shared.demo {
        let free = json!({ "prompt": "0", "completion": "0" });
        let data: Vec<serde_json::Value> = DEMO_MODELS
            .iter()
            .map(|(id, description)| json!({ "id": id, "description": description, "pricing": free }))
            .collect();
        return axum::Json(json!({ "data": data })).into_response();
    }
    let pricing =
        json!({ "prompt": PRICE_PROMPT.to_string(), "completion": PRICE_COMPLETION.to_string() });
    axum::Json(json!({ "data": [
        { "id": "openai/gpt-4o-mini", "pricing": pricing },
        { "id": "acme/nocost-model", "pricing": pricing },
        { "id": "acme/no-schema-model", "pricing": pricing },
    ] }))
    .into_response()
}

/// The demo models `alphalab serve --demo-models` answers with: deterministic functions of the
/// candle's prompt (the engine's text), free, so a newcomer can watch a model agent think with
/// no key and no network.
pub const DEMO_MODELS: &[(&str, &str)] = &[
    (
        "demo/trend-follower",
        "goes long when the close is above its first moving average (sma_*/ema_*), closes below it",
    ),
    (
        "demo/rsi-reversion",
        "goes long when rsi_14 is under 30, closes when it is over 70",
    ),
    (
        "demo/coin-flip",
        "acts on a hash of the prompt: about one candle in ten, long or close",
    ),
];

/// A number the prompt gives for `label` (`Close 48090.42`, `  rsi_14: 81.61`).
fn prompt_value(prompt: &str, label: &str) -> Option<f64> {
    prompt.lines().find_map(|line| {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix(&format!("{label}: ")) {
            return rest.trim().parse().ok();
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == label)
            .and_then(|w| w[1].parse().ok())
    })
}

/// A demo model's answer to a candle's prompt.
pub fn demo_answer(model: &str, prompt: &str) -> String {
    let flat = prompt.contains("Position: none");
    let close = prompt_value(prompt, "Close");
    let decide = |action: &str, reasoning: String, confidence: u32| {
        json!({"action": action, "reasoning": reasoning, "confidence": confidence,
               "order": {"stop_loss_pct": 3.0, "take_profit_pct": 6.0}})
        .to_string()
    };
    match model {
        "demo/trend-follower" => {
            let average = prompt.lines().find_map(|l| {
                let l = l.trim();
                let (name, value) = l.split_once(": ")?;
                (name.starts_with("sma_") || name.starts_with("ema_"))
                    .then(|| Some((name.to_owned(), value.trim().parse::<f64>().ok()?)))
                    .flatten()
            });
            match (close, average) {
                (Some(c), Some((name, a))) if flat && c > a => decide(
                    "long",
                    format!("close {c} is above {name} {a}: the trend is up"),
                    70,
                ),
                (Some(c), Some((name, a))) if !flat && c < a => decide(
                    "close",
                    format!("close {c} fell under {name} {a}: the trend turned"),
                    65,
                ),
                (_, None) => decide("hold", "no moving average among my indicators".into(), 10),
                _ => decide("hold", "the trend has not changed".into(), 50),
            }
        }
        "demo/rsi-reversion" => match prompt_value(prompt, "rsi_14") {
            Some(rsi) if flat && rsi < 30.0 => decide(
                "long",
                format!("RSI {rsi} is oversold: expecting a bounce"),
                70,
            ),
            Some(rsi) if !flat && rsi > 70.0 => decide(
                "close",
                format!("RSI {rsi} is overbought: taking profit"),
                65,
            ),
            Some(rsi) => decide("hold", format!("RSI {rsi} is in between"), 50),
            None => decide("hold", "rsi_14 is not among my indicators".into(), 10),
        },
        _ => match prompt_number(prompt) % 20 {
            0 if flat => decide("long", "the coin says long".into(), 50),
            1 if !flat => decide("close", "the coin says close".into(), 50),
            _ => decide("hold", "the coin says wait".into(), 50),
        },
    }
}
