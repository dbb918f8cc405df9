//! The per-user rate limit on authenticated routes: a DynamoDB counter (moto) per window.

use alphalab_devstack::{TestEnv, assert_error};

#[tokio::test]
async fn the_limiter_answers_429_at_the_configured_count_and_recovers_in_the_next_window() {
    let mut env = TestEnv::new().await.unwrap();
    env.set("RATE_LIMIT_PER_MINUTE", "3");
    env.set("RATE_LIMIT_WINDOW_SECS", "2");
    let app = crate::start_with(env).await;
    let (alice, bob) = (app.token("user_limited"), app.token("user_other"));
    // start at the beginning of a window so the four requests share it
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into_window = now.as_millis() % 2000;
    tokio::time::sleep(std::time::Duration::from_millis(
        (2000 - into_window as u64) % 2000 + 50,
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/users/me", Some(&alice)).await.0, 200);
    }
    let response = app
        .server
        .request(reqwest::Method::GET, "/api/users/me", Some(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let (_, body) = alphalab_devstack::harness::read(response).await.unwrap();
    assert_error(&body, "rate_limited");
    // per user: another user is not limited
    assert_eq!(app.get("/api/users/me", Some(&bob)).await.0, 200);
    // the next window
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    assert_eq!(app.get("/api/users/me", Some(&alice)).await.0, 200);
    // unauthenticated routes do not count
    for _ in 0..5 {
        assert_eq!(app.get("/api/health", None).await.0, 200);
    }
}

#[tokio::test]
async fn the_limiter_fails_open_with_a_warning_when_dynamodb_is_unreachable() {
    let capture = crate::logs();
    let mut env = TestEnv::new().await.unwrap();
    env.set("RATE_LIMIT_PER_MINUTE", "1");
    // nothing listens on port 9
    env.set("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let app = crate::start_with(env).await;
    let token = app.token("user_open");
    for _ in 0..3 {
        let started = std::time::Instant::now();
        assert_eq!(app.get("/api/users/me", Some(&token)).await.0, 200);
        assert!(
            started.elapsed().as_millis() < 1500,
            "{:?}",
            started.elapsed()
        );
    }
    let (_, me) = app.get("/api/users/me", Some(&token)).await;
    let user_id = me["user"]["id"].as_str().unwrap().to_owned();
    let warned = capture.text().lines().any(|l| {
        l.contains("rate limiter unavailable; letting the request through") && l.contains(&user_id)
    });
    assert!(warned, "a warning is logged, in the request's span");
}
