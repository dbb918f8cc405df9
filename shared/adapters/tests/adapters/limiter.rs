//! A key's calls go out together up to the limiter's bound, and a `Retry-After` one of them
//! receives holds them all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::openrouter::{
    ChatRequest, KeyLimiter, Message, OpenRouter, OpenRouterConfig, ResponseFormat, RetryPolicy,
};
use alphalab_devstack::openrouter::{MockOpenRouter, Reply};
use config::{Env, FromEnv};

fn client(mock: &MockOpenRouter) -> OpenRouter {
    let base = mock.base_url.clone();
    let env = Env::from_lookup(move |n| (n == "OPENROUTER_BASE_URL").then(|| base.clone()));
    OpenRouter::new(OpenRouterConfig::from_env(&env).unwrap())
}

fn requests(n: usize) -> Vec<ChatRequest> {
    (0..n)
        .map(|i| ChatRequest {
            model: "openai/gpt-4o-mini".into(),
            messages: vec![Message {
                role: "user",
                content: format!("candle {i}"),
            }],
            temperature: 0.3,
            max_tokens: 150,
            format: ResponseFormat::JsonSchema,
            schema: serde_json::json!({"type": "object"}),
        })
        .collect()
}

async fn max_in_flight(bound: usize) -> usize {
    let mock = MockOpenRouter::start().await.unwrap();
    mock.set_latency(Duration::from_millis(100));
    let openrouter = client(&mock);
    let limiter = KeyLimiter::new(bound);
    let key = secrecy::SecretString::from("sk-or-v1-limiter-0123456789");
    let requests = requests(8);
    let policy = RetryPolicy::default();
    let answers = futures::future::join_all(
        requests
            .iter()
            .map(|r| openrouter.chat(&key, r, &policy, &limiter)),
    )
    .await;
    assert!(answers.iter().all(Result::is_ok));
    mock.chat_calls().iter().map(|c| c.in_flight).max().unwrap()
}

#[tokio::test]
async fn a_keys_calls_go_out_together_up_to_the_bound() {
    assert_eq!(max_in_flight(8).await, 8);
    assert_eq!(max_in_flight(2).await, 2);
}

#[tokio::test]
async fn a_retry_after_holds_every_call_of_the_key_and_a_429_is_reported_once() {
    let mock = MockOpenRouter::start().await.unwrap();
    mock.set_latency(Duration::from_millis(50));
    mock.set_script(Some(Arc::new(|call| match call.n {
        1 => Reply::Status(429, Some(1)),
        _ => Reply::Decide,
    })));
    let openrouter = client(&mock);
    let limiter = KeyLimiter::new(1);
    let key = secrecy::SecretString::from("sk-or-v1-limiter-0123456789");
    let requests = requests(3);
    let policy = RetryPolicy::default();
    let started = Instant::now();
    let answers = futures::future::join_all(
        requests
            .iter()
            .map(|r| openrouter.chat(&key, r, &policy, &limiter)),
    )
    .await;
    assert!(answers.iter().all(Result::is_ok));
    // with one slot the 429 came first: every later request waited out its Retry-After
    assert!(started.elapsed() >= Duration::from_secs(1));
    let calls = mock.chat_calls();
    assert_eq!(
        calls[1].attempt, 1,
        "the second request went out after the hold"
    );
    assert_eq!(mock.chat_calls().len(), 4, "three requests and one retry");
    assert!(limiter.take_rate_limited());
    assert!(!limiter.take_rate_limited(), "reported once");
}
