//! The HTTP service every function is wrapped in, over real HTTP: a panicking handler answers
//! the generic 500 body while its payload reaches the log, inside the request's span.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use platform::config::LogFormat;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn a_panic_answers_the_generic_500_and_its_payload_is_logged_not_returned() {
    let capture = Capture::default();
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

    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
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
