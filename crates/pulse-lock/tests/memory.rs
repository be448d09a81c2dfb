//! The in-process lease service, driven by a manual clock.

use std::time::Duration;

use pulse_core::clock::{Clock, ManualClock};
use pulse_core::error::ErrorKind;
use pulse_core::lock::Lock;
use pulse_lock::{LeaseOptions, MemoryLock};

const SECOND: Duration = Duration::from_secs(1);

fn locks(clock: &ManualClock) -> MemoryLock {
    MemoryLock::with_options(
        LeaseOptions::new()
            .clock(clock.clone())
            .drift_margin(Duration::from_millis(100)),
    )
}

/// Lets spawned tasks run until `done` holds, without moving time.
async fn settle(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn lost_fires_at_deadline_minus_drift() {
    let clock = ManualClock::new();
    let locks = locks(&clock);
    let lease = locks.try_acquire("k", SECOND).await.unwrap().unwrap();
    assert_eq!(lease.deadline(), clock.now() + Duration::from_millis(900));

    settle(|| clock.sleeper_count() > 0).await;
    clock.advance(Duration::from_millis(899));
    tokio::task::yield_now().await;
    assert!(!lease.lost().is_fired());
    assert!(lease.check(&clock).is_ok());

    clock.advance(Duration::from_millis(1));
    settle(|| lease.lost().is_fired()).await;
    assert_eq!(lease.check(&clock).unwrap_err().kind(), ErrorKind::NotOwner);
}

#[tokio::test]
async fn stalled_holder_is_not_owner_again() {
    let clock = ManualClock::new();
    let locks = locks(&clock);
    let stalled = locks.try_acquire("job", SECOND).await.unwrap().unwrap();

    // The holder stalls past its TTL; another client takes and releases.
    settle(|| clock.sleeper_count() > 0).await;
    clock.advance(Duration::from_millis(1100));
    let other = locks
        .try_acquire("job", SECOND)
        .await
        .unwrap()
        .expect("expired lock is free");
    assert!(other.fencing_token() > stalled.fencing_token());
    locks.release(other).await.unwrap();

    settle(|| stalled.lost().is_fired()).await;
    let err = locks.extend(&stalled, SECOND).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner);
    assert_eq!(locks.held(), 0, "the failed refresh took nothing back");
    let err = locks.release(stalled).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner);
}

#[tokio::test]
async fn late_release_leaves_new_holder() {
    let clock = ManualClock::new();
    let locks = locks(&clock);
    let stalled = locks.try_acquire("job", SECOND).await.unwrap().unwrap();
    clock.advance(Duration::from_millis(1001));
    let holder = locks.try_acquire("job", SECOND).await.unwrap().unwrap();

    assert!(locks.release(stalled).await.is_err());
    assert_eq!(locks.held(), 1);
    assert!(locks.try_acquire("job", SECOND).await.unwrap().is_none());
    locks.release(holder).await.unwrap();
}

#[tokio::test]
async fn extend_moves_deadline_and_timer() {
    let clock = ManualClock::new();
    let locks = locks(&clock);
    let lease = locks.try_acquire("k", SECOND).await.unwrap().unwrap();
    clock.advance(Duration::from_millis(500));
    locks.extend(&lease, SECOND).await.unwrap();
    assert_eq!(lease.deadline(), clock.now() + Duration::from_millis(900));

    clock.advance(Duration::from_millis(800));
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!lease.lost().is_fired(), "the timer follows the extension");
    clock.advance(Duration::from_millis(100));
    settle(|| lease.lost().is_fired()).await;
}

#[tokio::test]
async fn watchdog_keeps_lease_alive() {
    let clock = ManualClock::new();
    let locks = MemoryLock::with_options(
        LeaseOptions::new()
            .clock(clock.clone())
            .drift_margin(Duration::from_millis(100))
            .watchdog(true),
    );
    let lease = locks
        .try_acquire("k", Duration::from_secs(3))
        .await
        .unwrap()
        .unwrap();
    for step in 0..10 {
        // Wait for the timer and the watchdog to sleep, then pass one period.
        settle(|| clock.sleeper_count() >= 2).await;
        clock.advance(SECOND);
        let expected = clock.now() + Duration::from_millis(2900);
        settle(|| lease.deadline() == expected).await;
        assert!(!lease.lost().is_fired(), "step {step}");
    }
    assert!(lease.check(&clock).is_ok());

    // Dropping the lease stops the watchdog and releases in the background.
    drop(lease);
    settle(|| locks.held() == 0).await;
}

#[tokio::test]
async fn drop_releases_in_background() {
    let clock = ManualClock::new();
    let locks = locks(&clock);
    let lease = locks.try_acquire("k", SECOND).await.unwrap().unwrap();
    drop(lease);
    settle(|| locks.held() == 0).await;
    assert!(locks.try_acquire("k", SECOND).await.unwrap().is_some());
}

#[tokio::test]
async fn acquire_waits_for_release() {
    let clock = ManualClock::new();
    let locks = locks(&clock);
    let first = locks.try_acquire("k", SECOND).await.unwrap().unwrap();
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move { locks.acquire("k", SECOND, Duration::from_secs(10)).await }
    });
    tokio::task::yield_now().await;
    locks.release(first).await.unwrap();
    let second = waiter.await.unwrap().unwrap();
    assert_eq!(second.fencing_token(), Some(2));
}

#[tokio::test]
async fn acquire_times_out_on_clock() {
    let clock = ManualClock::new();
    let locks = locks(&clock);
    let _held = locks
        .try_acquire("k", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move { locks.acquire("k", Duration::from_secs(60), SECOND).await }
    });
    settle(|| clock.sleeper_count() >= 2).await;
    clock.advance(SECOND);
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[tokio::test]
async fn bad_input_is_typed() {
    let locks = MemoryLock::new();
    let cases = [
        ("", SECOND, ErrorKind::InvalidInput),
        ("k", Duration::ZERO, ErrorKind::InvalidInput),
        ("k", Duration::from_millis(1), ErrorKind::InvalidInput),
    ];
    for (key, ttl, kind) in cases {
        let err = locks.try_acquire(key, ttl).await.unwrap_err();
        assert_eq!(err.kind(), kind, "key {key:?} ttl {ttl:?}: {err}");
        assert!(err.downcast_ref::<pulse_lock::LockError>().is_some());
    }
}
