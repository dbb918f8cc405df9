//! The tables and queues of template.yaml, created on moto through the real AWS SDK.

use alphalab_devstack::aws::TemplateResources;
use alphalab_devstack::moto;

fn template() -> TemplateResources {
    TemplateResources::from_template(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
    )
    .expect("reading template.yaml")
}

#[test]
fn the_template_declares_the_designs_tables_and_queues() {
    let resources = template();
    let tables: Vec<&str> = resources.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        tables,
        ["ConnectionsTable", "SubscriptionsTable", "RateLimitsTable"]
    );
    let queues: Vec<&str> = resources.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(
        queues,
        [
            "StepsQueue.fifo",
            "StepsDeadLetterQueue.fifo",
            // the schedules' failures: a standard queue (EventBridge and Lambda take no FIFO one)
            "ScheduleFailuresQueue"
        ]
    );
    let connections = &resources.tables[0];
    assert_eq!(connections.ttl_attribute.as_deref(), Some("expires_at"));
    assert_eq!(connections.indexes[0].0, "by_user");
}

#[test]
fn every_functions_variables_are_read_with_what_the_template_alone_gives_them() {
    let variables = template().variables;
    // Globals
    assert_eq!(variables["DATABASE_MAX_CONNECTIONS"].as_deref(), Some("1"));
    assert_eq!(variables["LOG_FORMAT"].as_deref(), Some("json"));
    // a table: its logical id (the local stack's table name)
    assert_eq!(
        variables["CONNECTIONS_TABLE"].as_deref(),
        Some("ConnectionsTable")
    );
    // a parameter's default
    assert_eq!(variables["FORWARD_MAX_ACTIVE"].as_deref(), Some("10"));
    // what only a running stack knows, and the secrets: no value from the template
    for name in [
        "STEPS_QUEUE_URL",
        "WEBSOCKET_API_ENDPOINT",
        "DATABASE_URL",
        "ENCRYPTION_KEYS",
        "LEDGER_SIGNING_KEY",
    ] {
        assert_eq!(variables.get(name), Some(&None), "{name}");
    }
}

#[test]
fn the_sqs_event_sources_are_read_with_their_parameters_defaults() {
    let resources = template();
    let steps = resources
        .mappings
        .iter()
        .find(|m| m.function == "BacktestStepFunction")
        .expect("the steps' event source");
    assert_eq!(
        (
            steps.queue.as_str(),
            steps.batch_size,
            steps.max_concurrency,
            steps.timeout_secs
        ),
        ("StepsQueue", 1, 50, 120)
    );
    let dead = resources
        .mappings
        .iter()
        .find(|m| m.function == "StepWatchdogFunction")
        .expect("the dead letters' event source");
    assert_eq!(
        (dead.queue.as_str(), dead.batch_size),
        ("StepsDeadLetterQueue", 1)
    );
}

#[tokio::test]
async fn creating_the_templates_resources_on_moto_gives_working_tables_and_queues() {
    let endpoint = moto::test_endpoint().expect("moto");
    let config = moto::sdk_config(endpoint).await;
    let resources = template();
    resources.create(&config).await.expect("first creation");
    resources
        .create(&config)
        .await
        .expect("creation is idempotent");

    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let tables = dynamo
        .list_tables()
        .send()
        .await
        .unwrap()
        .table_names
        .unwrap();
    for t in &resources.tables {
        assert!(tables.contains(&t.name), "{} exists", t.name);
    }
    let ttl = dynamo
        .describe_time_to_live()
        .table_name("ConnectionsTable")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description
            .and_then(|d| d.attribute_name)
            .as_deref(),
        Some("expires_at")
    );
    // a real write and read through the SDK
    use aws_sdk_dynamodb::types::AttributeValue;
    dynamo
        .put_item()
        .table_name("ConnectionsTable")
        .item("connection_id", AttributeValue::S("c1".into()))
        .item("user_id", AttributeValue::S("u1".into()))
        .send()
        .await
        .unwrap();
    let item = dynamo
        .get_item()
        .table_name("ConnectionsTable")
        .key("connection_id", AttributeValue::S("c1".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["user_id"], AttributeValue::S("u1".into()));

    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = sqs
        .get_queue_url()
        .queue_name("StepsQueue.fifo")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&url)
        .message_body("{\"session_id\":\"s\",\"cursor\":0}")
        .message_group_id("s")
        .message_deduplication_id("s-0")
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1);
    // like AWS, a FIFO queue refuses a per-message delay
    let delayed = sqs
        .send_message()
        .queue_url(&url)
        .message_body("x")
        .message_group_id("s")
        .message_deduplication_id("s-1")
        .delay_seconds(5)
        .send()
        .await;
    assert!(delayed.is_err());
}
