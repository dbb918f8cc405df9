//! The HTTP service every function is wrapped in, over real HTTP: a panicking handler answers
//! the generic 500 body while its payload reaches the log, inside the request's span.

use axum::Router;
use axum::routing::get;
use platform::config::LogFormat;

#[tokio::test]
async fn a_panic_answers_the_generic_500_and_its_payload_is_logged_not_returned() {
    let capture = alphalab_devstack::LogCapture::default();
    platform::telemetry::init_with_writer(LogFormat::Json, capture.clone(), Some("info"));
    async fn boom() -> &'static str {
        let detail = std::hint::black_box("relation users at 10.1.2.3");
        panic!("lost invariant: {detail}")
    }
    let routes: Router<()> = Router::new().route("/boom", get(boom));
    let server = alphalab_devstack::TestServer::serve(platform::http::service(routes, ()))
        .await
        .unwrap();
    let (status, body) = server
        .call(reqwest::Method::GET, "/boom", None, None)
        .await
        .unwrap();
    assert_eq!(status, 500);
    alphalab_devstack::assert_error(&body, "internal");
    assert!(!body.to_string().contains("10.1.2.3"), "{body}");

    let text = capture.text();
    let line = text
        .lines()
        .find(|l| l.contains("handler panicked") && l.contains("\"panic\""))
        .unwrap_or_else(|| panic!("no panic line in:\n{text}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["panic"], "lost invariant: relation users at 10.1.2.3");
    assert!(
        line["span"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() > 10),
        "{line}"
    );
}

#[tokio::test]
async fn text_with_a_nul_character_is_refused_by_name_before_any_query() {
    use axum::routing::post;
    async fn echo(
        platform::extract::Json(v): platform::extract::Json<serde_json::Value>,
    ) -> String {
        v.to_string()
    }
    let routes: Router<()> = Router::new().route("/echo", post(echo));
    let server = alphalab_devstack::TestServer::serve(platform::http::service(routes, ()))
        .await
        .unwrap();
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/echo",
            None,
            Some(serde_json::json!({"profile": {"links": ["ok", "a\u{0}b"]}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 422, "{body}");
    alphalab_devstack::assert_error(&body, "invalid_body");
    assert_eq!(
        body["error"]["message"],
        "profile.links[1]: text must not contain the NUL character (U+0000)"
    );
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            "/echo",
            None,
            Some(serde_json::json!({"profile": {"links": ["ok"]}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
}
