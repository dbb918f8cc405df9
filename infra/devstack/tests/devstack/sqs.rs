//! The local event source mapping against moto: batches in order, deletes what succeeded,
//! redelivers reported failures and dead invocations, dead-letters after maxReceiveCount.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alphalab_devstack::sqs::{Invoke, Poller, create_steps_queue, depth};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};

async fn client() -> aws_sdk_sqs::Client {
    let endpoint = alphalab_devstack::moto::test_endpoint().unwrap();
    aws_sdk_sqs::Client::new(&alphalab_devstack::moto::sdk_config(endpoint).await)
}

async fn send(client: &aws_sdk_sqs::Client, url: &str, group: &str, body: &str) {
    client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(body)
        .send()
        .await
        .unwrap();
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn records_arrive_in_group_order_and_failures_and_dead_invocations_come_back() {
    let sqs = client().await;
    let queue = create_steps_queue(&sqs, &format!("poller-{}", std::process::id()), 30, 5)
        .await
        .unwrap();
    for i in 0..4 {
        send(&sqs, &queue.url, "g", &format!("m{i}")).await;
    }
    // what the handler saw, with each record's receive count
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = seen.clone();
    let invoke: Invoke = Arc::new(move |event| {
        let log = log.clone();
        Box::pin(async move {
            let mut response = SqsBatchResponse::default();
            for record in event.records {
                let body = record.body.clone().unwrap_or_default();
                let count = record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .cloned()
                    .unwrap_or_default();
                log.lock().unwrap().push((body.clone(), count.clone()));
                // m2 fails once (reported); m4 kills its first invocation
                if body == "m4" && count == "1" {
                    panic!("the invocation dies");
                }
                if body == "m2" && count == "1" {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = record.message_id.clone().unwrap_or_default();
                    response.batch_item_failures.push(failure);
                }
            }
            response
        })
    });
    // visibility 1 s: reported and dead records come back after it
    let poller = Poller::start(sqs.clone(), queue.url.clone(), 1, invoke);
    until("every record handled and deleted", async || {
        depth(&sqs, &queue.url).await.unwrap() == 0
    })
    .await;
    assert!(poller.stats.reported_failures.load(Ordering::SeqCst) >= 1);
    // then a record whose first invocation dies
    for i in 4..6 {
        send(&sqs, &queue.url, "g", &format!("m{i}")).await;
    }
    until("every record handled and deleted", async || {
        depth(&sqs, &queue.url).await.unwrap() == 0
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    let bodies: Vec<&str> = seen.iter().map(|(b, _)| b.as_str()).collect();
    // the first delivery of each record is in order
    let firsts: Vec<&str> = seen
        .iter()
        .filter(|(_, c)| c == "1")
        .map(|(b, _)| b.as_str())
        .collect();
    let mut sorted = firsts.clone();
    sorted.sort();
    assert_eq!(firsts, sorted, "{bodies:?}");
    for body in ["m2", "m4"] {
        assert!(
            seen.contains(&(body.to_owned(), "2".to_owned())),
            "{body} redelivered: {seen:?}"
        );
    }
    assert_eq!(poller.stats.died.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_record_that_always_kills_its_invocation_lands_in_the_dead_letter_queue() {
    let sqs = client().await;
    let queue = create_steps_queue(&sqs, &format!("poison-{}", std::process::id()), 30, 3)
        .await
        .unwrap();
    send(&sqs, &queue.url, "g", "poison").await;
    let invoke: Invoke = Arc::new(|_| Box::pin(async { panic!("always dies") }));
    let poller = Poller::start(sqs.clone(), queue.url.clone(), 1, invoke);
    until("the record is dead-lettered", async || {
        depth(&sqs, &queue.dlq_url).await.unwrap() == 1
    })
    .await;
    assert_eq!(depth(&sqs, &queue.url).await.unwrap(), 0);
    assert_eq!(
        poller.stats.died.load(Ordering::SeqCst),
        3,
        "maxReceiveCount deliveries"
    );
}
