//! Clock readings and reservations near the end of the `u64` nanosecond
//! range neither panic nor admit more than the burst.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pulse_core::clock::ManualClock;
use pulse_ratelimit::policy::{
    FixedWindowPolicy, GcraPolicy, LeakyQueuePolicy, Policy, SlidingLogPolicy, SlidingWindowPolicy,
};
use pulse_ratelimit::{Gcra, Limiter, Quota};

fn admitted_after_jump<P: Policy>(quota: Quota) -> usize {
    let clock = ManualClock::new();
    let limiter: Limiter<P, ManualClock> = Limiter::with_clock(quota, clock.clone());
    assert!(limiter.check().allowed);

    clock.advance_monotonic(Duration::MAX);
    (0..20).filter(|_| limiter.check().allowed).count()
}

#[test]
fn longest_jump_admits_at_most_burst() {
    let quotas = [
        Quota::per_second(10).unwrap().with_burst(5).unwrap(),
        Quota::new(1, Duration::from_nanos(1)).unwrap(),
    ];
    for quota in quotas {
        let burst = quota.burst() as usize;
        assert!(admitted_after_jump::<GcraPolicy>(quota) <= burst);
        assert!(admitted_after_jump::<LeakyQueuePolicy>(quota) <= burst);
        assert!(admitted_after_jump::<FixedWindowPolicy>(quota) <= burst);
        assert!(admitted_after_jump::<SlidingWindowPolicy>(quota) <= burst);
        assert!(admitted_after_jump::<SlidingLogPolicy>(quota) <= burst);
    }
}

/// One permit per 100 years: seven waiters reserve past the end of the
/// `u64` range, and a check must reject rather than overflow.
#[test]
fn reservations_past_range_reject_checks() {
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    let clock = ManualClock::new();
    let limiter = Gcra::with_clock(Quota::new(1, century).unwrap(), clock);
    assert!(limiter.check().allowed);

    let mut waiters: Vec<Pin<Box<dyn Future<Output = _> + '_>>> = Vec::new();
    for _ in 0..7 {
        let mut waiter: Pin<Box<dyn Future<Output = _>>> = Box::pin(limiter.until_ready());
        let poll = waiter
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        assert!(matches!(poll, Poll::Pending));
        waiters.push(waiter);
    }

    assert!(!limiter.check().allowed);
    drop(waiters);
}
