//! Another user's id answers 404 and changes nothing, on every route that takes an id: the walk
//! goes through every function's documented routes, so a route added later is covered (and a
//! route whose id kind is unknown here fails the test until it is added).

use std::collections::HashMap;

use alphalab_devstack::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

/// Alice's state, as Alice reads it.
async fn snapshot(servers: &HashMap<&str, alphalab_devstack::TestServer>, token: &str) -> Value {
    let mut out = serde_json::Map::new();
    for (function, path) in [
        ("api-keys", "/api/api-keys"),
        ("agents", "/api/agents?include_archived=true"),
        ("arena", "/api/arena/sessions"),
        ("notifications", "/api/notifications"),
        ("results", "/api/results"),
        ("certificates", "/api/certificates"),
    ] {
        let (status, body) = servers[function]
            .call(Method::GET, path, Some(token), None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        out.insert(path.into(), body);
    }
    Value::Object(out)
}

#[tokio::test]
async fn every_route_with_an_id_answers_404_for_another_users_id_and_changes_nothing() {
    let openrouter = alphalab_devstack::openrouter::MockOpenRouter::start()
        .await
        .unwrap();
    let mut env = TestEnv::new().await.unwrap();
    env.set("OPENROUTER_BASE_URL", openrouter.base_url.clone());
    let functions = crate::functions::all(env.lookup()).await;
    let mut servers = HashMap::new();
    let mut documented = Vec::new();
    for (name, doc, router) in functions {
        let server = alphalab_devstack::TestServer::serve(router).await.unwrap();
        for (path, item) in serde_json::to_value(&doc).unwrap()["paths"]
            .as_object()
            .unwrap()
        {
            for method in item.as_object().unwrap().keys() {
                documented.push((name, method.to_uppercase(), path.clone()));
            }
        }
        servers.insert(name, server);
    }
    let (alice, mallory) = (env.token("user_alice"), env.token("user_mallory"));
    let keys = &servers["api-keys"];
    let agents = &servers["agents"];
    let (status, key) = keys
        .call(
            Method::POST,
            "/api/api-keys",
            Some(&alice),
            Some(json!({"name": "Main", "key": "sk-or-v1-0123456789abcdef0123456789"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{key}");
    let (status, agent) = agents
        .call(
            Method::POST,
            "/api/agents",
            Some(&alice),
            Some(json!({"name": "Mine", "mode": "omni", "model": "openai/gpt-4o", "strategy_prompt": "p",
                        "indicators": ["rsi"], "api_key_id": key["api_key"]["id"]})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{agent}");
    // a running session of hers (as a start would leave it, without its steps running)
    let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();
    let session: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO test_sessions (user_id, agent_id, type, status, asset, timeframe, start_date,
             end_date, starting_capital, agent_snapshot, config)
         SELECT user_id, id, 'backtest', 'running', 'BTCUSDT', '1h', '2024-01-01', '2024-02-01',
                10000, '{}', '{}' FROM agents WHERE id = $1 RETURNING id",
    )
    .bind(
        agent["agent"]["id"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap(),
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // a notification of hers (as the step worker writes one when a session completes)
    let notification: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO notifications (user_id, type, title, message, data)
         SELECT user_id, 'test_completed', 'Backtest completed', 'Done', '{}'
         FROM test_sessions WHERE id = $1 RETURNING id",
    )
    .bind(session)
    .fetch_one(&pool)
    .await
    .unwrap();
    // a result of that session and its certificate (as the step worker and the certificates
    // function write them; the end-to-end tests make real ones)
    let result: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO test_results (session_id, user_id, agent_id, type, mode, asset, timeframe,
             starting_capital, final_equity, total_pnl, total_pnl_pct, metrics, equity_curve,
             agent_snapshot, config)
         SELECT id, user_id, agent_id, type, 'omni', asset, timeframe, 10000, 10100, 100, 1,
                '{}', '[]', '{}', '{}' FROM test_sessions WHERE id = $1 RETURNING id",
    )
    .bind(session)
    .fetch_one(&pool)
    .await
    .unwrap();
    let certificate: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO certificates (user_id, result_id, verification_code, share_url, snapshot,
             digest)
         SELECT user_id, id, '0000-0000-0000-0000', 'http://localhost:3000/verify/x', '{}', ''
         FROM test_results WHERE id = $1 RETURNING id",
    )
    .bind(result)
    .fetch_one(&pool)
    .await
    .unwrap();
    // the id of Alice's resource each kind of route names
    let ids: HashMap<&str, String> = HashMap::from([
        ("/api/arena/", session.to_string()),
        ("/api/notifications/", notification.to_string()),
        ("/api/results/", result.to_string()),
        ("/api/export/results/", result.to_string()),
        ("/api/certificates/", certificate.to_string()),
        (
            "/api/api-keys/",
            key["api_key"]["id"].as_str().unwrap().to_owned(),
        ),
        (
            "/api/agents/",
            agent["agent"]["id"].as_str().unwrap().to_owned(),
        ),
    ]);
    let before = snapshot(&servers, &alice).await;
    let mut walked = 0;
    for (function, method, path) in &documented {
        if !path.contains("{id}") {
            continue;
        }
        let id = ids
            .iter()
            .find(|(prefix, _)| path.starts_with(*prefix))
            .map(|(_, id)| id)
            .unwrap_or_else(|| {
                panic!("{method} {path}: add the id of an Alice resource for this route")
            });
        let concrete = path.replace("{id}", id);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = matches!(method, Method::POST | Method::PUT).then(|| {
            if path.ends_with("/speed") {
                json!({"speed": "instant"})
            } else {
                json!({"name": "Stolen"})
            }
        });
        let (status, response) = servers[function]
            .call(method.clone(), &concrete, Some(&mallory), body)
            .await
            .unwrap();
        assert_eq!(
            status, 404,
            "{method} {concrete} as another user: {response}"
        );
        assert_eq!(response["error"]["code"], "not_found");
        walked += 1;
    }
    assert!(walked >= 12, "walked {walked} routes with an id");
    // nothing of hers changed (the lists carry every field, timestamps included)
    let after = snapshot(&servers, &alice).await;
    assert_eq!(before, after, "nothing of Alice's changed");
    assert_eq!(
        openrouter.keys_seen().len(),
        1,
        "Mallory's validate never reached OpenRouter"
    );
}
