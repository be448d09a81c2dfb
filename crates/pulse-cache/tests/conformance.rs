//! The cache-store conformance suite on the local tier, the Redis store and
//! the near cache over Redis.

#[cfg(feature = "redis")]
mod common;

use std::sync::Arc;
#[cfg(feature = "redis")]
use std::time::Duration;

use bytes::Bytes;
use pulse_cache::LocalCache;
#[cfg(feature = "redis")]
use pulse_cache::NearCache;
#[cfg(feature = "redis")]
use pulse_cache::redis::InvalidationMode;
use pulse_testkit::suites::cache::{CacheSetup, run_all};

#[tokio::test]
async fn local_tier_passes_the_suite() {
    let store = LocalCache::<String, Bytes>::builder()
        .max_entries(1000)
        .build()
        .unwrap();
    let setup = CacheSetup::new(
        "local",
        Arc::new(store),
        pulse_testkit::unique_prefix("cache"),
    );
    run_all(&setup).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_suite() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("cache");
    let store = common::store(&url, &prefix, InvalidationMode::Auto);
    let setup = CacheSetup::new("redis", Arc::new(store), "suite");
    run_all(&setup).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_over_redis_passes_the_suite() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    for mode in [InvalidationMode::Tracking, InvalidationMode::PubSub] {
        let prefix = pulse_testkit::unique_prefix("cache");
        let store = common::store(&url, &prefix, mode);
        let near = NearCache::<Bytes, _>::builder(store)
            .max_entries(1000)
            .build()
            .unwrap();
        assert!(
            near.wait_coherent(Duration::from_secs(10)).await,
            "{mode:?}: stream not live"
        );
        let setup = CacheSetup::new(format!("near-{mode:?}"), Arc::new(near.clone()), "suite");
        run_all(&setup).await;
        near.shutdown().await;
        near.store().shutdown().await;
    }
}
