//! Bulkhead limits, waits and rejections; the time limiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pulse_conc::{Bulkhead, CallError, Error, TimeLimiter};
use pulse_core::clock::ManualClock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulkhead_never_exceeds_limit() {
    let bulkhead = Bulkhead::builder("db")
        .max_concurrent(3)
        .max_wait(Duration::from_secs(60))
        .build()
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));

    let mut calls = Vec::new();
    for _ in 0..50 {
        let (bulkhead, running, peak) = (bulkhead.clone(), running.clone(), peak.clone());
        calls.push(tokio::spawn(async move {
            bulkhead
                .call(|| async {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(())
                })
                .await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert_eq!(bulkhead.available(), 3);
}

#[tokio::test]
async fn bulkhead_wait_times_out() {
    let clock = ManualClock::new();
    let bulkhead = Bulkhead::builder("slow")
        .max_concurrent(1)
        .max_wait(Duration::from_millis(500))
        .clock(clock.clone())
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();

    let waiter = bulkhead.acquire();
    tokio::pin!(waiter);
    assert!(futures_util::poll!(&mut waiter).is_pending());
    assert_eq!(bulkhead.waiting(), 1);

    clock.advance(Duration::from_millis(500));
    assert!(matches!(
        waiter.await,
        Err(Error::BulkheadFull {
            max_concurrent: 1,
            ..
        })
    ));
    assert_eq!(bulkhead.waiting(), 0);

    // A slot freed during the wait is taken.
    let waiter = bulkhead.acquire();
    tokio::pin!(waiter);
    assert!(futures_util::poll!(&mut waiter).is_pending());
    drop(held);
    assert!(waiter.await.is_ok());
}

#[tokio::test]
async fn bulkhead_queue_limit_and_no_wait() {
    let bulkhead = Bulkhead::builder("queue")
        .max_concurrent(1)
        .max_wait(Duration::from_secs(60))
        .max_queue(1)
        .build()
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    let first = bulkhead.acquire();
    tokio::pin!(first);
    assert!(futures_util::poll!(&mut first).is_pending());
    assert!(bulkhead.acquire().await.is_err(), "the queue of 1 is full");

    let no_wait = Bulkhead::builder("no-wait")
        .max_concurrent(1)
        .build()
        .unwrap();
    let _slot = no_wait.try_acquire().unwrap();
    let result = no_wait.call(|| async { Ok::<_, std::io::Error>(()) }).await;
    assert!(matches!(
        result,
        Err(CallError::Rejected(Error::BulkheadFull { .. }))
    ));

    assert!(Bulkhead::builder("zero").max_concurrent(0).build().is_err());
}

#[tokio::test]
async fn time_limiter_uses_clock() {
    let clock = ManualClock::new();
    let limiter = TimeLimiter::new(Duration::from_secs(5))
        .unwrap()
        .clock(clock.clone());
    let call = limiter.call(std::future::pending::<Result<(), std::io::Error>>());
    tokio::pin!(call);
    assert!(futures_util::poll!(&mut call).is_pending());
    clock.advance(Duration::from_secs(5));
    assert!(matches!(
        call.await,
        Err(CallError::Rejected(Error::TimedOut { after })) if after == Duration::from_secs(5)
    ));
    assert!(TimeLimiter::new(Duration::ZERO).is_err());
}
