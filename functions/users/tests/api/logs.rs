//! Logs: every request's lines carry its request id and, once authenticated, the user id; no
//! token ever appears in a log line. JSON lines, as in Lambda, captured in memory.

#[tokio::test]
async fn log_lines_carry_request_and_user_ids_and_never_a_token() {
    let capture = crate::logs();
    let app = crate::start().await;
    let token = app.token("user_logged");
    // our own request ids pick this test's lines out of the process's log
    let ids = [
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    ];
    let send = |token: String, id: String| {
        let request = app
            .server
            .request(reqwest::Method::GET, "/api/users/me", Some(&token))
            .header("x-request-id", id);
        async move {
            alphalab_devstack::harness::read(request.send().await.unwrap())
                .await
                .unwrap()
        }
    };
    let (status, body) = send(token.clone(), ids[0].clone()).await;
    assert_eq!(status, 200);
    let user_id = body["user"]["id"].as_str().unwrap().to_owned();
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, _) = send(forged.clone(), ids[1].clone()).await;
    assert_eq!(status, 401);
    // a request without an id gets a generated one, returned in the response
    let response = app
        .server
        .request(reqwest::Method::GET, "/api/health", None)
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36, "a generated uuid");

    let text = capture.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let responses: Vec<&serde_json::Value> = ids
        .iter()
        .flat_map(|id| {
            lines.iter().filter(move |l| {
                l["message"] == "finished processing request"
                    && l["span"]["request_id"] == id.as_str()
            })
        })
        .collect();
    assert_eq!(responses.len(), 2, "one access line per request");
    for line in &responses {
        assert_eq!(line["span"]["path"], "/api/users/me");
    }
    assert_eq!(responses[0]["span"]["user_id"], user_id.as_str());
    assert_eq!(responses[0]["status"], 200);
    assert!(
        responses[1]["span"].get("user_id").is_none(),
        "{}",
        responses[1]
    );
    assert_eq!(responses[1]["status"], 401);
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == generated.as_str()),
        "the generated id is on the request's lines"
    );

    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(&token) && !text.contains(signature),
        "a token was logged"
    );
    assert!(!text.contains(&forged));
}
