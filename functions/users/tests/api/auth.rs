//! Clerk token verification through the real router: every rejection answers 401 with the JSON
//! error body; keys come from a JWKS served over HTTP.

use alphalab_devstack::assert_error;
use alphalab_devstack::{SigningKey, TestEnv, TokenIssuer, TokenSpec, issuer::encode_part};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;

const ME: &str = "/api/users/me";

async fn rejected(app: &alphalab_devstack::TestApp, token: &str, message: &str) {
    let (status, body) = app.get(ME, Some(token)).await;
    assert_eq!(status, 401, "body: {body}");
    assert_error(&body, "unauthorized");
    assert_eq!(body["error"]["message"], message, "body: {body}");
}

#[tokio::test]
async fn a_valid_token_answers_200_with_the_user_and_settings() {
    let app = crate::start().await;
    let (status, body) = app.get(ME, Some(&app.token("user_valid"))).await;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["user"]["clerk_id"], "user_valid");
    assert_eq!(body["settings"]["max_leverage"], 1);
}

#[tokio::test]
async fn a_missing_or_malformed_header_answers_401() {
    let app = crate::start().await;
    let (status, body) = app.get(ME, None).await;
    assert_eq!(status, 401);
    assert_error(&body, "unauthorized");
    assert_eq!(body["error"]["message"], "missing bearer token");

    let token = app.token("user_x");
    for header in [
        format!("Basic {token}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {token} extra"),
        token.clone(),
    ] {
        let response = app
            .server
            .client
            .get(app.server.url(ME))
            .header("authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let (status, body) = alphalab_devstack::harness::read(response).await.unwrap();
        assert_eq!(status, 401, "header {header:?}");
        assert_error(&body, "unauthorized");
    }
    rejected(&app, "not-a-jwt", "malformed token").await;
    rejected(&app, "a.b.c", "malformed token").await;
}

#[tokio::test]
async fn an_expired_token_answers_401_but_skew_of_under_5_seconds_is_tolerated() {
    let app = crate::start().await;
    let issuer = app.env.issuer;
    let mut spec = TokenSpec::new(issuer, "user_exp");
    spec.expires_in = -30;
    rejected(&app, &issuer.mint(&spec).unwrap(), "token expired").await;

    spec.expires_in = -3;
    let (status, _) = app.get(ME, Some(&issuer.mint(&spec).unwrap())).await;
    assert_eq!(status, 200, "3 s past exp is within the 5 s skew");
}

#[tokio::test]
async fn a_token_not_yet_valid_answers_401() {
    let app = crate::start().await;
    let issuer = app.env.issuer;
    let mut spec = TokenSpec::new(issuer, "user_nbf");
    spec.not_before_in = 60;
    spec.expires_in = 120;
    rejected(&app, &issuer.mint(&spec).unwrap(), "token not yet valid").await;

    spec.not_before_in = 3;
    let (status, _) = app.get(ME, Some(&issuer.mint(&spec).unwrap())).await;
    assert_eq!(status, 200, "nbf 3 s ahead is within the 5 s skew");
}

#[tokio::test]
async fn a_wrong_issuer_answers_401() {
    let app = crate::start().await;
    let issuer = app.env.issuer;
    let mut spec = TokenSpec::new(issuer, "user_iss");
    spec.iss = "https://evil.clerk.accounts.dev".into();
    rejected(
        &app,
        &issuer.mint(&spec).unwrap(),
        "token issuer not accepted",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_authorized_party_answers_401_and_none_is_accepted() {
    let app = crate::start().await;
    let issuer = app.env.issuer;
    let mut spec = TokenSpec::new(issuer, "user_azp");
    spec.azp = Some("https://evil.example.com".into());
    rejected(
        &app,
        &issuer.mint(&spec).unwrap(),
        "token authorized party not accepted",
    )
    .await;

    spec.azp = None;
    let (status, _) = app.get(ME, Some(&issuer.mint(&spec).unwrap())).await;
    assert_eq!(status, 200, "a token without azp is accepted");
}

#[tokio::test]
async fn a_tampered_token_answers_401() {
    let app = crate::start().await;
    let token = app.token("user_victim");
    let parts: Vec<&str> = token.split('.').collect();
    // same header and signature, payload claiming another subject
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("user_attacker");
    let forged = format!("{}.{}.{}", parts[0], encode_part(&claims), parts[2]);
    rejected(&app, &forged, "invalid token signature").await;

    // a flipped signature byte
    let mut signature = B64.decode(parts[2]).unwrap();
    signature[10] ^= 0x01;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], B64.encode(signature));
    rejected(&app, &flipped, "invalid token signature").await;

    let (_, body) = app.get(ME, Some(&token)).await;
    assert_eq!(body["user"]["clerk_id"], "user_victim");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE clerk_id = 'user_attacker'")
            .await,
        0
    );
}

#[tokio::test]
async fn alg_none_answers_401() {
    let app = crate::start().await;
    let issuer = app.env.issuer;
    let claims = TokenSpec::new(issuer, "user_none").claims();
    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": issuer.current_key().kid });
        let token = format!("{}.{}.", encode_part(&header), encode_part(&claims));
        rejected(&app, &token, "token algorithm not accepted (only RS256)").await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_answers_401() {
    let app = crate::start().await;
    let issuer = app.env.issuer;
    let key = issuer.current_key();
    let claims = TokenSpec::new(issuer, "user_hs").claims();
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": key.kid });
    let input = format!("{}.{}", encode_part(&header), encode_part(&claims));
    for secret in [
        key.public_pem().unwrap().into_bytes(),
        key.jwk()["n"].to_string().into_bytes(),
    ] {
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", B64.encode(mac.as_ref()));
        rejected(&app, &token, "token algorithm not accepted (only RS256)").await;
    }
}

#[tokio::test]
async fn an_unknown_kid_triggers_one_refetch_and_a_rotated_key_is_accepted() {
    let issuer = TokenIssuer::start().unwrap();
    let mut env = TestEnv::new().await.unwrap();
    for (k, v) in issuer.env() {
        env.set(&k, v);
    }
    // the floor of the interval
    env.set("CLERK_JWKS_MIN_REFRESH_SECS", "10");
    let app = crate::start_with(env).await;

    let (status, _) = app.get(ME, Some(&issuer.token("user_rot").unwrap())).await;
    assert_eq!(status, 200);
    assert_eq!(issuer.jwks_fetches(), 1, "keys are fetched on first use");
    let (status, _) = app.get(ME, Some(&issuer.token("user_rot").unwrap())).await;
    assert_eq!(status, 200);
    assert_eq!(issuer.jwks_fetches(), 1, "known keys are cached");

    tokio::time::sleep(std::time::Duration::from_millis(10_100)).await;
    issuer.rotate().unwrap();
    let (status, body) = app.get(ME, Some(&issuer.token("user_rot").unwrap())).await;
    assert_eq!(status, 200, "the rotated key is fetched: {body}");
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let issuer = TokenIssuer::start().unwrap();
    let mut env = TestEnv::new().await.unwrap();
    for (k, v) in issuer.env() {
        env.set(&k, v);
    }
    // the default interval: 5 minutes
    let app = crate::start_with(env).await;
    let (status, _) = app
        .get(ME, Some(&issuer.token("user_flood").unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(issuer.jwks_fetches(), 1);

    let stranger = SigningKey::generate().unwrap();
    let claims = TokenSpec::new(&issuer, "user_flood").claims();
    for _ in 0..10 {
        rejected(
            &app,
            &stranger.sign(&claims).unwrap(),
            "token signed by an unknown key",
        )
        .await;
    }
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "a flood of unknown kids within 5 minutes fetches nothing"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_answers_503_not_401() {
    let mut env = TestEnv::new().await.unwrap();
    env.set("CLERK_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json");
    let app = crate::start_with(env).await;
    let (status, body) = app.get(ME, Some(&app.token("user_down"))).await;
    assert_eq!(status, 503, "body: {body}");
    assert_error(&body, "unavailable");
    // and so does every request while no key could be had, even within the refetch throttle
    for _ in 0..3 {
        let response = app
            .server
            .request(reqwest::Method::GET, ME, Some(&app.token("user_down")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
    }
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internal detail: {body}"
    );
}
