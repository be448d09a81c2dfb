//! Backoff values, jitter, retry attempts and the shared budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pulse_conc::Error;
use pulse_conc::retry::{Backoff, Jitter, Retry, RetryBudget};
use pulse_core::clock::ManualClock;

fn vector_backoff() -> Backoff {
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(30))
        .unwrap()
        .factor(2.0)
        .unwrap()
}

#[test]
fn backoff_vector_values() {
    let backoff = vector_backoff();
    assert_eq!(backoff.delay(1), Duration::from_millis(100));
    assert_eq!(backoff.delay(5), Duration::from_millis(1600));
    assert_eq!(backoff.delay(64), Duration::from_secs(30));
    assert_eq!(backoff.delay(10_000), Duration::from_secs(30));
}

#[test]
fn backoff_never_zero_or_above_cap() {
    let backoff = vector_backoff();
    let mut previous = Duration::ZERO;
    for failures in (0..=20_000).chain([u32::MAX - 1, u32::MAX]) {
        let delay = backoff.delay(failures);
        assert!(
            delay >= Duration::from_millis(100),
            "failure {failures}: {delay:?}"
        );
        assert!(
            delay <= Duration::from_secs(30),
            "failure {failures}: {delay:?}"
        );
        assert!(delay >= previous, "failure {failures}: delays never shrink");
        previous = delay;
    }
}

#[test]
fn full_jitter_stays_in_range() {
    let backoff = vector_backoff().jitter(Jitter::Full);
    for failures in [1, 5, 64, 10_000] {
        for _ in 0..200 {
            assert!(backoff.delay(failures) <= backoff.base_delay(failures));
        }
    }
}

#[test]
fn backoff_rejects_bad_values() {
    let base_over_cap = Backoff::exponential(Duration::from_secs(2), Duration::from_secs(1));
    assert!(
        matches!(base_over_cap, Err(Error::InvalidConfig(err)) if err.field() == "backoff base")
    );
    assert!(Backoff::exponential(Duration::ZERO, Duration::from_secs(1)).is_err());
    assert!(vector_backoff().factor(0.5).is_err());
    assert!(vector_backoff().factor(f64::INFINITY).is_err());
    assert!(Retry::new(0, vector_backoff()).is_err());
    assert!(RetryBudget::new(-1.0, 10).is_err());
    assert!(RetryBudget::new(0.1, 0).is_err());
}

/// Drives `future` while advancing `clock` whenever a sleeper waits.
async fn run_with_clock<F: std::future::Future>(clock: &ManualClock, future: F) -> F::Output {
    tokio::pin!(future);
    loop {
        tokio::select! {
            biased;
            output = &mut future => return output,
            () = tokio::task::yield_now() => {
                if clock.sleeper_count() > 0 {
                    clock.advance(Duration::from_secs(60));
                }
            }
        }
    }
}

#[tokio::test]
async fn retry_stops_after_max_attempts() {
    let clock = ManualClock::new();
    let retry = Retry::new(4, vector_backoff())
        .unwrap()
        .clock(clock.clone());
    let attempts = AtomicU32::new(0);

    let result: Result<(), &str> = run_with_clock(
        &clock,
        retry.call(|_| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Err("down") }
        }),
    )
    .await;
    assert_eq!(result, Err("down"));
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn retry_if_skips_permanent_errors() {
    let clock = ManualClock::new();
    let retry = Retry::new(5, vector_backoff())
        .unwrap()
        .clock(clock.clone());
    let attempts = AtomicU32::new(0);
    let result: Result<(), &str> = retry
        .call_if(
            |_| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async { Err("invalid request") }
            },
            |err| *err != "invalid request",
        )
        .await;
    assert!(result.is_err());
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn budget_is_shared_across_calls() {
    let clock = ManualClock::new();
    let budget = RetryBudget::new(0.0, 3).unwrap();
    let first = Retry::new(10, vector_backoff())
        .unwrap()
        .budget(budget.clone())
        .clock(clock.clone());
    let second = first.clone();
    let attempts = Arc::new(AtomicU32::new(0));

    let failing = |_| {
        attempts.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>("down") }
    };
    let _ = run_with_clock(&clock, first.call(failing)).await;
    let _ = run_with_clock(&clock, second.call(failing)).await;

    // 2 first attempts plus the 3 retries the budget held.
    assert_eq!(attempts.load(Ordering::SeqCst), 5);
    assert_eq!(budget.tokens(), 0);
}
