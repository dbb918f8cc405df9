//! `alphalab rotate-keys`: every key re-encrypted with the active version, idempotently, and
//! still usable afterwards.

use alphalab_devstack::TestEnv;
use reqwest::Method;
use serde_json::json;

const V1: &str = "v1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const V2: &str = "v2=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn rotate(db: &str, keys: &str) -> String {
    crate::succeed(
        &["rotate-keys", "--batch", "2"],
        &[("DATABASE_URL", db), ("ENCRYPTION_KEYS", keys)],
    )
}

#[tokio::test]
async fn rotation_reencrypts_every_key_once_and_keeps_them_usable() {
    let openrouter = alphalab_devstack::openrouter::MockOpenRouter::start()
        .await
        .unwrap();
    let mut env = TestEnv::new().await.unwrap();
    env.set("OPENROUTER_BASE_URL", openrouter.base_url.clone());
    env.set("ENCRYPTION_KEYS", format!("{V1};active=v1"));
    let functions = crate::functions::all(env.lookup()).await;
    let keys_router = functions.into_iter().find(|f| f.0 == "api-keys").unwrap().2;
    let server = alphalab_devstack::TestServer::serve(keys_router)
        .await
        .unwrap();
    let mut ids = Vec::new();
    let mut plains = Vec::new();
    for (i, user) in ["user_r1", "user_r1", "user_r2", "user_r3", "user_r3"]
        .iter()
        .enumerate()
    {
        let plain = format!("sk-or-v1-rotation{i}0123456789abcdef0123");
        let (status, body) = server
            .call(
                Method::POST,
                "/api/api-keys",
                Some(&env.token(user)),
                Some(json!({"name": format!("k{i}"), "key": plain})),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        ids.push((
            user.to_string(),
            body["api_key"]["id"].as_str().unwrap().to_owned(),
        ));
        plains.push(plain);
    }
    let both = format!("{V1},{V2};active=v2");
    let first = rotate(&env.db.url, &both);
    assert!(first.starts_with("5 keys re-encrypted with v2"), "{first}");
    let second = rotate(&env.db.url, &both);
    assert!(
        second.starts_with("0 keys re-encrypted"),
        "idempotent: {second}"
    );

    // the function with only v2 now reads every key
    env.set("ENCRYPTION_KEYS", format!("{V2};active=v2"));
    let functions = crate::functions::all(env.lookup()).await;
    let keys_router = functions.into_iter().find(|f| f.0 == "api-keys").unwrap().2;
    let server = alphalab_devstack::TestServer::serve(keys_router)
        .await
        .unwrap();
    let before = openrouter.keys_seen().len();
    for (user, id) in &ids {
        let (status, body) = server
            .call(
                Method::POST,
                &format!("/api/api-keys/{id}/validate"),
                Some(&env.token(user)),
                Some(json!({})),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["api_key"]["status"], "valid");
    }
    // OpenRouter received exactly the original keys
    let seen = &openrouter.keys_seen()[before..];
    assert_eq!(seen, plains.as_slice());
}
