//! template.yaml, the functions' routers and the OpenAPI document agree: every HttpApi route the
//! template declares for a function is served by that function's router and documented, and
//! every route a function documents (routes are registered once, for the router and the document
//! together) is declared for it in the template.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml_ng::Value;

type Routes = BTreeSet<(String, String)>;

/// template.yaml's text.
fn template_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"))
        .unwrap()
}

/// template.yaml, parsed (short-form tags kept as tagged values).
pub(crate) fn template() -> Value {
    serde_yaml_ng::from_str(&template_text()).unwrap()
}

/// (method, path) of every HttpApi event of every function, by the function's binary name.
fn template_routes() -> Vec<(String, Routes)> {
    let doc = template();
    let mut out = Vec::new();
    for (_, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("every function names its binary")
            .to_owned();
        let mut routes = Routes::new();
        if let Some(events) = resource["Properties"]["Events"].as_mapping() {
            for (_, event) in events {
                if event["Type"].as_str() == Some("HttpApi") {
                    let p = &event["Properties"];
                    routes.insert((
                        p["Method"].as_str().unwrap().to_ascii_lowercase(),
                        p["Path"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
        out.push((binary, routes));
    }
    out
}

fn documented(doc: &utoipa::openapi::OpenApi) -> Routes {
    let value = serde_json::to_value(doc).unwrap();
    let mut routes = Routes::new();
    for (path, item) in value["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                routes.insert((method.clone(), path.clone()));
            }
        }
    }
    routes
}

/// Each function, configured with variables that reach no running service (the database pool
/// connects lazily; no route below gets past its checks).
async fn functions() -> Vec<(&'static str, utoipa::openapi::OpenApi, axum::Router)> {
    let vars = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:9/none"),
        ("CLERK_ISSUER", "http://127.0.0.1:9"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ];
    crate::functions::all(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .await
}

#[tokio::test]
async fn every_template_route_is_served_and_documented_by_its_function_and_the_reverse() {
    // the HTTP functions: those with HttpApi events (the ws function has its own test below)
    let declared: Vec<(String, Routes)> = template_routes()
        .into_iter()
        .filter(|(_, routes)| !routes.is_empty())
        .collect();
    let functions = functions().await;
    assert_eq!(
        declared
            .iter()
            .map(|(b, _)| b.as_str())
            .collect::<BTreeSet<_>>(),
        functions.iter().map(|(b, ..)| *b).collect::<BTreeSet<_>>(),
        "template.yaml and the workspace have the same functions"
    );
    for (binary, doc, router) in functions {
        let template = &declared.iter().find(|(b, _)| b == binary).unwrap().1;
        let documented = documented(&doc);
        assert!(!documented.is_empty());
        assert_eq!(
            &documented, template,
            "{binary}: documented routes (left) and template routes (right) differ"
        );
        let server = alphalab_devstack::TestServer::serve(router).await.unwrap();
        for (method, path) in template {
            let path = path.replace("{id}", "00000000-0000-0000-0000-000000000001");
            // an unroutable request is our fallback's 404/405; anything else (401 without a
            // token, 503 without a database) was routed to a handler
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .request(method.clone(), &path, None)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let unrouted =
                status == 405 || (status == 404 && body["error"]["message"] == "route not found");
            assert!(
                !unrouted,
                "{binary} does not serve {method} {path}: {status} {body}"
            );
        }
    }
}

#[tokio::test]
async fn the_local_stacks_document_has_every_functions_routes_and_the_bearer_scheme() {
    // what `alphalab serve` serves at /api/openapi.json is checked end to end in serve.rs;
    // here: the document is valid JSON with the error body and the users' schemas
    let doc = serde_json::to_value(alphalab_users::openapi()).unwrap();
    for schema in [
        "ErrorBody",
        "Settings",
        "SettingsUpdate",
        "User",
        "ProfileUpdate",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }
    // every function's document: each `$ref` names a schema the document has
    for (name, doc, _) in functions().await {
        let doc = serde_json::to_value(doc).unwrap();
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let schema = reference.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"].get(schema).is_some(),
                "{name}: $ref to a missing schema {schema}"
            );
        }
    }
    assert_eq!(
        doc["paths"]["/api/users/me/settings"]["put"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/SettingsUpdate"
    );
}

/// The WebSocket API's routes are the ws function's route keys, all integrated with it, and the
/// function has the permissions publishing needs.
#[test]
fn the_websocket_api_routes_every_key_of_the_ws_function_to_it() {
    let doc = template();
    let resources = doc["Resources"].as_mapping().unwrap();
    let of_type = |kind: &str| -> Vec<&Value> {
        resources
            .values()
            .filter(|r| r["Type"].as_str() == Some(kind))
            .collect()
    };
    let apis = of_type("AWS::ApiGatewayV2::Api");
    assert_eq!(apis.len(), 1);
    assert_eq!(
        apis[0]["Properties"]["ProtocolType"].as_str(),
        Some("WEBSOCKET")
    );
    assert_eq!(
        apis[0]["Properties"]["RouteSelectionExpression"].as_str(),
        Some("$request.body.action")
    );
    let keys: BTreeSet<String> = of_type("AWS::ApiGatewayV2::Route")
        .iter()
        .map(|r| r["Properties"]["RouteKey"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = alphalab_ws::ROUTE_KEYS
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(keys, expected);
    let text = template_text();
    assert!(
        text.contains("functions/${WsFunction.Arn}/invocations"),
        "integrated with the ws function"
    );
    let ws = &doc["Resources"]["WsFunction"];
    assert_eq!(
        ws["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("ws")
    );
    let policies = serde_yaml_ng::to_string(&ws["Properties"]["Policies"]).unwrap();
    assert!(
        policies.contains("execute-api:ManageConnections"),
        "{policies}"
    );
    for table in ["ConnectionsTable", "SubscriptionsTable"] {
        assert!(policies.contains(table), "{table}: {policies}");
    }
    let env = serde_yaml_ng::to_string(&ws["Properties"]["Environment"]).unwrap();
    for var in [
        "WEBSOCKET_API_ENDPOINT",
        "CONNECTIONS_TABLE",
        "SUBSCRIPTIONS_TABLE",
    ] {
        assert!(env.contains(var), "{var}: {env}");
    }
}

#[test]
fn the_step_function_is_fed_by_the_fifo_queue_with_batch_failures_and_a_visibility_of_six_timeouts()
{
    let doc = template();
    let step = &doc["Resources"]["BacktestStepFunction"];
    assert_eq!(
        step["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("backtest-step")
    );
    let event = &step["Properties"]["Events"]["Steps"];
    assert_eq!(event["Type"].as_str(), Some("SQS"));
    assert_eq!(
        event["Properties"]["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    // one record per invocation: a step owns its invocation's deadline
    assert_eq!(event["Properties"]["BatchSize"].as_i64(), Some(1));
    let queue = &doc["Resources"]["StepsQueue"]["Properties"];
    assert_eq!(queue["FifoQueue"].as_bool(), Some(true));
    let visibility = queue["VisibilityTimeout"].as_i64().unwrap();
    let timeout = doc["Parameters"]["StepTimeoutSeconds"]["Default"]
        .as_i64()
        .unwrap();
    let max_timeout = doc["Parameters"]["StepTimeoutSeconds"]["MaxValue"]
        .as_i64()
        .unwrap();
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} < 6 x {timeout}"
    );
    assert!(
        max_timeout * 6 <= visibility,
        "no allowed timeout breaks the rule: {max_timeout} x 6 > {visibility}"
    );
    for bound in ["Default", "MaxValue"] {
        let budget_ms = doc["Parameters"]["StepBudgetMs"][bound].as_i64().unwrap();
        let timeout = doc["Parameters"]["StepTimeoutSeconds"][bound]
            .as_i64()
            .unwrap();
        assert!(
            budget_ms * 2 <= timeout * 1000,
            "{bound}: the timeout leaves room after the budget"
        );
    }
    // the worker's last delivery is the queue's maxReceiveCount
    let max_receive = queue["RedrivePolicy"]["maxReceiveCount"].as_i64().unwrap();
    assert_eq!(max_receive, 5);
    let env = &step["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["STEP_MAX_RECEIVE_COUNT"].as_str(),
        Some(max_receive.to_string().as_str())
    );
    let policies = serde_yaml_ng::to_string(&step["Properties"]["Policies"]).unwrap();
    for needed in [
        "SQSPollerPolicy",
        "SQSSendMessagePolicy",
        "execute-api:ManageConnections",
    ] {
        assert!(policies.contains(needed), "{needed}: {policies}");
    }
    // the watchdog waits longer than a normal redelivery, and consumes the dead letters
    let stall = doc["Parameters"]["StepStallSeconds"]["MinValue"]
        .as_i64()
        .unwrap();
    assert!(stall > visibility, "the watchdog never races a redelivery");
    let watchdog = &doc["Resources"]["StepWatchdogFunction"]["Properties"];
    assert_eq!(
        watchdog["Events"]["EveryMinute"]["Properties"]["Schedule"].as_str(),
        Some("rate(1 minute)")
    );
    let dead = &watchdog["Events"]["DeadLetters"]["Properties"];
    assert_eq!(dead["BatchSize"].as_i64(), Some(1));
    let dlq_visibility =
        doc["Resources"]["StepsDeadLetterQueue"]["Properties"]["VisibilityTimeout"]
            .as_i64()
            .unwrap();
    assert!(dlq_visibility >= 6 * watchdog["Timeout"].as_i64().unwrap());
    // the ws and arena functions send steps (resume, stop, start)
    for function in ["WsFunction", "ArenaFunction"] {
        let props = &doc["Resources"][function]["Properties"];
        assert!(
            !props["Environment"]["Variables"]["STEPS_QUEUE_URL"].is_null(),
            "{function}"
        );
        let policies = serde_yaml_ng::to_string(&props["Policies"]).unwrap();
        assert!(policies.contains("SQSSendMessagePolicy"), "{function}");
    }
}

#[test]
fn forward_tick_runs_every_minute_one_at_a_time_each_over_before_the_next() {
    let doc = template();
    let tick = &doc["Resources"]["ForwardTickFunction"]["Properties"];
    assert_eq!(
        tick["Events"]["EveryMinute"]["Properties"]["Schedule"].as_str(),
        Some("rate(1 minute)")
    );
    assert_eq!(tick["ReservedConcurrentExecutions"].as_i64(), Some(1));
    assert!(
        tick["Timeout"].as_i64().unwrap() < 60,
        "a tick ends before the next one fires"
    );
    let variables = &tick["Environment"]["Variables"];
    for name in [
        "STEPS_QUEUE_URL",
        "BINANCE_BASE_URL",
        "SUBSCRIPTIONS_TABLE",
        "WEBSOCKET_API_ENDPOINT",
    ] {
        assert!(!variables[name].is_null(), "{name}");
    }
    let policies = serde_yaml_ng::to_string(&tick["Policies"]).unwrap();
    for needed in [
        "SQSSendMessagePolicy",
        "dynamodb:Query",
        "execute-api:ManageConnections",
    ] {
        assert!(policies.contains(needed), "{needed}: {policies}");
    }
    // the arena reads the forward limit, a parameter
    assert_eq!(
        doc["Parameters"]["ForwardMaxActive"]["Default"].as_i64(),
        Some(10)
    );
}

#[test]
fn the_apis_and_functions_are_throttled_logged_and_traced_and_every_dead_letter_is_watched() {
    let doc = template();
    let resources = &doc["Resources"];
    let text = |v: &serde_yaml_ng::Value| serde_yaml_ng::to_string(v).unwrap();
    // both APIs: default route throttling from the parameters, access logs in a log group kept
    // for LogRetentionDays
    for (api, logs) in [
        (&resources["HttpApi"]["Properties"], "HttpApiAccessLogs"),
        (
            &resources["WebSocketStage"]["Properties"],
            "WebSocketAccessLogs",
        ),
    ] {
        let throttling = text(&api["DefaultRouteSettings"]);
        assert!(
            throttling.contains("ApiThrottlingRateLimit"),
            "{throttling}"
        );
        assert!(
            throttling.contains("ApiThrottlingBurstLimit"),
            "{throttling}"
        );
        let access = text(&api["AccessLogSettings"]);
        assert!(access.contains(logs), "{access}");
        assert!(access.contains("$context.requestId"), "{access}");
        assert_eq!(
            resources[logs]["Type"].as_str(),
            Some("AWS::Logs::LogGroup")
        );
        assert!(
            text(&resources[logs]["Properties"]["RetentionInDays"]).contains("LogRetentionDays")
        );
    }
    // the scheduled functions: EventBridge's dead letters and the failed invocations go to a
    // queue an alarm watches, as the steps' dead-letter queue
    for function in ["StepWatchdogFunction", "ForwardTickFunction"] {
        let props = &resources[function]["Properties"];
        let dead = text(&props["Events"]["EveryMinute"]["Properties"]["DeadLetterConfig"]);
        assert!(dead.contains("ScheduleFailuresQueue"), "{function}: {dead}");
        let failure = text(&props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]);
        assert!(
            failure.contains("ScheduleFailuresQueue"),
            "{function}: {failure}"
        );
    }
    for (alarm, queue) in [
        ("StepsDeadLetterAlarm", "StepsDeadLetterQueue"),
        ("ScheduleFailuresAlarm", "ScheduleFailuresQueue"),
    ] {
        let a = &resources[alarm]["Properties"];
        assert_eq!(
            a["MetricName"].as_str(),
            Some("ApproximateNumberOfMessagesVisible")
        );
        assert!(text(&a["Dimensions"]).contains(queue), "{alarm}");
        assert!(
            text(&a["AlarmActions"]).contains("AlarmTopicArn"),
            "{alarm}"
        );
    }
    // every function: traced, and its own log group with a retention
    assert_eq!(
        doc["Globals"]["Function"]["Tracing"].as_str(),
        Some("Active")
    );
    for (id, resource) in resources.as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap();
        let logs = &resources[id.replace("Function", "Logs").as_str()]["Properties"];
        assert!(
            text(&logs["LogGroupName"]).contains(&format!("/aws/lambda/${{{id}}}")),
            "{id}"
        );
        assert!(
            text(&logs["RetentionInDays"]).contains("LogRetentionDays"),
            "{id}"
        );
    }
    // a serverless rule is silenced only on the resource it is wrong for, and says why
    for (id, resource) in resources.as_mapping().unwrap() {
        let ignored = text(&resource["Metadata"]["cfn-lint"]["config"]["ignore_checks"]);
        if ignored.trim() != "null" {
            assert!(
                id.as_str().unwrap().contains("DeadLetter")
                    || id.as_str() == Some("ScheduleFailuresQueue"),
                "{id:?} ignores {ignored}"
            );
            assert_eq!(ignored.trim(), "- ES6000", "{id:?}");
        }
    }
    assert!(
        !std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.cfnlintrc")
            .exists(),
        "no project-wide silencing"
    );
}

#[test]
fn the_database_url_is_a_secret_that_asks_for_tls() {
    let doc = template();
    let p = &doc["Parameters"]["DatabaseUrl"];
    assert_eq!(p["NoEcho"].as_bool(), Some(true));
    assert!(p["Default"].is_null(), "a secret has no default");
    let pattern = p["AllowedPattern"].as_str().unwrap();
    assert!(
        pattern.contains("sslmode=(require|verify-ca|verify-full)"),
        "{pattern}"
    );
    // the functions refuse a URL without TLS in Lambda, whatever the template let through
    for (url, ok) in [
        (
            "postgres://u:p@db.example.com:5432/alphalab?sslmode=require",
            true,
        ),
        ("postgres://u:p@db.example.com:5432/alphalab", false),
    ] {
        let vars = [
            ("DATABASE_URL", url),
            ("AWS_LAMBDA_FUNCTION_NAME", "alphalab-users"),
        ];
        let env = platform::Env::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        });
        use platform::FromEnv;
        assert_eq!(
            platform::DatabaseConfig::from_env(&env).is_ok(),
            ok,
            "{url}"
        );
    }
}

#[test]
fn the_functions_database_connections_fit_the_budget() {
    let doc = template();
    let default = |name: &str| doc["Parameters"][name]["Default"].as_i64().unwrap();
    // a number, or a parameter at its default
    let number = |v: &serde_yaml_ng::Value| -> i64 {
        match v {
            serde_yaml_ng::Value::Tagged(t) if t.tag == "Ref" => default(t.value.as_str().unwrap()),
            serde_yaml_ng::Value::String(s) => s.parse().unwrap(),
            other => other.as_i64().unwrap(),
        }
    };
    let globals = &doc["Globals"]["Function"]["Environment"]["Variables"];
    let mut total = 0;
    for (id, r) in doc["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let props = &r["Properties"];
        let reserved = &props["ReservedConcurrentExecutions"];
        assert!(
            !reserved.is_null(),
            "{id:?} opens the database: a reserved concurrency"
        );
        let pool = match &props["Environment"]["Variables"]["DATABASE_MAX_CONNECTIONS"] {
            serde_yaml_ng::Value::Null => number(&globals["DATABASE_MAX_CONNECTIONS"]),
            own => number(own),
        };
        total += number(reserved) * pool;
        // an SQS trigger never asks for more invocations than the function may run
        for (_, event) in props["Events"].as_mapping().into_iter().flatten() {
            let max = &event["Properties"]["ScalingConfig"]["MaximumConcurrency"];
            if !max.is_null() {
                assert!(number(max) <= number(reserved), "{id:?}");
            }
        }
    }
    let budget = default("MaxDatabaseConnections");
    assert!(
        total <= budget,
        "{total} connections > MaxDatabaseConnections {budget}"
    );
    assert_eq!(total, 148, "the README's table adds up to this");
}

/// Each function's own text in template.yaml (from its logical id to the next resource).
fn resource_text<'a>(text: &'a str, id: &str) -> &'a str {
    let start = text
        .find(&format!("\n  {id}:\n"))
        .unwrap_or_else(|| panic!("{id} in template.yaml"))
        + 1;
    let rest = &text[start + id.len() + 4..];
    let end = rest
        .find("\n\n  ")
        .map_or(text.len(), |i| start + id.len() + 4 + i);
    &text[start..end]
}

#[test]
fn every_function_is_sized_for_its_work_with_a_reason_and_http_ones_fit_api_gateway() {
    let doc = template();
    let text = template_text();
    let globals = &doc["Globals"]["Function"];
    assert!(
        globals["MemorySize"].is_null() && globals["Timeout"].is_null(),
        "each function says its own size and timeout"
    );
    for (id, r) in doc["Resources"].as_mapping().unwrap() {
        let id = id.as_str().unwrap();
        let kind = r["Type"].as_str().unwrap();
        assert_ne!(kind, "AWS::Lambda::Function", "{id}: a SAM function");
        if kind != "AWS::Serverless::Function" {
            continue;
        }
        let props = &r["Properties"];
        let own = resource_text(&text, id);
        for key in ["MemorySize", "Timeout"] {
            assert!(!props[key].is_null(), "{id} sets {key}");
            let line = own
                .lines()
                .position(|l| l.trim_start().starts_with(&format!("{key}:")))
                .unwrap();
            let above = own.lines().nth(line - 1).unwrap().trim_start();
            assert!(
                above.starts_with("# ") && above.len() > 20,
                "{id}: a one-line comment says why its {key}"
            );
        }
        let memory = props["MemorySize"].as_i64().unwrap();
        assert!((128..=10_240).contains(&memory), "{id}: {memory} MB");
        let http = props["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .any(|(_, e)| e["Type"].as_str() == Some("HttpApi"));
        if http {
            let timeout = props["Timeout"].as_i64().expect("a literal timeout");
            assert!(
                timeout <= 30,
                "{id}: {timeout} s, API Gateway answers 503 after 30 s"
            );
        }
    }
}

#[test]
fn secrets_come_from_noecho_parameters_without_defaults_and_only_to_functions() {
    let doc = template();
    let secrets: Vec<&str> = doc["Parameters"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, p)| p["NoEcho"].as_bool() == Some(true))
        .map(|(name, p)| {
            let name = name.as_str().unwrap();
            assert!(p["Default"].is_null(), "{name}: a secret has no default");
            name
        })
        .collect();
    assert_eq!(
        secrets,
        [
            "DatabaseUrl",
            "EncryptionKeys",
            "LedgerSigningKey",
            "ClerkWebhookSecret"
        ]
    );
    // no secret in Globals (every function would get it) nor anywhere but a function's
    // environment (an output, a tag or a description would show it)
    let text = template_text();
    for secret in &secrets {
        let refs: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains(&format!("!Ref {secret}")) || l.contains(&format!("${{{secret}}}"))
            })
            .collect();
        assert!(!refs.is_empty(), "{secret} is used");
        for line in refs {
            let variable = line.trim_start();
            assert!(
                line.starts_with("          ") && variable.contains(&format!(": !Ref {secret}")),
                "{secret} reaches only functions' environment variables: {line}"
            );
        }
    }
    let globals = &doc["Globals"]["Function"]["Environment"]["Variables"];
    for (name, value) in globals.as_mapping().unwrap() {
        if let serde_yaml_ng::Value::Tagged(t) = value {
            assert!(
                !secrets.contains(&t.value.as_str().unwrap_or_default()),
                "{name:?} is a secret in Globals"
            );
        }
    }
}

/// The committed document (what the deployed API and the local stack serve).
fn committed_document() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json"))
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn the_document_is_complete_enough_to_build_a_client_from() {
    let doc = committed_document();
    let public = [
        ("get", "/api/health"),
        ("get", "/api/openapi.json"),
        ("post", "/api/webhooks/clerk"),
        ("get", "/api/certificates/verify/{code}"),
        ("get", "/api/ledger/keys"),
    ];
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            let responses = op["responses"].as_object().unwrap();
            let secured = op["security"] != serde_json::json!([]);
            assert_eq!(
                !secured,
                public.contains(&(method.as_str(), path.as_str())),
                "{method} {path}: only the public routes declare an empty security"
            );
            if secured {
                assert_eq!(op["security"], serde_json::json!([{"bearer": []}]));
            }
            let mut expected = vec!["405"];
            if secured {
                expected.extend(["401", "429"]);
            }
            if path.contains('{') {
                expected.push("404");
            }
            if op.get("requestBody").is_some() {
                expected.extend(["400", "413", "422"]);
            }
            if path != "/api/openapi.json" {
                expected.push("503");
            }
            for status in expected {
                assert_eq!(
                    responses[status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} answers {status} with the error body"
                );
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/json"]["schema"].is_object(),
                        "{method} {path} {status} has a body schema"
                    );
                }
            }
            if let Some(created) = responses.get("201") {
                assert!(
                    created["headers"]["Location"].is_object(),
                    "{method} {path}: 201 sets Location"
                );
                let links = created["links"].as_object().unwrap();
                assert!(!links.is_empty(), "{method} {path} links its read");
                for link in links.values() {
                    let target = link["operationId"].as_str().unwrap();
                    let exists = doc["paths"].as_object().unwrap().values().any(|item| {
                        item.as_object()
                            .unwrap()
                            .values()
                            .any(|op| op["operationId"] == target)
                    });
                    assert!(
                        exists,
                        "{method} {path} links to {target}, which is missing"
                    );
                }
            }
        }
    }
    assert_eq!(ids.len(), 52, "every operation");
    // query parameters are in the query, optional unless the operation needs them
    let candles = &doc["paths"]["/api/data/candles"]["get"]["parameters"];
    for p in candles.as_array().unwrap() {
        assert_eq!(p["in"], "query", "{p}");
    }
}

#[tokio::test]
async fn each_functions_schemas_are_the_documents_under_the_same_name() {
    // two functions with a schema of the same name would lose one when merged
    let doc = committed_document();
    for (binary, own, _) in functions().await {
        let own = serde_json::to_value(own).unwrap();
        for (name, schema) in own["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let merged = &doc["components"]["schemas"][name];
            // the document adds `not: {pattern}` to body texts: compare without it
            let strip = |v: &serde_json::Value| {
                let mut v = v.clone();
                if let Some(props) = v["properties"].as_object_mut() {
                    for p in props.values_mut() {
                        if let Some(p) = p.as_object_mut() {
                            p.remove("not");
                        }
                        if let Some(items) = p.get_mut("items").and_then(|i| i.as_object_mut()) {
                            items.remove("not");
                        }
                    }
                }
                v
            };
            assert_eq!(
                strip(merged),
                strip(schema),
                "{binary}'s schema {name} is not the document's"
            );
        }
    }
}

#[tokio::test]
async fn a_secured_route_without_a_token_is_401_and_an_unknown_path_404() {
    let doc = committed_document();
    for (binary, own, router) in functions().await {
        let server = alphalab_devstack::TestServer::serve(router).await.unwrap();
        let own = serde_json::to_value(own).unwrap();
        for (path, item) in own["paths"].as_object().unwrap() {
            for (method, _) in item.as_object().unwrap() {
                let published = &doc["paths"][path][method];
                if published["security"] == serde_json::json!([]) {
                    continue;
                }
                let url = path.replace("{id}", "00000000-0000-0000-0000-000000000001");
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let response = server
                    .request(m, &url, None)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(status, 401, "{binary} {method} {path}: {body}");
                assert_eq!(body["error"]["code"], "unauthorized");
            }
        }
        let response = server
            .request(reqwest::Method::GET, "/api/no-such-thing", None)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{binary}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[test]
fn the_fuzzers_accepted_failures_are_rules_the_schema_cannot_express_listed_in_the_readme() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let baseline: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tools/schemathesis-baseline.json")).unwrap(),
    )
    .unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("#### Rules the schema cannot express")
        .nth(1)
        .expect("the README lists them")
        .split("\n#")
        .next()
        .unwrap();
    let doc = committed_document();
    for entry in baseline["entries"].as_array().unwrap() {
        let operation = entry["operation"].as_str().unwrap();
        assert_eq!(
            entry["check"], "positive_data_acceptance",
            "{operation}: only schema-valid input refused may be accepted"
        );
        assert!(
            section.contains(&format!("`{operation}`")),
            "{operation} is not listed under 'Rules the schema cannot express'"
        );
        let (method, path) = operation.split_once(' ').unwrap();
        assert!(
            doc["paths"][path][method.to_lowercase()].is_object(),
            "{operation} is an operation of the document"
        );
    }
}

/// Actions without resource-level permissions: the only ones a statement may allow on `*`.
const NO_RESOURCE_LEVEL: &[&str] = &[
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",
];

/// Every resource a statement names, as text (`!Sub`/`!GetAtt`/`!Ref` kept by their target).
fn statement_resources(statement: &Value) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => format!(
            "!{} {}",
            t.tag.to_string().trim_start_matches('!'),
            t.value.as_str().unwrap_or("?")
        ),
        other => panic!("a resource {other:?}"),
    };
    match &statement["Resource"] {
        Value::Sequence(items) => items.iter().map(one).collect(),
        other => vec![one(other)],
    }
}

fn statement_actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::Sequence(items) => items
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect(),
        other => vec![other.as_str().unwrap().to_owned()],
    }
}

#[test]
fn every_permission_names_a_resource_of_the_template_and_only_publishers_post_to_connections() {
    let doc = template();
    let resources: BTreeSet<String> = doc["Resources"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let publishers = ["ws", "backtest-step", "step-watchdog", "forward-tick"];
    let check = |owner: &str, statement: &Value| {
        let actions = statement_actions(statement);
        for resource in statement_resources(statement) {
            if resource == "*" {
                for action in &actions {
                    assert!(
                        NO_RESOURCE_LEVEL.contains(&action.as_str()),
                        "{owner}: {action} on *"
                    );
                }
                continue;
            }
            // a wildcard only inside an ARN of one of the template's resources
            let names_one = resources.iter().any(|r| {
                resource.contains(&format!("${{{r}}}"))
                    || resource.contains(&format!("${{{r}."))
                    || resource.starts_with(&format!("!GetAtt {r}."))
                    || resource == format!("!Ref {r}")
            });
            assert!(
                names_one,
                "{owner}: {resource} names no resource of the template"
            );
        }
        if actions.iter().any(|a| a.starts_with("execute-api:")) {
            assert_eq!(actions, ["execute-api:ManageConnections"], "{owner}");
            assert_eq!(
                statement_resources(statement),
                [
                    "!Sub arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${WebSocketStageName}/*/@connections/*"
                ],
                "{owner}: only the WebSocket API's @connections"
            );
        }
    };
    for (id, r) in doc["Resources"].as_mapping().unwrap() {
        let id = id.as_str().unwrap();
        let props = &r["Properties"];
        match r["Type"].as_str().unwrap() {
            "AWS::Serverless::Function" => {
                let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
                for policy in props["Policies"].as_sequence().into_iter().flatten() {
                    let policy = policy.as_mapping().unwrap_or_else(|| {
                        panic!("{id}: a managed policy ({policy:?}) is too wide")
                    });
                    for (name, value) in policy {
                        let name = name.as_str().unwrap();
                        if name == "Statement" {
                            for statement in value.as_sequence().unwrap() {
                                check(id, statement);
                                if statement_actions(statement)
                                    .iter()
                                    .any(|a| a.starts_with("execute-api:"))
                                {
                                    assert!(publishers.contains(&binary), "{id} may not publish");
                                }
                            }
                        } else {
                            // a SAM policy template on a named resource of the template
                            assert!(
                                name.ends_with("Policy") && !name.contains("FullAccess"),
                                "{id}: {name}"
                            );
                            let target = value.as_mapping().unwrap().values().next().unwrap();
                            let Value::Tagged(t) = target else {
                                panic!("{id}: {name} on a literal name")
                            };
                            let named = t.value.as_str().unwrap().split('.').next().unwrap();
                            assert!(resources.contains(named), "{id}: {name} on {named}");
                        }
                    }
                }
            }
            "AWS::IAM::Role" => {
                assert!(
                    props["ManagedPolicyArns"].is_null(),
                    "{id}: no managed policy"
                );
                for policy in props["Policies"].as_sequence().into_iter().flatten() {
                    for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                        check(id, statement);
                    }
                }
            }
            "AWS::SQS::QueuePolicy" => {
                for statement in props["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                    check(id, statement);
                    assert!(
                        !statement["Condition"].is_null(),
                        "{id}: limited to its sources"
                    );
                }
            }
            "AWS::Lambda::Permission" => {
                let source = statement_resources(
                    &serde_yaml_ng::Mapping::from_iter([(
                        Value::from("Resource"),
                        props["SourceArn"].clone(),
                    )])
                    .into(),
                );
                assert!(
                    source[0].contains("${WebSocketApi}"),
                    "{id}: limited to its API"
                );
            }
            _ => {}
        }
    }
    // the text holds no managed admin policy anywhere
    let text = template_text();
    for wide in ["FullAccess", "AdministratorAccess", "PowerUserAccess"] {
        assert!(!text.contains(wide), "{wide}");
    }
}

/// The HTTP routes of the design's function index (DESIGN.md section 3, as the project was seeded),
/// by function: each is documented and declared for that function in the template.
const DESIGN_ROUTES: &[(&str, &str, &str)] = &[
    ("users", "post", "/api/users/sync"),
    ("users", "get", "/api/users/me"),
    ("users", "get", "/api/users/me/settings"),
    ("users", "put", "/api/users/me/settings"),
    ("users", "delete", "/api/users/me"),
    ("api-keys", "get", "/api/api-keys"),
    ("api-keys", "post", "/api/api-keys"),
    ("api-keys", "post", "/api/api-keys/{id}/validate"),
    ("api-keys", "put", "/api/api-keys/{id}/default"),
    ("api-keys", "delete", "/api/api-keys/{id}"),
    ("agents", "get", "/api/agents"),
    ("agents", "post", "/api/agents"),
    ("agents", "get", "/api/agents/{id}"),
    ("agents", "put", "/api/agents/{id}"),
    ("agents", "delete", "/api/agents/{id}"),
    ("agents", "post", "/api/agents/{id}/duplicate"),
    ("arena", "post", "/api/arena/backtest/start"),
    ("arena", "get", "/api/arena/sessions/{id}"),
    ("arena", "post", "/api/arena/backtest/{id}/pause"),
    ("arena", "post", "/api/arena/backtest/{id}/resume"),
    ("arena", "post", "/api/arena/backtest/{id}/stop"),
    ("arena", "post", "/api/arena/backtest/{id}/speed"),
    ("arena", "post", "/api/arena/forward/start"),
    ("arena", "get", "/api/arena/forward/active"),
    ("arena", "post", "/api/arena/forward/{id}/stop"),
    ("results", "get", "/api/results"),
    ("results", "get", "/api/results/stats"),
    ("results", "get", "/api/results/{id}"),
    ("results", "get", "/api/results/{id}/trades"),
    ("results", "get", "/api/results/{id}/reasoning"),
    ("results", "get", "/api/results/{id}/equity"),
    ("certificates", "post", "/api/certificates"),
    ("certificates", "get", "/api/certificates"),
    ("certificates", "get", "/api/certificates/{id}"),
    ("certificates", "get", "/api/certificates/{id}/pdf"),
    ("certificates", "get", "/api/certificates/verify/{code}"),
    ("dashboard", "get", "/api/dashboard/stats"),
    ("dashboard", "get", "/api/dashboard/activity"),
    ("notifications", "get", "/api/notifications"),
    ("notifications", "post", "/api/notifications/{id}/read"),
    ("notifications", "post", "/api/notifications/read-all"),
    ("notifications", "delete", "/api/notifications/{id}"),
    ("data", "get", "/api/data/assets"),
    ("data", "get", "/api/data/candles"),
    ("export", "get", "/api/export/results/{id}"),
    ("webhooks", "post", "/api/webhooks/clerk"),
];

#[test]
fn every_route_of_the_designs_index_is_documented_and_a_route_of_its_function() {
    let doc = committed_document();
    let routes = template_routes();
    for (binary, method, path) in DESIGN_ROUTES {
        assert!(
            doc["paths"][*path][*method].is_object(),
            "{method} {path} is not in the document"
        );
        let declared = &routes.iter().find(|(b, _)| b == binary).unwrap().1;
        assert!(
            declared.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is not a route of {binary} in the template"
        );
    }
}
