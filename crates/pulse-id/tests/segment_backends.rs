//! Segment allocators over Redis and PostgreSQL: two allocators of one name
//! never hand out the same ID.
#![cfg(any(feature = "redis", feature = "postgres"))]

use pulse_id::{SegmentAllocator, SegmentConfig, SegmentSource};

fn config() -> SegmentConfig {
    SegmentConfig {
        initial_step: 100,
        min_step: 100,
        max_step: 10_000,
        ..SegmentConfig::default()
    }
}

/// Runs two allocators of `name` over `make()` sources and checks that
/// their IDs are distinct and that each increases.
async fn two_allocators_disjoint<S: SegmentSource>(make: impl Fn() -> S, name: &str) {
    let one = SegmentAllocator::start(make(), name, config())
        .await
        .unwrap();
    let two = SegmentAllocator::start(make(), name, config())
        .await
        .unwrap();
    let (mut from_one, mut from_two) = (Vec::new(), Vec::new());
    for _ in 0..20_000 {
        from_one.push(one.next_id_async().await.unwrap());
        from_two.push(two.next_id_async().await.unwrap());
    }
    assert!(from_one.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(from_two.windows(2).all(|pair| pair[0] < pair[1]));

    let mut all = from_one;
    all.extend(from_two);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 40_000);
    one.shutdown().await;
    two.shutdown().await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_allocators_disjoint() {
    use pulse_id::segment::redis::RedisSegmentSource;

    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("id-segments");
    let source = RedisSegmentSource::from_url(&url)
        .unwrap()
        .with_prefix(&prefix);
    assert_eq!(source.reserve("orders", 10).await.unwrap(), 1);
    assert_eq!(source.reserve("orders", 10).await.unwrap(), 11);
    two_allocators_disjoint(|| source.clone(), "orders").await;

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(source.key("orders"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_allocators_disjoint() {
    use std::sync::Arc;

    use pulse_id::lease::postgres::migrate;
    use pulse_id::segment::postgres::PgSegmentSource;
    use pulse_testkit::pg::TestSchema;

    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = TestSchema::create(&url).await.unwrap();
    let client = Arc::new(schema.connect().await.unwrap());
    migrate(&client).await.unwrap();

    let source = PgSegmentSource::new(Arc::clone(&client));
    assert_eq!(source.reserve("orders", 10).await.unwrap(), 1);
    assert_eq!(source.reserve("orders", 10).await.unwrap(), 11);
    two_allocators_disjoint(|| PgSegmentSource::new(Arc::clone(&client)), "orders").await;
    drop(source);
    drop(client);
    schema.drop().await.unwrap();
}
