//! The sample events of `infra/events/<binary>/` (what `cargo lambda invoke --data-file` sends):
//! every function of the template has samples for every trigger it has, each reads as the type
//! its `main` takes, an HTTP sample's `routeKey` is a route of its function (a WebSocket one a
//! route of the WebSocket API), and every HTTP and WebSocket sample answers below 500 when its
//! function handles it (the HTTP ones through the router Lambda serves, with a fresh token in
//! place of the placeholder).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use lambda_http::tower::ServiceExt;
use platform::FromEnv;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The template's functions by binary: their triggers (`http`, `sqs`, `schedule`, `websocket`)
/// and HTTP routes (`GET /api/...`).
fn triggers() -> BTreeMap<String, (BTreeSet<&'static str>, BTreeSet<String>)> {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let resources = doc["Resources"].as_mapping().unwrap();
    let integrated: String = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::ApiGatewayV2::Integration"))
        .map(|r| serde_yaml_ng::to_string(r).unwrap())
        .collect();
    let mut out = BTreeMap::new();
    for (id, r) in resources {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = r["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_owned();
        let (mut kinds, mut routes) = (BTreeSet::new(), BTreeSet::new());
        if integrated.contains(id.as_str().unwrap()) {
            kinds.insert("websocket");
        }
        for (_, event) in r["Properties"]["Events"].as_mapping().into_iter().flatten() {
            let p = &event["Properties"];
            match event["Type"].as_str() {
                Some("HttpApi") => {
                    kinds.insert("http");
                    routes.insert(format!(
                        "{} {}",
                        p["Method"].as_str().unwrap().to_uppercase(),
                        p["Path"].as_str().unwrap()
                    ));
                }
                Some("SQS") => {
                    kinds.insert("sqs");
                }
                Some("Schedule") => {
                    kinds.insert("schedule");
                }
                other => panic!("{binary}: a trigger of type {other:?} has no sample kind"),
            }
        }
        out.insert(binary, (kinds, routes));
    }
    out
}

/// What a sample is, from its shape.
fn kind_of(sample: &Value) -> &'static str {
    if sample["requestContext"]["http"].is_object() {
        "http"
    } else if sample["requestContext"]["eventType"].is_string() {
        "websocket"
    } else if sample["Records"].is_array() {
        "sqs"
    } else if sample["detail-type"] == "Scheduled Event" {
        "schedule"
    } else {
        "unknown"
    }
}

/// Every sample: (binary, file name, JSON).
fn samples() -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root().join("infra/events")).unwrap() {
        let dir = dir.unwrap().path();
        let binary = dir.file_name().unwrap().to_str().unwrap().to_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            assert!(name.ends_with(".json"), "{binary}/{name}");
            let text = std::fs::read_to_string(&path).unwrap();
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{binary}/{name}: {e}"));
            out.push((binary.clone(), name, value));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

#[test]
fn every_function_has_samples_for_every_trigger_and_each_reads_as_its_main_takes_it() {
    let functions = triggers();
    let samples = samples();
    let mut covered: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (binary, name, sample) in &samples {
        let (kinds, routes) = functions
            .get(binary)
            .unwrap_or_else(|| panic!("infra/events/{binary}: no such function in the template"));
        let kind = kind_of(sample);
        assert!(
            kinds.contains(kind),
            "{binary}/{name}: a {kind} sample, triggers {kinds:?}"
        );
        covered.entry(binary).or_default().insert(kind);
        match kind {
            "http" => {
                let event: ApiGatewayV2httpRequest = serde_json::from_value(sample.clone())
                    .unwrap_or_else(|e| panic!("{binary}/{name}: {e}"));
                let route = event.route_key.clone().unwrap_or_default();
                assert!(
                    routes.contains(&route),
                    "{binary}/{name}: {route} not in {routes:?}"
                );
                assert_eq!(
                    event.request_context.route_key.as_deref(),
                    Some(route.as_str())
                );
            }
            "websocket" => {
                let event: ApiGatewayWebsocketProxyRequest = serde_json::from_value(sample.clone())
                    .unwrap_or_else(|e| panic!("{binary}/{name}: {e}"));
                let route = event.request_context.route_key.unwrap_or_default();
                assert!(
                    ["$connect", "$disconnect", "$default"].contains(&route.as_str()),
                    "{binary}/{name}: {route}"
                );
            }
            "sqs" => {
                let event: SqsEvent = serde_json::from_value(sample.clone())
                    .unwrap_or_else(|e| panic!("{binary}/{name}: {e}"));
                for record in &event.records {
                    let body = record.body.as_deref().unwrap_or_default();
                    let message: step_worker::StepMessage = serde_json::from_str(body)
                        .unwrap_or_else(|e| panic!("{binary}/{name}: {e}"));
                    // a FIFO record: its group is the session, its deduplication id the step's
                    assert_eq!(
                        record.attributes.get("MessageGroupId"),
                        Some(&message.session_id.to_string())
                    );
                    assert_eq!(
                        record.attributes.get("MessageDeduplicationId"),
                        Some(&message.dedup_id())
                    );
                }
            }
            "schedule" => {
                let _: EventBridgeEvent = serde_json::from_value(sample.clone())
                    .unwrap_or_else(|e| panic!("{binary}/{name}: {e}"));
            }
            _ => panic!("{binary}/{name}: not an event of any trigger"),
        }
    }
    for (binary, (kinds, _)) in &functions {
        let have = covered.get(binary.as_str()).cloned().unwrap_or_default();
        assert_eq!(&have, kinds, "infra/events/{binary} covers every trigger");
    }
}

#[tokio::test]
async fn every_http_and_websocket_sample_answers_below_500() {
    let env = alphalab_devstack::TestEnv::new().await.unwrap();
    let token = env.token("user_samples");
    let lookup = env.owned_lookup();
    let routers: BTreeMap<&str, axum::Router> = crate::functions::all(&lookup)
        .await
        .into_iter()
        .map(|(binary, _, router)| (binary, router))
        .collect();
    let vars = platform::Env::from_lookup(|name| {
        lookup(name).or_else(|| {
            crate::functions::EXTRA
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    });
    let ws = alphalab_ws::Ws::new(&alphalab_ws::Config::from_env(&vars).unwrap())
        .await
        .unwrap();
    let placeholder = "<paste `alphalab token` here>";
    for (binary, name, sample) in samples() {
        let text = sample.to_string().replace(placeholder, &token);
        match kind_of(&sample) {
            "http" => {
                let event: ApiGatewayV2httpRequest = serde_json::from_str(&text).unwrap();
                let request: lambda_http::http::Request<lambda_http::Body> =
                    lambda_http::request::LambdaRequest::ApiGatewayV2(event).into();
                let request = request.map(|b| axum::body::Body::from(b.to_vec()));
                let router = routers[binary.as_str()].clone();
                let status = router.oneshot(request).await.unwrap().status();
                assert!(status.as_u16() < 500, "{binary}/{name}: {status}");
            }
            "websocket" => {
                let event: ApiGatewayWebsocketProxyRequest = serde_json::from_str(&text).unwrap();
                let answer = platform::lambda::ws::dispatch(&ws, &event).await;
                assert!(
                    answer.status_code < 500,
                    "{binary}/{name}: {}",
                    answer.status_code
                );
            }
            _ => {}
        }
    }
}
