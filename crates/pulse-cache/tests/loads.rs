//! Loading a missing key once per process, and once in all with the
//! cross-process lock; negative caching; bad input.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pulse_cache::redis::{InvalidationMode, RedisStore};
use pulse_cache::{CacheError, NearCache};
use pulse_core::ErrorKind;
use pulse_core::cache::CacheStore;
use pulse_core::lock::DynLock;

async fn load_64(near: &NearCache<String, RedisStore>, runs: &Arc<AtomicUsize>) {
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let (near, runs) = (near.clone(), runs.clone());
            tokio::spawn(async move {
                near.get_or_load("missing", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(Some("loaded".to_owned()))
                })
                .await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().as_deref(), Some("loaded"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loader_runs_once_per_process() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("cache");
    let runs = Arc::new(AtomicUsize::new(0));
    let near =
        NearCache::<String, _>::builder(common::store(&url, &prefix, InvalidationMode::Auto))
            .build()
            .unwrap();
    load_64(&near, &runs).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    near.store().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_process_lock_loads_once() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("cache");
    let runs = Arc::new(AtomicUsize::new(0));
    let make = || {
        let store = common::store(&url, &prefix, InvalidationMode::Auto);
        let lock: Arc<dyn DynLock> = Arc::new(common::NxLock::new(store.clone()));
        NearCache::<String, _>::builder(store)
            .cross_process_lock(lock)
            .lock_wait(Duration::from_secs(20))
            .build()
            .unwrap()
    };
    let (first, second) = (make(), make());
    tokio::join!(load_64(&first, &runs), load_64(&second, &runs));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    first.store().shutdown().await;
    second.store().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_ttl_caches_missing_key() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("cache");
    let clock = pulse_testkit::clock::ManualClock::new();
    let near =
        NearCache::<String, _>::builder(common::store(&url, &prefix, InvalidationMode::Auto))
            .negative_ttl(Duration::from_secs(30))
            .clock(clock.clone())
            .build()
            .unwrap();
    assert!(near.wait_coherent(Duration::from_secs(10)).await);
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let runs = runs.clone();
        let found = near
            .get_or_load("ghost", || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(None)
            })
            .await
            .unwrap();
        assert_eq!(found, None);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    clock.advance(Duration::from_secs(30));
    let again = runs.clone();
    near.get_or_load("ghost", || async move {
        again.fetch_add(1, Ordering::SeqCst);
        Ok(None)
    })
    .await
    .unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the negative entry outlived its TTL"
    );
    near.store().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_value_removed_with_error() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("cache");
    let store = common::store(&url, &prefix, InvalidationMode::Auto);
    let near = NearCache::<(String, u64), _>::builder(store.clone())
        .build()
        .unwrap();

    // A varint that never ends is not valid postcard.
    store
        .set("user:7", bytes::Bytes::from_static(&[0xff; 12]), None)
        .await
        .unwrap();
    let err = near.get("user:7").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec);
    assert!(err.to_string().contains("user:7"), "{err}");
    assert!(matches!(
        err.downcast_ref::<CacheError>(),
        Some(CacheError::Decode { .. })
    ));
    assert_eq!(
        store.get("user:7").await.unwrap(),
        None,
        "the bad value was left in place"
    );
    assert_eq!(near.get("user:7").await.unwrap(), None);
    store.shutdown().await;
}

#[tokio::test]
async fn overlong_key_rejected() {
    let store = RedisStore::builder()
        .url("redis://127.0.0.1:1")
        .max_key_len(16)
        .build()
        .unwrap();
    let err = store.get(&"k".repeat(17)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("17 bytes"), "{err}");

    let remote = pulse_cache::LocalCache::<String, bytes::Bytes>::builder()
        .max_entries(10)
        .build()
        .unwrap();
    let near = NearCache::<u64, _>::builder(remote)
        .max_key_len(16)
        .build()
        .unwrap();
    let long = "k".repeat(17);
    for err in [
        near.get(&long).await.unwrap_err(),
        near.set(&long, &1).await.unwrap_err(),
        near.get_or_load(&long, || async { Ok(Some(1)) })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}

#[tokio::test]
async fn password_hidden_in_errors() {
    let store = RedisStore::builder()
        .url("redis://app:s3cret-pw@127.0.0.1:1/0")
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!err.to_string().contains("s3cret-pw"), "{err}");
    assert!(!format!("{err:?}").contains("s3cret-pw"));
    assert!(!format!("{store:?}").contains("s3cret-pw"));

    let bad = RedisStore::builder()
        .url("redis://app:s3cret-pw@[::1")
        .build()
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidConfig);
    assert!(!bad.to_string().contains("s3cret-pw"), "{bad}");
}
