//! A key's calls go out together up to the limiter's bound, and a `Retry-After` one of them
//! receives holds them all; a call ends before its deadline; an empty 200 is billed and asked
//! again once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::openrouter::OpenRouterError;

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

/// A deadline no call of these tests comes near.
fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(300)
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
            .map(|r| openrouter.chat(&key, r, &policy, &limiter, far())),
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|(r, usage)| r.is_ok() && usage.requests == 1)
    );
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
            .map(|r| openrouter.chat(&key, r, &policy, &limiter, far())),
    )
    .await;
    assert!(answers.iter().all(|(r, _)| r.is_ok()));
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

#[tokio::test]
async fn an_empty_200_is_billed_and_asked_again_once_then_reported_with_both_costs() {
    let mock = MockOpenRouter::start().await.unwrap();
    mock.set_script(Some(Arc::new(|call| match call.attempt {
        1 => Reply::Empty,
        _ => Reply::Decide,
    })));
    let openrouter = client(&mock);
    let (key, policy) = (
        secrecy::SecretString::from("sk-or-v1-empty-0123456789"),
        RetryPolicy::default(),
    );
    let request = &requests(1)[0];
    let (answer, usage) = openrouter
        .chat(&key, request, &policy, &KeyLimiter::new(1), far())
        .await;
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(usage.requests, 2, "the empty answer and the good one");
    let cost = usage.cost.unwrap();
    assert!(cost > 0.0);
    // both empty: asked twice in all, the error carries the two billed answers
    mock.set_script(Some(Arc::new(|_| Reply::Empty)));
    let (answer, usage) = openrouter
        .chat(&key, &requests(2)[1], &policy, &KeyLimiter::new(1), far())
        .await;
    assert!(
        matches!(answer, Err(OpenRouterError::EmptyReply { .. })),
        "{answer:?}"
    );
    assert_eq!(usage.requests, 2);
    assert!(usage.cost.unwrap() > 0.0);
    assert_eq!(mock.chat_calls().len(), 4);
}

#[tokio::test]
async fn a_call_that_cannot_end_before_the_deadline_is_not_asked_and_a_retry_waits_only_when_it_fits()
 {
    let mock = MockOpenRouter::start().await.unwrap();
    let openrouter = client(&mock); // chat timeout 30 s by default
    let key = secrecy::SecretString::from("sk-or-v1-deadline-0123456789");
    let policy = RetryPolicy::default();
    let soon = tokio::time::Instant::now() + Duration::from_secs(5);
    let (answer, usage) = openrouter
        .chat(&key, &requests(1)[0], &policy, &KeyLimiter::new(1), soon)
        .await;
    assert_eq!(answer, Err(OpenRouterError::OutOfTime));
    assert_eq!(usage.requests, 0);
    assert!(mock.chat_calls().is_empty(), "nothing was sent");
    // a Retry-After (20 s at most) after which the next attempt (30 s) would end past the
    // deadline: the call ends at once, not after the wait
    mock.set_script(Some(Arc::new(|_| Reply::Status(429, Some(60)))));
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let (answer, _) = openrouter
        .chat(
            &key,
            &requests(1)[0],
            &policy,
            &KeyLimiter::new(1),
            deadline,
        )
        .await;
    assert_eq!(answer, Err(OpenRouterError::OutOfTime));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(mock.chat_calls().len(), 1);
}
