//! Task group: first error, cancellation, limits and panics; fan-out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use pulse_conc::fanout::{self, Order};
use pulse_conc::{Error, GroupError, TaskGroup};

#[tokio::test]
async fn first_error_cancels_siblings_within_one_step() {
    let failed = Arc::new(AtomicBool::new(false));
    let polls_after_failure = Arc::new(AtomicUsize::new(0));
    let mut group = TaskGroup::new();

    // Siblings that never look at the token: they yield forever.
    for _ in 0..8 {
        let (failed, polls) = (failed.clone(), polls_after_failure.clone());
        group
            .spawn(move |_token| async move {
                loop {
                    if failed.load(Ordering::SeqCst) {
                        polls.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                }
            })
            .await;
    }
    group
        .spawn({
            let failed = failed.clone();
            move |_token| async move {
                tokio::task::yield_now().await;
                failed.store(true, Ordering::SeqCst);
                Err("payment declined")
            }
        })
        .await;

    let result = tokio::time::timeout(Duration::from_secs(10), group.wait()).await;
    assert_eq!(result.unwrap(), Err(GroupError::Task("payment declined")));

    // On a single-thread runtime, each yielding sibling is polled at most
    // once more before the cancellation drops it.
    assert!(polls_after_failure.load(Ordering::SeqCst) <= 8);
    assert!(group.token().is_cancelled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_is_never_exceeded() {
    const LIMIT: usize = 3;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut group = TaskGroup::<String>::new().limit(LIMIT).unwrap();

    for _ in 0..200 {
        let (running, peak) = (running.clone(), peak.clone());
        group
            .spawn(move |_| async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                if now > LIMIT {
                    return Err(format!("{now} tasks running, limit {LIMIT}"));
                }
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
    }
    assert_eq!(group.wait().await, Ok(()));
    assert!(peak.load(Ordering::SeqCst) <= LIMIT);
}

#[tokio::test]
async fn try_spawn_refuses_at_limit() {
    let mut group = TaskGroup::<()>::new().limit(1).unwrap();
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    group
        .try_spawn(move |_| async move {
            let _ = gate.await;
            Ok(())
        })
        .unwrap();
    let refused = group.try_spawn(|_| async { Ok(()) });
    assert_eq!(
        refused,
        Err(Error::Full {
            what: "task group",
            capacity: 1
        })
    );
    release.send(()).unwrap();
    assert_eq!(group.wait().await, Ok(()));
    assert!(TaskGroup::<()>::new().limit(0).is_err());
}

#[tokio::test]
async fn panic_becomes_error_by_option() {
    let mut group = TaskGroup::<()>::new().panics_as_errors(true);
    group.spawn(|_| async { panic!("worker bug") }).await;
    group.spawn(|_| std::future::pending()).await;
    let result = group.wait().await;
    assert_eq!(
        result,
        Err(GroupError::Panicked(Error::Panicked {
            message: "worker bug".to_owned()
        }))
    );
}

#[tokio::test]
async fn panic_resumes_by_default() {
    let outcome = tokio::spawn(async {
        let mut group = TaskGroup::<()>::new();
        group.spawn(|_| async { panic!("unhandled") }).await;
        group.wait().await
    })
    .await;
    assert!(outcome.unwrap_err().is_panic());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_ordered_keeps_order_and_limit() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let results: Vec<u64> = fanout::map(fanout::iter(0..100u64), 4, Order::Ordered, |n| {
        let (running, peak) = (running.clone(), peak.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);

            // Later items finish first, so ordering has work to do.
            tokio::time::sleep(Duration::from_micros((100 - n) * 10)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            n * 2
        }
    })
    .unwrap()
    .collect()
    .await;
    assert_eq!(results, (0..100).map(|n| n * 2).collect::<Vec<_>>());
    assert!(peak.load(Ordering::SeqCst) <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_unordered_yields_all() {
    let input = futures_util::stream::iter(0..500u32);
    let mut results: Vec<u32> = fanout::map(input, 8, Order::Unordered, |n| async move { n + 1 })
        .unwrap()
        .collect()
        .await;
    results.sort_unstable();
    assert_eq!(results, (1..=500).collect::<Vec<_>>());
    assert!(fanout::map(fanout::iter([1]), 0, Order::Unordered, |n| async move { n }).is_err());
}
