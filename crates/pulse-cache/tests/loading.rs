//! Loads shared between concurrent callers, and a cancelled loader that
//! does not wedge its key.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use pulse_cache::LocalCache;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_share_one_call() {
    let cache = LocalCache::<String, u64>::builder()
        .max_entries(100)
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());

    let calls: Vec<_> = (0..64)
        .map(|_| {
            let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("missing".to_owned(), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Hold the load open so every caller joins it.
                        tokio::time::timeout(Duration::from_millis(200), gate.notified())
                            .await
                            .ok();
                        Ok(7)
                    })
                    .await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 7);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().loads, 1);
}

#[tokio::test]
async fn dropped_first_caller_frees_key() {
    let cache = LocalCache::<String, u64>::builder()
        .max_entries(10)
        .build()
        .unwrap();

    // The first caller starts a load that never finishes, is polled once,
    // then dropped.
    {
        let first = cache.get_or_load("k".to_owned(), std::future::pending);
        let mut first = pin!(first);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(first.as_mut().poll(&mut cx).is_pending());
    }

    let second = tokio::time::timeout(
        Duration::from_secs(10),
        cache.get_or_load("k".to_owned(), || async { Ok(2) }),
    )
    .await
    .expect("the second caller is not blocked")
    .unwrap();
    assert_eq!(second, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_takes_over_cancelled_load() {
    let cache = LocalCache::<String, u64>::builder()
        .max_entries(10)
        .build()
        .unwrap();
    let started = Arc::new(tokio::sync::Notify::new());

    let leader = tokio::spawn({
        let (cache, started) = (cache.clone(), started.clone());
        async move {
            cache
                .get_or_load("k".to_owned(), || async move {
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok(1)
                })
                .await
        }
    });
    started.notified().await;

    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_or_load("k".to_owned(), || async { Ok(2) }).await }
    });
    // Give the waiter time to join the running load, then cancel the leader.
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();

    let value = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter takes over")
        .unwrap()
        .unwrap();
    assert_eq!(value, 2);
    assert_eq!(cache.get("k"), Some(2));
}

#[tokio::test]
async fn failed_load_caches_nothing() {
    let cache = LocalCache::<String, u64>::builder()
        .max_entries(10)
        .build()
        .unwrap();
    let err = cache
        .get_or_load("k".to_owned(), || async {
            Err(pulse_core::Error::new(
                pulse_core::ErrorKind::Unavailable,
                "db down",
            ))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pulse_core::ErrorKind::Unavailable);
    assert_eq!(cache.get("k"), None);
    let value = cache
        .get_or_load("k".to_owned(), || async { Ok(3) })
        .await
        .unwrap();
    assert_eq!(value, 3);
}
