//! The router over Redis Streams: the dead-letter vector, deduplication
//! across router instances, and a nack driven by the pending list's
//! delivery count.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pulse_core::mq::{Message, Publisher, Subscriber, Subscription};
use pulse_mq::headers;
use pulse_mq::redis::{RedisDedupStore, RedisStreams};
use pulse_mq::router::{self, Backoff, DedupStore, HandlerError, Route, Router};

const WAIT: Duration = Duration::from_secs(20);

fn streams(url: &str, prefix: &str) -> RedisStreams {
    RedisStreams::from_url(url)
        .unwrap()
        .prefix(prefix)
        .visibility_timeout(Duration::from_secs(1))
        .claim_interval(Duration::from_millis(200))
}

async fn delete_prefix(streams: &RedisStreams, prefix: &str) {
    let mut conn = streams.pool().get().await.unwrap();
    let keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = deadpool_redis::redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_retry_then_dead_letter() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("mq");
    let streams = streams(&url, &prefix);
    let publisher = Arc::new(streams.publisher());
    let mut dead = streams
        .subscriber()
        .subscribe("orders.dead", "check")
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();

    let running = Router::builder()
        .middleware(router::retry(3, Backoff::new(Duration::from_millis(1))))
        .build()
        .run(vec![
            Route::new("billing", "orders", Arc::new(streams.subscriber()))
                .dead_letter("orders.dead", publisher.clone(), 1)
                .handler(router::handler(move |_message, _context| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { Err(HandlerError::msg("database is down")) }
                })),
        ])
        .await
        .unwrap();
    publisher
        .publish("orders", Message::new("order-1", "x"))
        .await
        .unwrap();

    let letter = tokio::time::timeout(WAIT, dead.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        letter.message().header(headers::DEAD_LETTER_REASON),
        Some("database is down")
    );
    assert_eq!(
        letter.message().header(headers::ORIGINAL_TOPIC),
        Some("orders")
    );
    letter.ack().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), dead.next())
            .await
            .is_err(),
        "a second dead letter"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    running.shutdown().await.unwrap();
    delete_prefix(&streams, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dead_letter_after_three_deliveries() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("mq");
    let streams = streams(&url, &prefix);
    let publisher = Arc::new(streams.publisher());
    let mut dead = streams
        .subscriber()
        .subscribe("jobs.dead", "check")
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();

    let running = Router::builder()
        .build()
        .run(vec![
            Route::new("worker", "jobs", Arc::new(streams.subscriber()))
                .dead_letter("jobs.dead", publisher.clone(), 3)
                .redelivery(Backoff::new(Duration::from_millis(10)))
                .handler(router::handler(move |_message, _context| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { Err(HandlerError::msg("always fails")) }
                })),
        ])
        .await
        .unwrap();
    publisher
        .publish("jobs", Message::new("job-1", "x"))
        .await
        .unwrap();

    let letter = tokio::time::timeout(WAIT, dead.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        letter.message().header(headers::DELIVERY_ATTEMPTS),
        Some("3")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    letter.ack().await.unwrap();
    running.shutdown().await.unwrap();
    delete_prefix(&streams, &prefix).await;
}

#[tokio::test]
async fn redis_dedup_store_claims_once() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("mq");
    let streams = streams(&url, &prefix);
    let store = RedisDedupStore::new(streams.pool().clone(), prefix.clone());
    let other = RedisDedupStore::new(streams.pool().clone(), prefix.clone());

    assert!(store.claim("h:m-1", Duration::from_secs(60)).await.unwrap());
    assert!(
        !other.claim("h:m-1", Duration::from_secs(60)).await.unwrap(),
        "a second process must see the claim"
    );
    store.release("h:m-1").await.unwrap();
    assert!(other.claim("h:m-1", Duration::from_secs(60)).await.unwrap());
    assert!(
        store
            .claim("h:short", Duration::from_millis(50))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        store
            .claim("h:short", Duration::from_millis(50))
            .await
            .unwrap(),
        "an expired claim must be free"
    );
    delete_prefix(&streams, &prefix).await;
}

#[tokio::test]
async fn redis_rejects_bad_input() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("mq");
    let streams = streams(&url, &prefix).limits(pulse_mq::Limits::default().max_payload(8));
    let publisher = streams.publisher();

    let err = publisher
        .publish("orders", Message::new("big", "123456789"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pulse_core::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("9 bytes"), "{err}");
    let err = publisher
        .publish("has space", Message::new("m", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pulse_core::ErrorKind::InvalidInput);
    let err = publisher
        .publish(
            "orders",
            Message::new("m", "x").with_header("x", "line\nbreak"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pulse_core::ErrorKind::InvalidInput);
    // A bad message in a batch publishes none of it.
    let batch = vec![Message::new("ok", "x"), Message::new("big", "123456789")];
    assert!(publisher.publish_batch("orders", batch).await.is_err());
    let mut conn = streams.pool().get().await.unwrap();
    let exists: i64 = deadpool_redis::redis::cmd("EXISTS")
        .arg(streams.stream_key("orders"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn redis_close_skips_unread_buffer() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("mq");
    // The default 30 s drain: a close that waited for entries still in the
    // read buffer would time out below.
    let streams = RedisStreams::from_url(&url).unwrap().prefix(prefix.clone());
    let subscriber = streams.subscriber();
    let mut subscription = subscriber.subscribe("buffered", "g").await.unwrap();
    let messages = (0..10).map(|i| Message::new(i.to_string(), "x")).collect();
    streams
        .publisher()
        .publish_batch("buffered", messages)
        .await
        .unwrap();

    let first = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    first.ack().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), subscriber.close())
        .await
        .expect("close waited for entries that were never handed out")
        .unwrap();
    assert!(
        subscription.next().await.is_none(),
        "a closed subscription must end"
    );
    drop(subscription);
    delete_prefix(&streams, &prefix).await;
}
