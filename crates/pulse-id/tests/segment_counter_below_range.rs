//! A Redis segment counter that does not cover the range just reserved (a
//! negative value written by hand, or one a reset moved back) is a typed
//! error, never an underflow that wraps into IDs near `u64::MAX`.
#![cfg(feature = "redis")]

use pulse_id::segment::redis::RedisSegmentSource;
use pulse_id::{IdError, SegmentSource};

#[tokio::test]
async fn negative_counter_is_an_error() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("id-segments");
    let source = RedisSegmentSource::from_url(&url)
        .unwrap()
        .with_prefix(&prefix);
    let key = source.key("orders");

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(-500)
        .query_async(&mut conn)
        .await
        .unwrap();

    let result = source.reserve("orders", 1000).await;
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, IdError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("500"), "{err}");
}
