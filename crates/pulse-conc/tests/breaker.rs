//! Circuit breaker state machine, windows, thresholds and events.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_conc::breaker::{CircuitBreaker, Reason, SlidingWindow, State, StateChange};
use pulse_conc::{CallError, Error};
use pulse_core::clock::ManualClock;

fn fail() -> Result<(), io::Error> {
    Err(io::Error::other("upstream refused"))
}

fn succeed() -> Result<(), io::Error> {
    Ok(())
}

#[test]
fn consecutive_threshold_resets_on_success() {
    let breaker = CircuitBreaker::builder("vector")
        .consecutive_failures(2)
        .build()
        .unwrap();

    assert!(breaker.call_sync(fail).is_err());
    assert!(breaker.call_sync(succeed).is_ok());
    assert!(breaker.call_sync(fail).is_err());
    assert_eq!(
        breaker.state(),
        State::Closed,
        "fail, success, fail stays closed"
    );

    assert!(breaker.call_sync(fail).is_err());
    assert_eq!(
        breaker.state(),
        State::Open,
        "two failures in a row open it"
    );
}

fn open_breaker(clock: &ManualClock, trials: u32) -> CircuitBreaker {
    let breaker = CircuitBreaker::builder("half-open")
        .consecutive_failures(1)
        .wait_in_open(Duration::from_secs(10))
        .half_open_trials(trials)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(breaker.call_sync(fail).is_err());
    assert_eq!(breaker.state(), State::Open);
    breaker
}

#[test]
fn half_open_admits_one_of_three() {
    let clock = ManualClock::new();
    let breaker = open_breaker(&clock, 1);
    clock.advance(Duration::from_secs(10));

    let first = breaker.try_acquire();
    let second = breaker.try_acquire();
    let third = breaker.try_acquire();
    assert!(first.is_ok());
    assert!(matches!(second, Err(Error::CircuitOpen { .. })));
    assert!(matches!(third, Err(Error::CircuitOpen { .. })));
    assert_eq!(breaker.state(), State::HalfOpen);

    first.unwrap().record_success();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn half_open_admits_one_of_three_threads() {
    let clock = ManualClock::new();
    let breaker = open_breaker(&clock, 1);
    clock.advance(Duration::from_secs(10));

    // Each caller holds its permit until all three have asked, so the
    // three calls overlap.
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let (breaker, barrier) = (breaker.clone(), barrier.clone());
            std::thread::spawn(move || {
                let permit = breaker.try_acquire();
                barrier.wait();
                match permit {
                    Ok(permit) => {
                        permit.record_success();
                        true
                    }
                    Err(_) => false,
                }
            })
        })
        .collect();
    let ran: usize = callers
        .into_iter()
        .map(|caller| usize::from(caller.join().unwrap()))
        .sum();
    assert_eq!(ran, 1);
    assert_eq!(breaker.metrics().rejected, 2);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn failed_trial_reopens() {
    let clock = ManualClock::new();
    let breaker = open_breaker(&clock, 2);
    clock.advance(Duration::from_secs(10));

    assert!(breaker.call_sync(fail).is_err());
    assert_eq!(breaker.state(), State::Open);

    // A fresh open wait starts from the reopening.
    clock.advance(Duration::from_secs(9));
    let err = breaker.call_sync(succeed).unwrap_err();
    assert!(matches!(
        err.rejection(),
        Some(Error::CircuitOpen { retry_after: Some(after), .. }) if *after == Duration::from_secs(1)
    ));
}

#[test]
fn dropped_trial_permit_is_returned() {
    let clock = ManualClock::new();
    let breaker = open_breaker(&clock, 1);
    clock.advance(Duration::from_secs(10));

    drop(breaker.try_acquire().unwrap());
    let permit = breaker
        .try_acquire()
        .expect("the unused trial slot came back");
    permit.record_success();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn failure_rate_needs_minimum_calls() {
    let breaker = CircuitBreaker::builder("rate")
        .sliding_window(SlidingWindow::CountBased(10))
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();

    for _ in 0..3 {
        assert!(breaker.call_sync(fail).is_err());
    }
    assert_eq!(
        breaker.state(),
        State::Closed,
        "3 calls are under the minimum of 4"
    );

    assert!(breaker.call_sync(fail).is_err());
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn count_window_forgets_old_failures() {
    let breaker = CircuitBreaker::builder("window")
        .sliding_window(SlidingWindow::CountBased(4))
        .failure_rate_threshold(75.0)
        .build()
        .unwrap();

    // 2 of 4 failed: 50%, under 75%.
    for outcome in [fail, fail, succeed, succeed] {
        let _ = breaker.call_sync(outcome);
    }
    assert_eq!(breaker.metrics().failures, 2);

    // Two successes push both failures out of the window.
    let _ = breaker.call_sync(succeed);
    let _ = breaker.call_sync(succeed);
    let metrics = breaker.metrics();
    assert_eq!(metrics.calls, 4);
    assert_eq!(metrics.failures, 0);

    for _ in 0..3 {
        let _ = breaker.call_sync(fail);
    }
    assert_eq!(breaker.state(), State::Open, "3 of 4 reach 75%");
}

#[test]
fn time_window_counts_recent_seconds() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder("time")
        .sliding_window(SlidingWindow::TimeBased(5))
        .minimum_calls(3)
        .failure_rate_threshold(60.0)
        .clock(clock.clone())
        .build()
        .unwrap();

    let _ = breaker.call_sync(fail);
    let _ = breaker.call_sync(fail);
    clock.advance(Duration::from_secs(6));

    // The two old failures have left the window: 1 of 3 failed.
    let _ = breaker.call_sync(succeed);
    let _ = breaker.call_sync(succeed);
    let _ = breaker.call_sync(fail);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().calls, 3);

    let _ = breaker.call_sync(fail);
    let _ = breaker.call_sync(fail);
    assert_eq!(breaker.state(), State::Open, "3 of 5 reach 60%");
}

#[tokio::test]
async fn slow_calls_open_circuit() {
    let clock = ManualClock::new();
    let changes = Arc::new(Mutex::new(Vec::<StateChange>::new()));
    let breaker = CircuitBreaker::builder("slow")
        .sliding_window(SlidingWindow::CountBased(2))
        .slow_calls(Duration::from_secs(1), 100.0)
        .clock(clock.clone())
        .on_state_change({
            let changes = changes.clone();
            move |change| changes.lock().unwrap().push(change.clone())
        })
        .build()
        .unwrap();

    for _ in 0..2 {
        let result = breaker
            .call(|| async {
                clock.advance(Duration::from_secs(2));
                Ok::<_, io::Error>(())
            })
            .await;
        assert!(result.is_ok(), "a slow call still returns its value");
    }
    assert_eq!(breaker.state(), State::Open);
    let changes = changes.lock().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].reason, Reason::SlowCallRate);
    assert_eq!(
        (changes[0].from, changes[0].to),
        (State::Closed, State::Open)
    );
}

#[test]
fn predicate_ignores_some_errors() {
    let breaker = CircuitBreaker::builder("predicate")
        .consecutive_failures(1)
        .failure_predicate(|err| {
            err.downcast_ref::<io::Error>()
                .is_none_or(|err| err.kind() != io::ErrorKind::NotFound)
        })
        .build()
        .unwrap();

    let not_found = || Err::<(), _>(io::Error::from(io::ErrorKind::NotFound));
    let result = breaker.call_sync(not_found);
    assert!(matches!(result, Err(CallError::Inner(_))));
    assert_eq!(
        breaker.state(),
        State::Closed,
        "a missing record is not an outage"
    );

    let _ = breaker.call_sync(fail);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn manual_states() {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let breaker = CircuitBreaker::builder("manual")
        .on_state_change({
            let changes = changes.clone();
            move |change: &StateChange| changes.lock().unwrap().push((change.to, change.reason))
        })
        .build()
        .unwrap();

    breaker.force_open();
    assert!(breaker.call_sync(succeed).unwrap_err().is_rejected());

    breaker.disable();
    for _ in 0..500 {
        let _ = breaker.call_sync(fail);
    }
    assert_eq!(
        breaker.state(),
        State::Disabled,
        "a disabled breaker records nothing"
    );

    breaker.close();
    assert_eq!(breaker.metrics().calls, 0);
    assert_eq!(
        *changes.lock().unwrap(),
        [
            (State::ForcedOpen, Reason::Manual),
            (State::Disabled, Reason::Manual),
            (State::Closed, Reason::Manual),
        ]
    );
}

#[test]
fn builder_rejects_bad_values() {
    let cases = [
        (
            CircuitBreaker::builder("b")
                .failure_rate_threshold(0.0)
                .build(),
            "failure_rate_threshold",
        ),
        (
            CircuitBreaker::builder("b")
                .failure_rate_threshold(100.5)
                .build(),
            "failure_rate_threshold",
        ),
        (
            CircuitBreaker::builder("b")
                .failure_rate_threshold(f64::NAN)
                .build(),
            "failure_rate_threshold",
        ),
        (
            CircuitBreaker::builder("b")
                .slow_calls(Duration::from_secs(1), -1.0)
                .build(),
            "slow_call_rate_threshold",
        ),
        (
            CircuitBreaker::builder("b").half_open_trials(0).build(),
            "half_open_trials",
        ),
        (
            CircuitBreaker::builder("b")
                .sliding_window(SlidingWindow::CountBased(0))
                .build(),
            "sliding_window",
        ),
        (
            CircuitBreaker::builder("b")
                .sliding_window(SlidingWindow::TimeBased(0))
                .build(),
            "sliding_window",
        ),
        (
            CircuitBreaker::builder("b").minimum_calls(0).build(),
            "minimum_calls",
        ),
        (
            CircuitBreaker::builder("b").consecutive_failures(0).build(),
            "consecutive_failures",
        ),
    ];
    for (result, field) in cases {
        match result {
            Err(Error::InvalidConfig(err)) => assert_eq!(err.field(), field),
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
}

#[test]
fn concurrent_calls_keep_counts() {
    let breaker = CircuitBreaker::builder("threads")
        .sliding_window(SlidingWindow::CountBased(1000))
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let breaker = breaker.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    breaker.call_sync(succeed).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let metrics = breaker.metrics();
    assert_eq!(metrics.calls, 1000);
    assert_eq!(metrics.failures, 0);
    assert_eq!(metrics.state, State::Closed);
}
