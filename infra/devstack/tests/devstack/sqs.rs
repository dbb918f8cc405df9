//! The local event source mapping against moto: batches in order, deletes what succeeded,
//! redelivers reported failures, dead invocations and invocations past their timeout,
//! dead-letters after maxReceiveCount, runs several message groups at once.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alphalab_devstack::sqs::{Invoke, Mapping, Poller, create_steps_queue, depth};
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

/// Receiving with a visibility of 1 s: reported, dead and abandoned records come back after it.
fn mapping(batch_size: usize) -> Mapping {
    Mapping {
        visibility_secs: 1,
        timeout: Duration::from_secs(1),
        max_concurrency: 10,
        batch_size,
    }
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
    let invoke: Invoke = Arc::new(move |event, _| {
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
    let poller = Poller::start(sqs.clone(), queue.url.clone(), mapping(10), invoke).unwrap();
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
    let invoke: Invoke = Arc::new(|_, _| Box::pin(async { panic!("always dies") }));
    let poller = Poller::start(sqs.clone(), queue.url.clone(), mapping(1), invoke).unwrap();
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

#[tokio::test]
async fn an_invocation_past_its_timeout_is_abandoned_and_its_record_comes_back_with_a_receive_counted()
 {
    let sqs = client().await;
    let queue = create_steps_queue(&sqs, &format!("timeout-{}", std::process::id()), 30, 5)
        .await
        .unwrap();
    send(&sqs, &queue.url, "g", "slow").await;
    // (receive count, time left before the deadline the invocation was given)
    let seen: Arc<Mutex<Vec<(String, Duration)>>> = Arc::default();
    let log = seen.clone();
    let invoke: Invoke = Arc::new(move |event, deadline| {
        let log = log.clone();
        Box::pin(async move {
            let count = event.records[0]
                .attributes
                .get("ApproximateReceiveCount")
                .cloned()
                .unwrap_or_default();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            log.lock().unwrap().push((count.clone(), left));
            if count == "1" {
                // longer than the function's timeout: Lambda abandons it
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            SqsBatchResponse::default()
        })
    });
    let started = Instant::now();
    // a 2 s timeout and a 3 s visibility (AWS asks for 6 timeouts; the order is what matters)
    let poller = Poller::start(
        sqs.clone(),
        queue.url.clone(),
        Mapping {
            visibility_secs: 3,
            timeout: Duration::from_secs(2),
            ..mapping(1)
        },
        invoke,
    )
    .unwrap();
    until("the record is handled on its second delivery", async || {
        depth(&sqs, &queue.url).await.unwrap() == 0
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].0.as_str(), seen[1].0.as_str()), ("1", "2"));
    assert!(seen[0].1 <= Duration::from_secs(2) && seen[0].1 > Duration::from_millis(1500));
    // abandoned at 2 s, back after the 3 s visibility: long before the 10 s the handler wanted
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(poller.stats.timed_out.load(Ordering::SeqCst), 1);
    assert_eq!(poller.stats.redelivered.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_visibility_shorter_than_the_timeout_is_refused_as_lambda_refuses_it() {
    let sqs = client().await;
    let invoke: Invoke = Arc::new(|_, _| Box::pin(async { SqsBatchResponse::default() }));
    let refused = Poller::start(
        sqs,
        "http://127.0.0.1:9/q.fifo".into(),
        Mapping {
            visibility_secs: 2,
            timeout: Duration::from_secs(3),
            ..mapping(1)
        },
        invoke,
    );
    assert!(refused.is_err());
}

#[tokio::test]
async fn message_groups_run_at_once_one_record_per_invocation_each_group_in_order() {
    let sqs = client().await;
    let queue = create_steps_queue(&sqs, &format!("groups-{}", std::process::id()), 30, 5)
        .await
        .unwrap();
    for g in ["a", "b", "c"] {
        for i in 0..2 {
            send(&sqs, &queue.url, g, &format!("{g}{i}")).await;
        }
    }
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let invoke: Invoke = Arc::new(move |event, _| {
        let log = log.clone();
        Box::pin(async move {
            assert_eq!(event.records.len(), 1, "one record per invocation");
            tokio::time::sleep(Duration::from_secs(1)).await;
            log.lock()
                .unwrap()
                .push(event.records[0].body.clone().unwrap_or_default());
            SqsBatchResponse::default()
        })
    });
    let started = Instant::now();
    let long = Mapping {
        visibility_secs: 10,
        timeout: Duration::from_secs(10),
        ..mapping(1)
    };
    let poller = Poller::start(sqs.clone(), queue.url.clone(), long, invoke).unwrap();
    until("every record handled", async || {
        depth(&sqs, &queue.url).await.unwrap() == 0
    })
    .await;
    // three groups of two one-second invocations: about two seconds, not six
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(poller.stats.most_at_once.load(Ordering::SeqCst) >= 2);
    let seen = seen.lock().unwrap().clone();
    for g in ["a", "b", "c"] {
        let order: Vec<&String> = seen.iter().filter(|b| b.starts_with(g)).collect();
        assert_eq!(order, [&format!("{g}0"), &format!("{g}1")], "{seen:?}");
    }
}
