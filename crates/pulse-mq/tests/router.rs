//! Router behaviour on the in-memory broker: retries, dead letters,
//! middleware and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pulse_core::clock::{Clock, ManualClock};
use pulse_core::mq::{Message, Publisher, Subscriber, Subscription};
use pulse_mq::router::{self, Backoff, HandlerError, MemoryDedupStore, Route, Router};
use pulse_mq::{MemoryBroker, MemorySubscription, headers};

const WAIT: Duration = Duration::from_secs(20);

async fn next(
    subscription: &mut MemorySubscription,
    wait: Duration,
) -> Option<pulse_core::mq::Delivery> {
    tokio::time::timeout(wait, subscription.next())
        .await
        .ok()
        .flatten()
        .map(|result| result.expect("delivery"))
}

/// Polls until `condition` is true or the wait runs out.
async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}

fn counting_failure(calls: Arc<AtomicUsize>) -> router::Handler {
    router::handler(move |_message, _context| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(HandlerError::msg("database is down"))
        }
    })
}

#[tokio::test]
async fn retry_then_dead_letter_vector() {
    let broker = MemoryBroker::new();
    let publisher = Arc::new(broker.publisher());
    let mut dead = broker
        .subscriber()
        .subscribe("orders.dead", "check")
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));

    let running = Router::builder()
        .middleware(router::retry(
            3,
            Backoff::new(Duration::from_millis(1)).jitter(0.0),
        ))
        .build()
        .run(vec![
            Route::new("billing", "orders", Arc::new(broker.subscriber()))
                .dead_letter("orders.dead", publisher.clone(), 1)
                .handler(counting_failure(calls.clone())),
        ])
        .await
        .unwrap();
    publisher
        .publish("orders", Message::new("order-1", "x"))
        .await
        .unwrap();

    let letter = next(&mut dead, WAIT).await.expect("one dead letter");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let message = letter.message();
    assert_eq!(message.id, "order-1");
    assert_eq!(
        message.header(headers::DEAD_LETTER_REASON),
        Some("database is down")
    );
    assert_eq!(message.header(headers::ORIGINAL_TOPIC), Some("orders"));
    assert_eq!(message.header(headers::DELIVERY_ATTEMPTS), Some("1"));
    letter.ack().await.unwrap();

    assert!(
        next(&mut dead, Duration::from_millis(200)).await.is_none(),
        "a second dead letter"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    running.shutdown().await.unwrap();
    assert_eq!(broker.backlog("orders", "billing"), 0);
}

#[tokio::test]
async fn failing_handler_backs_off() {
    let clock = Arc::new(ManualClock::new());
    let broker = MemoryBroker::builder().clock(clock.clone()).build();
    let calls = Arc::new(AtomicUsize::new(0));
    let running = Router::builder()
        .clock(clock.clone())
        .shutdown_timeout(Duration::ZERO)
        .build()
        .run(vec![
            Route::new("billing", "orders", Arc::new(broker.subscriber()))
                .redelivery(Backoff::new(Duration::from_secs(1)).jitter(0.0))
                .handler(counting_failure(calls.clone())),
        ])
        .await
        .unwrap();
    let start = clock.now();
    broker
        .publisher()
        .publish("orders", Message::new("m", "x"))
        .await
        .unwrap();

    assert!(eventually(|| calls.load(Ordering::SeqCst) == 1).await);
    // The subscription sleeps until the nacked message is due, 1 s later;
    // the clock does not move, so the message must not come back before.
    let first_due = start.saturating_add(Duration::from_secs(1));
    assert!(eventually(|| clock.next_deadline() == Some(first_due)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "redelivered before the nack delay"
    );

    clock.advance(Duration::from_secs(1));
    assert!(eventually(|| calls.load(Ordering::SeqCst) == 2).await);
    // The second delay is 2 s: one more second is not enough.
    let second_due = start.saturating_add(Duration::from_secs(3));
    assert!(eventually(|| clock.next_deadline() == Some(second_due)).await);
    clock.advance(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_secs(1));
    assert!(eventually(|| calls.load(Ordering::SeqCst) == 3).await);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn panic_is_dead_lettered() {
    let broker = MemoryBroker::new();
    let publisher = Arc::new(broker.publisher());
    let mut dead = broker
        .subscriber()
        .subscribe("jobs.dead", "check")
        .await
        .unwrap();
    let running = Router::builder()
        .middleware(router::recover_panics())
        .build()
        .run(vec![
            Route::new("worker", "jobs", Arc::new(broker.subscriber()))
                .dead_letter("jobs.dead", publisher.clone(), 1)
                .handler(router::handler(|_message, _context| async move {
                    if true {
                        panic!("index out of range");
                    }
                    Ok(Vec::new())
                })),
        ])
        .await
        .unwrap();
    publisher
        .publish("jobs", Message::new("job-1", "x"))
        .await
        .unwrap();

    let letter = next(&mut dead, WAIT).await.expect("dead letter");
    let reason = letter
        .message()
        .header(headers::DEAD_LETTER_REASON)
        .unwrap();
    assert!(reason.contains("panicked: index out of range"), "{reason}");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn permanent_error_skips_redelivery() {
    let broker = MemoryBroker::new();
    let publisher = Arc::new(broker.publisher());
    let mut dead = broker
        .subscriber()
        .subscribe("in.dead", "check")
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let running = Router::builder()
        .middleware(router::retry(5, Backoff::new(Duration::from_millis(1))))
        .build()
        .run(vec![
            Route::new("decode", "in", Arc::new(broker.subscriber()))
                .dead_letter("in.dead", publisher.clone(), 10)
                .handler(router::handler(move |_message, _context| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { Err(HandlerError::permanent("payload is not JSON")) }
                })),
        ])
        .await
        .unwrap();
    publisher
        .publish("in", Message::new("bad", "{"))
        .await
        .unwrap();

    let letter = next(&mut dead, WAIT).await.expect("dead letter");
    assert_eq!(
        letter.message().header(headers::DEAD_LETTER_REASON),
        Some("payload is not JSON")
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a permanent error must not be retried"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn output_without_topic_is_dead_lettered() {
    let broker = MemoryBroker::new();
    let publisher = Arc::new(broker.publisher());
    let mut dead = broker
        .subscriber()
        .subscribe("in.dead", "check")
        .await
        .unwrap();
    let running = Router::builder()
        .build()
        .run(vec![
            Route::new("echo", "in", Arc::new(broker.subscriber()))
                .dead_letter("in.dead", publisher.clone(), 3)
                .handler(router::handler(|message, _context| async move {
                    Ok(vec![message])
                })),
        ])
        .await
        .unwrap();
    publisher
        .publish("in", Message::new("m", "x"))
        .await
        .unwrap();

    let letter = next(&mut dead, WAIT).await.expect("dead letter");
    let reason = letter
        .message()
        .header(headers::DEAD_LETTER_REASON)
        .unwrap();
    assert!(reason.contains("no output topic"), "{reason}");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn correlation_id_reaches_outputs() {
    let broker = MemoryBroker::new();
    let publisher = Arc::new(broker.publisher());
    let mut out = broker.subscriber().subscribe("out", "check").await.unwrap();
    let running = Router::builder()
        .middleware(router::correlation_id())
        .build()
        .run(vec![
            Route::new("forward", "in", Arc::new(broker.subscriber()))
                .publish_to("out", publisher.clone())
                .handler(router::handler(|_message, _context| async move {
                    Ok(vec![Message::new("derived", "y")])
                })),
        ])
        .await
        .unwrap();
    publisher
        .publish(
            "in",
            Message::new("first", "x").with_header(headers::CORRELATION_ID, "req-7"),
        )
        .await
        .unwrap();
    publisher
        .publish("in", Message::new("second", "x"))
        .await
        .unwrap();

    let mut seen = Vec::new();
    for _ in 0..2 {
        let delivery = next(&mut out, WAIT).await.expect("output");
        seen.push(
            delivery
                .message()
                .header(headers::CORRELATION_ID)
                .unwrap()
                .to_owned(),
        );
        delivery.ack().await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, ["req-7", "second"]);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn dedup_skips_same_id() {
    let broker = MemoryBroker::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let running = Router::builder()
        .middleware(router::deduplicate(
            Arc::new(MemoryDedupStore::new()),
            Duration::from_secs(60),
        ))
        .build()
        .run(vec![
            Route::new("once", "in", Arc::new(broker.subscriber()))
                .concurrency(1)
                .handler(router::handler(move |_message, _context| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { Ok(Vec::new()) }
                })),
        ])
        .await
        .unwrap();
    let publisher = broker.publisher();
    for _ in 0..3 {
        publisher
            .publish("in", Message::new("same", "x"))
            .await
            .unwrap();
    }
    publisher
        .publish("in", Message::new("other", "x"))
        .await
        .unwrap();

    assert!(eventually(|| broker.backlog("in", "once") == 0).await);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn dedup_forgets_failed_message() {
    let broker = MemoryBroker::builder().build();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let running = Router::builder()
        .middleware(router::deduplicate(
            Arc::new(MemoryDedupStore::new()),
            Duration::from_secs(60),
        ))
        .build()
        .run(vec![
            Route::new("flaky", "in", Arc::new(broker.subscriber()))
                .redelivery(Backoff::new(Duration::from_millis(1)))
                .handler(router::handler(move |_message, _context| {
                    let call = counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if call == 0 {
                            Err(HandlerError::msg("first call fails"))
                        } else {
                            Ok(Vec::new())
                        }
                    }
                })),
        ])
        .await
        .unwrap();
    broker
        .publisher()
        .publish("in", Message::new("m", "x"))
        .await
        .unwrap();

    assert!(eventually(|| broker.backlog("in", "flaky") == 0).await);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the redelivery after a failure must be handled"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn timeout_fails_slow_handler() {
    let broker = MemoryBroker::new();
    let publisher = Arc::new(broker.publisher());
    let mut dead = broker
        .subscriber()
        .subscribe("in.dead", "check")
        .await
        .unwrap();
    let running = Router::builder()
        .middleware(router::timeout(Duration::from_millis(50)))
        .build()
        .run(vec![
            Route::new("slow", "in", Arc::new(broker.subscriber()))
                .dead_letter("in.dead", publisher.clone(), 1)
                .handler(router::handler(|_message, _context| async move {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    Ok(Vec::new())
                })),
        ])
        .await
        .unwrap();
    publisher
        .publish("in", Message::new("m", "x"))
        .await
        .unwrap();

    let letter = next(&mut dead, WAIT).await.expect("dead letter");
    let reason = letter
        .message()
        .header(headers::DEAD_LETTER_REASON)
        .unwrap();
    assert!(reason.contains("timed out"), "{reason}");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_holds() {
    let broker = MemoryBroker::new();
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (active_in, peak_in) = (active.clone(), peak.clone());
    let running = Router::builder()
        .build()
        .run(vec![
            Route::new("limited", "in", Arc::new(broker.subscriber()))
                .concurrency(3)
                .handler(router::handler(move |_message, _context| {
                    let (active, peak) = (active_in.clone(), peak_in.clone());
                    async move {
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        active.fetch_sub(1, Ordering::SeqCst);
                        Ok(Vec::new())
                    }
                })),
        ])
        .await
        .unwrap();
    let messages = (0..30).map(|i| Message::new(i.to_string(), "x")).collect();
    broker
        .publisher()
        .publish_batch("in", messages)
        .await
        .unwrap();

    assert!(eventually(|| broker.backlog("in", "limited") == 0).await);
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(
        peak.load(Ordering::SeqCst) >= 2,
        "messages were not handled concurrently"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn throttle_spaces_calls() {
    let clock = Arc::new(ManualClock::new());
    let broker = MemoryBroker::builder().clock(clock.clone()).build();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let running = Router::builder()
        .clock(clock.clone())
        .shutdown_timeout(Duration::ZERO)
        .middleware(router::throttle(1, Duration::from_secs(1)))
        .build()
        .run(vec![
            Route::new("paced", "in", Arc::new(broker.subscriber())).handler(router::handler(
                move |_message, _context| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { Ok(Vec::new()) }
                },
            )),
        ])
        .await
        .unwrap();
    let messages = (0..3).map(|i| Message::new(i.to_string(), "x")).collect();
    broker
        .publisher()
        .publish_batch("in", messages)
        .await
        .unwrap();

    assert!(eventually(|| calls.load(Ordering::SeqCst) == 1).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the throttle let a second call through early"
    );
    clock.advance(Duration::from_secs(1));
    assert!(eventually(|| calls.load(Ordering::SeqCst) == 2).await);
    clock.advance(Duration::from_secs(1));
    assert!(eventually(|| calls.load(Ordering::SeqCst) == 3).await);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_in_flight() {
    let broker = MemoryBroker::new();
    let started = Arc::new(AtomicUsize::new(0));
    let counter = started.clone();
    let running = Router::builder()
        .build()
        .run(vec![
            Route::new("slow", "in", Arc::new(broker.subscriber())).handler(router::handler(
                move |_message, _context| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok(Vec::new())
                    }
                },
            )),
        ])
        .await
        .unwrap();
    broker
        .publisher()
        .publish("in", Message::new("m", "x"))
        .await
        .unwrap();
    assert!(eventually(|| started.load(Ordering::SeqCst) == 1).await);

    running.shutdown().await.unwrap();
    assert_eq!(
        broker.backlog("in", "slow"),
        0,
        "the in-flight message was not finished and acked"
    );
}

#[tokio::test]
async fn shutdown_timeout_nacks_in_flight() {
    let broker = MemoryBroker::new();
    let started = Arc::new(AtomicUsize::new(0));
    let counter = started.clone();
    let running = Router::builder()
        .shutdown_timeout(Duration::from_millis(50))
        .build()
        .run(vec![
            Route::new("stuck", "in", Arc::new(broker.subscriber())).handler(router::handler(
                move |_message, _context| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        std::future::pending::<()>().await;
                        Ok(Vec::new())
                    }
                },
            )),
        ])
        .await
        .unwrap();
    broker
        .publisher()
        .publish("in", Message::new("m", "x"))
        .await
        .unwrap();
    assert!(eventually(|| started.load(Ordering::SeqCst) == 1).await);

    running.shutdown().await.unwrap();
    let mut again = broker.subscriber().subscribe("in", "stuck").await.unwrap();
    let delivery = next(&mut again, Duration::from_secs(5))
        .await
        .expect("nacked message is back at once");
    assert_eq!(delivery.attempt(), 2);
}

#[tokio::test]
async fn route_without_handler_is_rejected() {
    let broker = MemoryBroker::new();
    let err = Router::builder()
        .build()
        .run(vec![Route::new(
            "empty",
            "in",
            Arc::new(broker.subscriber()),
        )])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pulse_core::ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("`empty`"), "{err}");
}
