//! No drift between template.yaml and what runs: every function's configuration reads exactly the
//! variables the template gives it (Globals plus its own), and the local stack's queues and tables
//! have the template's attributes. The template is read here on its own (not through the local
//! stack's reader), so a reader that misses an attribute cannot hide it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use platform::{Env, FromEnv};
use serde_yaml_ng::Value;

use crate::template::template;

/// A value for each parameter without a default (and each secret), as an operator would answer
/// `sam deploy --guided`; the rest take their defaults.
const SAMPLE_PARAMETERS: &[(&str, &str)] = &[
    (
        "DatabaseUrl",
        "postgres://alphalab:secret@db.example.eu-west-1.rds.amazonaws.com:5432/alphalab?sslmode=require",
    ),
    ("ClerkIssuer", "https://example.clerk.accounts.dev"),
    ("ClerkAuthorizedParties", "https://app.example.com"),
    (
        "EncryptionKeys",
        "v1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=;active=v1",
    ),
    (
        "LedgerSigningKey",
        "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=",
    ),
    ("ClerkWebhookSecret", "whsec_MDEyMzQ1Njc4OWFiY2RlZg=="),
];

/// What `!Ref`/`${...}` names resolve to in the sample deployment (resources and pseudo
/// parameters).
fn sample_reference(name: &str, doc: &Value) -> String {
    if let Some((_, v)) = SAMPLE_PARAMETERS.iter().find(|(k, _)| *k == name) {
        return (*v).to_owned();
    }
    match name {
        "AWS::Region" => return "eu-west-1".into(),
        "AWS::URLSuffix" => return "amazonaws.com".into(),
        "AWS::AccountId" => return "123456789012".into(),
        "AWS::Partition" => return "aws".into(),
        _ => {}
    }
    if let Some(p) = doc["Parameters"].get(name) {
        return scalar(&p["Default"]).unwrap_or_else(|| panic!("parameter {name} needs a sample"));
    }
    let resource = doc["Resources"]
        .get(name)
        .unwrap_or_else(|| panic!("{name} is neither a parameter nor a resource"));
    match resource["Type"].as_str() {
        // a queue's Ref is its URL, a table's its name, an API's its id
        Some("AWS::SQS::Queue") => {
            format!("https://sqs.eu-west-1.amazonaws.com/123456789012/{name}.fifo")
        }
        Some("AWS::DynamoDB::Table") => format!("alphalab-{name}"),
        Some("AWS::ApiGatewayV2::Api") => "a1b2c3d4e5".into(),
        other => panic!("no sample for a reference to {name} ({other:?})"),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A variable's value in the sample deployment: literals, `!Ref` and `!Sub`.
fn sample_value(v: &Value, doc: &Value) -> String {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => sample_reference(t.value.as_str().unwrap(), doc),
        Value::Tagged(t) if t.tag == "Sub" => {
            let mut text = t.value.as_str().expect("!Sub of a string").to_owned();
            while let Some(start) = text.find("${") {
                let end = start + text[start..].find('}').unwrap();
                let value = sample_reference(&text[start + 2..end], doc);
                text.replace_range(start..=end, &value);
            }
            text
        }
        other => scalar(other).expect("a literal variable"),
    }
}

/// (binary, the variables the template gives the function, with sample values).
fn template_environments() -> Vec<(String, BTreeMap<String, String>)> {
    let doc = template();
    let variables = |environment: &Value| -> BTreeMap<String, String> {
        environment["Variables"]
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str().unwrap().to_owned(), sample_value(v, &doc)))
            .collect()
    };
    let globals = variables(&doc["Globals"]["Function"]["Environment"]);
    let mut out = Vec::new();
    for (_, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut vars = globals.clone();
        vars.extend(variables(&resource["Properties"]["Environment"]));
        out.push((binary, vars));
    }
    out
}

/// Variables Lambda's runtime sets in every function (reserved: a template cannot set them); the
/// configuration may read them.
const LAMBDA_RUNTIME: &[&str] = &[
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
];

/// The local stack's own endpoint override (moto): unset in AWS, where the SDK finds the real
/// endpoints; read so that the same binary runs against the local stack.
const LOCAL_ONLY: &[&str] = &["AWS_ENDPOINT_URL"];

/// Reads the configuration of function `binary` from `vars` (plus Lambda's runtime variables);
/// the names it asked for.
fn configuration_reads(binary: &str, vars: &BTreeMap<String, String>) -> BTreeSet<String> {
    let seen = RefCell::new(BTreeSet::new());
    let env = Env::from_lookup(|name| {
        seen.borrow_mut().insert(name.to_owned());
        match name {
            "AWS_LAMBDA_FUNCTION_NAME" => Some(format!("alphalab-{binary}")),
            "AWS_REGION" | "AWS_DEFAULT_REGION" => Some("eu-west-1".into()),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("256".into()),
            _ => vars.get(name).cloned(),
        }
    });
    let read = match binary {
        "users" => alphalab_users::Config::from_env(&env).map(drop),
        "notifications" => alphalab_notifications::Config::from_env(&env).map(drop),
        "results" => alphalab_results::Config::from_env(&env).map(drop),
        "certificates" => alphalab_certificates::Config::from_env(&env).map(drop),
        "dashboard" => alphalab_dashboard::Config::from_env(&env).map(drop),
        "data" => alphalab_data::Config::from_env(&env).map(drop),
        "export" => alphalab_export::Config::from_env(&env).map(drop),
        "api-keys" => alphalab_api_keys::Config::from_env(&env).map(drop),
        "agents" => alphalab_agents::Config::from_env(&env).map(drop),
        "webhooks" => alphalab_webhooks::Config::from_env(&env).map(drop),
        "arena" => alphalab_arena::Config::from_env(&env).map(drop),
        "backtest-step" => alphalab_backtest_step::Config::from_env(&env).map(drop),
        "step-watchdog" => alphalab_step_watchdog::Config::from_env(&env).map(drop),
        "forward-tick" => alphalab_forward_tick::Config::from_env(&env).map(drop),
        "ws" => alphalab_ws::Config::from_env(&env).map(drop),
        other => panic!("function {other} of the template is not listed in this test"),
    };
    if let Err(e) = read {
        panic!("{binary}: the template's variables do not configure it: {e}");
    }
    drop(env);
    seen.into_inner()
}

#[test]
fn every_function_reads_exactly_the_variables_the_template_gives_it() {
    let environments = template_environments();
    assert_eq!(environments.len(), 15, "every function of the workspace");
    let mut problems = Vec::new();
    for (binary, vars) in &environments {
        let read = configuration_reads(binary, vars);
        for name in &read {
            let allowed = vars.contains_key(name)
                || LAMBDA_RUNTIME.contains(&name.as_str())
                || LOCAL_ONLY.contains(&name.as_str());
            if !allowed {
                problems.push(format!(
                    "{binary} reads {name}, which the template does not set"
                ));
            }
        }
        for name in vars.keys() {
            if !read.contains(name) {
                problems.push(format!("{binary} is given {name} and never reads it"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `[{a: x, b: y}, ...]` of a template property as sorted (x, y) pairs.
fn template_pairs(list: &Value, a: &str, b: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|item| (scalar(&item[a]).unwrap(), scalar(&item[b]).unwrap()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn the_local_stacks_queues_and_tables_are_the_templates() {
    // the local stack (`alphalab serve` and the tests) creates them with the same call
    let endpoint = alphalab_devstack::moto::test_endpoint().unwrap();
    let config = alphalab_devstack::moto::sdk_config(endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let doc = template();
    let mut queues = 0;
    let mut tables = 0;
    for (id, r) in doc["Resources"].as_mapping().unwrap() {
        let id = id.as_str().unwrap();
        let props = &r["Properties"];
        match r["Type"].as_str().unwrap() {
            "AWS::SQS::Queue" => {
                queues += 1;
                let fifo = props["FifoQueue"].as_bool() == Some(true);
                let name = if fifo {
                    format!("{id}.fifo")
                } else {
                    id.into()
                };
                let url = sqs
                    .get_queue_url()
                    .queue_name(&name)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                    .queue_url
                    .unwrap();
                use aws_sdk_sqs::types::QueueAttributeName as A;
                let attributes = sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(A::All)
                    .send()
                    .await
                    .unwrap()
                    .attributes
                    .unwrap();
                let local = |a: A| attributes.get(&a).cloned();
                assert_eq!(
                    local(A::FifoQueue).as_deref() == Some("true"),
                    fifo,
                    "{id} FIFO"
                );
                // SQS's defaults where the template says nothing: 30 s, 4 days
                let expected = |key: &str, default: &str| {
                    scalar(&props[key]).unwrap_or_else(|| default.to_owned())
                };
                assert_eq!(
                    local(A::VisibilityTimeout).unwrap(),
                    expected("VisibilityTimeout", "30"),
                    "{id} visibility"
                );
                assert_eq!(
                    local(A::MessageRetentionPeriod).unwrap(),
                    expected("MessageRetentionPeriod", "345600"),
                    "{id} retention"
                );
                let redrive = &props["RedrivePolicy"];
                match local(A::RedrivePolicy) {
                    None => assert!(redrive.is_null(), "{id} has no redrive locally"),
                    Some(policy) => {
                        let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
                        let Value::Tagged(target) = &redrive["deadLetterTargetArn"] else {
                            panic!("{id}'s redrive target is a !GetAtt")
                        };
                        let target = target.value.as_str().unwrap().trim_end_matches(".Arn");
                        let target_fifo =
                            doc["Resources"][target]["Properties"]["FifoQueue"].as_bool();
                        let target_name = if target_fifo == Some(true) {
                            format!("{target}.fifo")
                        } else {
                            target.into()
                        };
                        assert!(
                            policy["deadLetterTargetArn"]
                                .as_str()
                                .unwrap()
                                .ends_with(&format!(":{target_name}")),
                            "{id}: {policy}"
                        );
                        assert_eq!(
                            policy["maxReceiveCount"].to_string().trim_matches('"'),
                            scalar(&redrive["maxReceiveCount"]).unwrap(),
                            "{id} maxReceiveCount"
                        );
                    }
                }
            }
            "AWS::DynamoDB::Table" => {
                tables += 1;
                let table = dynamo
                    .describe_table()
                    .table_name(id)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{id}: {e:?}"))
                    .table
                    .unwrap();
                let mut keys: Vec<(String, String)> = table
                    .key_schema()
                    .iter()
                    .map(|k| (k.attribute_name().into(), k.key_type().as_str().into()))
                    .collect();
                keys.sort();
                assert_eq!(
                    keys,
                    template_pairs(&props["KeySchema"], "AttributeName", "KeyType"),
                    "{id} keys"
                );
                let mut attributes: Vec<(String, String)> = table
                    .attribute_definitions()
                    .iter()
                    .map(|a| {
                        (
                            a.attribute_name().into(),
                            a.attribute_type().as_str().into(),
                        )
                    })
                    .collect();
                attributes.sort();
                assert_eq!(
                    attributes,
                    template_pairs(
                        &props["AttributeDefinitions"],
                        "AttributeName",
                        "AttributeType"
                    ),
                    "{id} attributes"
                );
                let mut indexes: Vec<(String, Vec<(String, String)>)> = table
                    .global_secondary_indexes()
                    .iter()
                    .map(|i| {
                        let mut keys: Vec<(String, String)> = i
                            .key_schema()
                            .iter()
                            .map(|k| (k.attribute_name().into(), k.key_type().as_str().into()))
                            .collect();
                        keys.sort();
                        (i.index_name().unwrap().into(), keys)
                    })
                    .collect();
                indexes.sort();
                let mut expected: Vec<(String, Vec<(String, String)>)> =
                    props["GlobalSecondaryIndexes"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .map(|i| {
                            (
                                scalar(&i["IndexName"]).unwrap(),
                                template_pairs(&i["KeySchema"], "AttributeName", "KeyType"),
                            )
                        })
                        .collect();
                expected.sort();
                assert_eq!(indexes, expected, "{id} indexes");
                let ttl = dynamo
                    .describe_time_to_live()
                    .table_name(id)
                    .send()
                    .await
                    .unwrap()
                    .time_to_live_description
                    .unwrap();
                let spec = &props["TimeToLiveSpecification"];
                assert_eq!(
                    spec["Enabled"].as_bool(),
                    Some(true),
                    "{id}: every table has a TTL"
                );
                assert_eq!(
                    ttl.attribute_name(),
                    spec["AttributeName"].as_str(),
                    "{id} TTL attribute"
                );
                assert_eq!(
                    ttl.time_to_live_status().map(|s| s.as_str()),
                    Some("ENABLED"),
                    "{id} TTL on"
                );
            }
            _ => {}
        }
    }
    assert!(
        queues >= 3 && tables >= 3,
        "{queues} queues, {tables} tables"
    );
}

#[test]
fn the_local_schedules_run_as_often_as_the_templates() {
    let doc = template();
    let help = crate::succeed(&["serve", "--help"], &[]);
    for (binary, flag) in [
        ("step-watchdog", "--watchdog-interval"),
        ("forward-tick", "--tick-interval"),
    ] {
        let function = doc["Resources"]
            .as_mapping()
            .unwrap()
            .values()
            .find(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
            .unwrap();
        let schedules: Vec<&str> = function["Properties"]["Events"]
            .as_mapping()
            .unwrap()
            .values()
            .filter(|e| e["Type"].as_str() == Some("Schedule"))
            .map(|e| e["Properties"]["Schedule"].as_str().unwrap())
            .collect();
        assert_eq!(schedules, ["rate(1 minute)"], "{binary}");
        // the flag's help paragraph ends with its default
        let paragraph = help.split(flag).nth(1).unwrap();
        let paragraph = &paragraph[..paragraph.find("\n  -").unwrap_or(paragraph.len())];
        assert!(
            paragraph.contains("[default: 60]"),
            "{binary}: serve runs it every 60 s by default: {paragraph}"
        );
    }
}
