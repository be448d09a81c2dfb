//! Trimming is off by default and opt-in with `Trim`.
#![cfg(feature = "redis")]

use pulse_core::mq::{Message, Publisher};
use pulse_mq::redis::{RedisStreams, Trim};

async fn publish_and_count(streams: &RedisStreams, topic: &str) -> i64 {
    let publisher = streams.publisher();
    let messages: Vec<Message> = (0..1000)
        .map(|i| Message::new(i.to_string(), "x"))
        .collect();
    for chunk in messages.chunks(100) {
        publisher
            .publish_batch(topic, chunk.to_vec())
            .await
            .unwrap();
    }
    let mut conn = streams.pool().get().await.unwrap();
    let len: i64 = deadpool_redis::redis::cmd("XLEN")
        .arg(streams.stream_key(topic))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = deadpool_redis::redis::cmd("DEL")
        .arg(streams.stream_key(topic))
        .query_async(&mut conn)
        .await
        .unwrap();
    len
}

#[tokio::test]
async fn stream_keeps_everything_by_default() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let streams = RedisStreams::from_url(&url)
        .unwrap()
        .prefix(pulse_testkit::unique_prefix("mq"));
    assert_eq!(publish_and_count(&streams, "all").await, 1000);
}

#[tokio::test]
async fn max_len_trims_old_entries() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let streams = RedisStreams::from_url(&url)
        .unwrap()
        .prefix(pulse_testkit::unique_prefix("mq"))
        .trim(Trim::MaxLen(10));
    let len = publish_and_count(&streams, "trimmed").await;
    // `MAXLEN ~` trims whole stream nodes (100 entries each by default), so
    // the length is only bounded, not exact.
    assert!(len < 1000, "XLEN {len} after trimming to about 10");
    assert!(len >= 10, "XLEN {len} is below the requested 10");
}

#[tokio::test]
async fn max_age_trims_old_entries() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let streams = RedisStreams::from_url(&url)
        .unwrap()
        .prefix(pulse_testkit::unique_prefix("mq"))
        .trim(Trim::MaxAge(std::time::Duration::from_millis(10)));
    let publisher = streams.publisher();
    let old: Vec<Message> = (0..500)
        .map(|i| Message::new(format!("old-{i}"), "x"))
        .collect();
    publisher.publish_batch("aged", old).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    // Every entry of the first batch is now older than 10 ms, so the next
    // XADD may drop the stream nodes that hold only those.
    let len = publish_and_count(&streams, "aged").await;
    assert!(
        len < 1500,
        "XLEN {len}: nothing older than the maximum age was trimmed"
    );
    assert!(len >= 1, "XLEN {len}: the newest entry was trimmed");
}
