//! Logs: every request's lines carry its request id and, once authenticated, the user id; no
//! token ever appears in a log line. JSON lines, as in Lambda, captured in memory.

use platform::config::LogFormat;

#[tokio::test]
async fn log_lines_carry_request_and_user_ids_and_never_a_token() {
    let capture = alphalab_devstack::LogCapture::default();
    platform::telemetry::init_with_writer(LogFormat::Json, capture.clone(), Some("info"));
    let app = crate::start().await;
    let token = app.token("user_logged");
    let (status, body) = app.get("/api/users/me", Some(&token)).await;
    assert_eq!(status, 200);
    let user_id = body["user"]["id"].as_str().unwrap().to_owned();
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, _) = app.get("/api/users/me", Some(&forged)).await;
    assert_eq!(status, 401);

    let text = capture.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let responses: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "finished processing request")
        .collect();
    assert_eq!(responses.len(), 2, "one access line per request: {text}");
    for line in &responses {
        let request_id = line["span"]["request_id"].as_str().unwrap();
        assert_eq!(request_id.len(), 36, "a generated uuid: {line}");
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

    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(&token) && !text.contains(signature),
        "a token was logged"
    );
    assert!(!text.contains(&forged));
}
