//! A cancelled `until_ready` gives back its reservation only when that
//! cannot admit the same permits twice. It keeps them once its ready time
//! has come, and when earlier reservations were given back ahead of it.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pulse_core::clock::ManualClock;
use pulse_ratelimit::{Gcra, KeyedGcra, LeakyQueue, Quota};

fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn one_per_second() -> Quota {
    Quota::per_second(1).unwrap()
}

/// Burst 1, one permit per second. A waiter reserves the permit due at 1 s
/// and is dropped unpolled at 10 s, after a check has taken the permit of
/// 10 s. Giving the reservation back then would admit a second permit at
/// 10 s.
#[test]
fn late_drop_keeps_permit() {
    let clock = ManualClock::new();
    let limiter = Gcra::with_clock(one_per_second(), clock.clone());
    assert!(limiter.check().allowed);

    {
        let mut waiter = pin!(limiter.until_ready());
        assert!(poll_once(waiter.as_mut()).is_pending());
        clock.advance(Duration::from_secs(10));
        assert!(limiter.check().allowed);
    }

    assert!(
        !limiter.check().allowed,
        "a second permit within one emission interval"
    );
}

#[test]
fn keyed_late_drop_keeps_permit() {
    let clock = ManualClock::new();
    let limiter = KeyedGcra::<String>::builder(one_per_second())
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(limiter.check("tenant").allowed);

    {
        let mut waiter = pin!(limiter.until_ready("tenant"));
        assert!(poll_once(waiter.as_mut()).is_pending());
        clock.advance(Duration::from_secs(10));
        assert!(limiter.check("tenant").allowed);
    }

    assert!(
        !limiter.check("tenant").allowed,
        "a second permit within one emission interval"
    );
}

/// Three waiters reserve the permits due at 1 s, 2 s and 3 s. The first two
/// are dropped at 0.5 s, a check takes the permit of 2 s, and the third is
/// dropped at 2.5 s. Its permit has slid behind the one the check took, so
/// giving it back would admit a second permit within one second.
#[test]
fn drop_behind_given_back_waiters() {
    let clock = ManualClock::new();
    let limiter = Gcra::with_clock(one_per_second(), clock.clone());
    assert!(limiter.check().allowed);

    let mut first = Box::pin(limiter.until_ready());
    let mut second = Box::pin(limiter.until_ready());
    let mut third = Box::pin(limiter.until_ready());
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    assert!(poll_once(third.as_mut()).is_pending());

    clock.advance(Duration::from_millis(500));
    drop(first);
    drop(second);

    clock.advance(Duration::from_millis(1500));
    let mut admitted_at_2s = u32::from(limiter.check().allowed);

    clock.advance(Duration::from_millis(500));
    drop(third);
    admitted_at_2s += u32::from(limiter.check().allowed);
    assert!(
        admitted_at_2s <= 1,
        "two permits within one emission interval"
    );
}

#[test]
fn queue_late_drop_keeps_slot() {
    let clock = ManualClock::new();
    let limiter = LeakyQueue::with_clock(one_per_second(), clock.clone());
    assert!(limiter.check().allowed);

    {
        let mut waiter = pin!(limiter.until_ready());
        assert!(poll_once(waiter.as_mut()).is_pending());
        clock.advance(Duration::from_secs(10));
        assert!(limiter.check().allowed);
    }

    assert!(
        !limiter.check().allowed,
        "two requests leave the queue at the same instant"
    );
}

/// The last waiter in line, dropped before its time, still gives its permit
/// back exactly.
#[test]
fn last_waiter_early_drop_gives_back() {
    let clock = ManualClock::new();
    let limiter = Gcra::with_clock(one_per_second(), clock.clone());
    assert!(limiter.check().allowed);

    {
        let mut waiter = pin!(limiter.until_ready());
        assert!(poll_once(waiter.as_mut()).is_pending());
    }

    clock.advance(Duration::from_secs(1));
    assert!(limiter.check().allowed);
    assert!(!limiter.check().allowed);
}
