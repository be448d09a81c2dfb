//! The algorithms that keep one instant per state: GCRA, the token bucket,
//! the leaky bucket as a meter, and the leaky bucket as a queue.
//!
//! A token bucket with continuous refill, a leaky bucket used as a meter and
//! GCRA make the same decisions: each is the others seen from a different
//! side. GCRA stores the *theoretical arrival time* (TAT), the instant at
//! which the bucket would be full again. The token count is
//! `(now + burst × interval − TAT) ÷ interval`, and the leaky bucket's water
//! level is `TAT − now`. Storing that single instant instead of a count and a
//! timestamp lets one `AtomicU64` compare-and-swap make the decision, with no
//! lock, and keeps partial refills: nothing is rounded away between calls.

use std::sync::atomic::{AtomicU64, Ordering};

use pulse_core::ratelimit::Decision;

use super::{Policy, cap_now, ceil_ms, never};
use crate::quota::Quota;

/// Decides `cost` permits against a TAT, with GCRA.
#[inline]
fn check_tat(quota: &Quota, tat: &AtomicU64, now: u64, cost: u32) -> Decision {
    let burst = quota.burst();
    if cost > burst {
        return never(quota);
    }
    let now = cap_now(now);
    let interval = quota.interval_nanos();
    let increment = interval * u64::from(cost);
    let horizon = now + quota.burst_nanos();

    // Relaxed is enough: the decision depends on this one location only,
    // and compare-and-swap sees its latest value.
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        // Waiters may have reserved far ahead: an instant beyond `u64::MAX`
        // is as full as a bucket gets.
        let next = current.max(now).saturating_add(increment);
        if next > horizon {
            return Decision::rejected(
                u64::from(burst),
                ceil_ms(next - horizon),
                ceil_ms(current.saturating_sub(now)),
            );
        }
        let remaining = quota.div_interval(horizon - next);
        if cost == 0 {
            return Decision::allowed(
                u64::from(burst),
                remaining,
                ceil_ms(current.saturating_sub(now)),
            );
        }
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Decision::allowed(u64::from(burst), remaining, ceil_ms(next - now)),
            Err(actual) => current = actual,
        }
    }
}

/// Takes `cost` permits whatever the balance, queueing behind earlier
/// reservations, and returns when they may be used.
fn reserve_tat(quota: &Quota, tat: &AtomicU64, now: u64, cost: u32) -> u64 {
    let now = cap_now(now);
    let increment = quota.interval_nanos() * u64::from(cost);
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        let next = current.max(now).saturating_add(increment);
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next.saturating_sub(quota.burst_nanos()).max(now),
            Err(actual) => current = actual,
        }
    }
}

/// Gives back a reservation whose `cost` moved the instant to `reserved_to`,
/// if nothing has moved it since.
///
/// Only the latest reservation can be taken back exactly. Once a check or
/// another reservation has counted from it, time may have used up the
/// permits in between, and taking the cost off the instant would admit it
/// twice; those permits are left taken, which can only reject too much.
fn unreserve_tat(quota: &Quota, tat: &AtomicU64, reserved_to: u64, cost: u32) {
    let increment = quota.interval_nanos() * u64::from(cost);
    let _ = tat.compare_exchange(
        reserved_to,
        reserved_to.saturating_sub(increment),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
}

macro_rules! tat_policy {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name {
            quota: Quota,
        }

        impl Policy for $name {
            type State = AtomicU64;

            const NAME: &'static str = $label;

            fn from_quota(quota: Quota) -> Self {
                $name { quota }
            }

            fn quota(&self) -> &Quota {
                &self.quota
            }

            fn new_state(&self) -> AtomicU64 {
                AtomicU64::new(0)
            }

            #[inline]
            fn check(&self, state: &AtomicU64, now: u64, cost: u32) -> Decision {
                check_tat(&self.quota, state, now, cost)
            }

            fn idle_after(&self, state: &AtomicU64, now: u64) -> u64 {
                state.load(Ordering::Relaxed).saturating_sub(cap_now(now))
            }

            fn reserve(&self, state: &AtomicU64, now: u64, cost: u32) -> Option<u64> {
                Some(reserve_tat(&self.quota, state, now, cost))
            }

            fn unreserve(&self, state: &AtomicU64, ready_at: u64, cost: u32) {
                // A reservation that had to wait set the instant to its
                // ready time plus the burst.
                let reserved_to = ready_at.saturating_add(self.quota.burst_nanos());
                unreserve_tat(&self.quota, state, reserved_to, cost)
            }
        }
    };
}

tat_policy!(
    /// GCRA, the generic cell rate algorithm: one permit every
    /// `period ÷ rate`, bursts of up to `burst`, decided by one atomic
    /// compare-and-swap on the theoretical arrival time.
    ///
    /// Bound: at most `burst + rate × elapsed ÷ period` permits in any span
    /// of `elapsed`, and a caller that takes at most one permit per emission
    /// interval is never rejected.
    GcraPolicy,
    "gcra"
);

tat_policy!(
    /// A token bucket of `burst` tokens refilled continuously at `rate` per
    /// `period`; a partial refill is kept, never rounded away.
    ///
    /// It makes the same decisions as [`GcraPolicy`] and is stored the same
    /// way (the instant the bucket is full again), so it costs one atomic
    /// compare-and-swap.
    TokenBucketPolicy,
    "token_bucket"
);

tat_policy!(
    /// A leaky bucket used as a meter: each request pours `cost` units into a
    /// bucket of `burst` units that drains at `rate` per `period`, and a
    /// request that would overflow it is rejected.
    ///
    /// It makes the same decisions as [`GcraPolicy`] (the stored instant is
    /// when the bucket will be empty).
    LeakyBucketPolicy,
    "leaky_bucket"
);

/// A leaky bucket used as a queue: requests leave one emission interval
/// apart, so the output never bursts.
///
/// [`check`](Policy::check) admits a request only when it may leave now (its
/// `retry_after` says when the next one may). Waiting callers use
/// `until_ready`, which reserves a slot in the queue and sleeps until it;
/// the queue has no length limit, so put a timeout around a wait that must
/// not grow without bound. `burst` is the largest cost of one request.
#[derive(Clone, Copy, Debug)]
pub struct LeakyQueuePolicy {
    quota: Quota,
}

impl Policy for LeakyQueuePolicy {
    /// The instant at which the next request may leave the queue.
    type State = AtomicU64;

    const NAME: &'static str = "leaky_queue";

    fn from_quota(quota: Quota) -> Self {
        LeakyQueuePolicy { quota }
    }

    fn quota(&self) -> &Quota {
        &self.quota
    }

    fn new_state(&self) -> AtomicU64 {
        AtomicU64::new(0)
    }

    fn check(&self, state: &AtomicU64, now: u64, cost: u32) -> Decision {
        let burst = self.quota.burst();
        if cost > burst {
            return never(&self.quota);
        }
        let now = cap_now(now);
        let increment = self.quota.interval_nanos() * u64::from(cost);
        let mut current = state.load(Ordering::Relaxed);
        loop {
            if current > now {
                return Decision::rejected(
                    u64::from(burst),
                    ceil_ms(current - now),
                    ceil_ms(current - now),
                );
            }
            if cost == 0 {
                return Decision::allowed(u64::from(burst), 1, Default::default());
            }
            let next = now + increment;
            match state.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Decision::allowed(u64::from(burst), 0, ceil_ms(increment)),
                Err(actual) => current = actual,
            }
        }
    }

    fn idle_after(&self, state: &AtomicU64, now: u64) -> u64 {
        state.load(Ordering::Relaxed).saturating_sub(cap_now(now))
    }

    fn reserve(&self, state: &AtomicU64, now: u64, cost: u32) -> Option<u64> {
        let now = cap_now(now);
        let increment = self.quota.interval_nanos() * u64::from(cost);
        let mut current = state.load(Ordering::Relaxed);
        loop {
            let start = current.max(now);
            let next = start.saturating_add(increment);
            match state.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(start),
                Err(actual) => current = actual,
            }
        }
    }

    fn unreserve(&self, state: &AtomicU64, ready_at: u64, cost: u32) {
        // The reservation set the instant to its start plus its cost.
        let increment = self.quota.interval_nanos() * u64::from(cost);
        unreserve_tat(&self.quota, state, ready_at.saturating_add(increment), cost)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: u64 = 1_000_000;

    fn policy(rate: i64, burst: i64) -> GcraPolicy {
        GcraPolicy::from_quota(Quota::per_second(rate).unwrap().with_burst(burst).unwrap())
    }

    #[test]
    fn gcra_admits_burst_then_spaces() {
        let gcra = policy(10, 3);
        let state = gcra.new_state();
        for expected_remaining in [2, 1, 0] {
            let decision = gcra.check(&state, 0, 1);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let rejected = gcra.check(&state, 0, 1);
        assert!(!rejected.allowed);
        assert_eq!(rejected.retry_after, Duration::from_millis(100));
        assert_eq!(rejected.reset_after, Duration::from_millis(300));

        assert!(!gcra.check(&state, 99 * MS, 1).allowed);
        assert!(gcra.check(&state, 100 * MS, 1).allowed);
    }

    #[test]
    fn cost_above_burst_is_never_admitted() {
        let gcra = policy(10, 3);
        let state = gcra.new_state();
        let decision = gcra.check(&state, 0, 4);
        assert!(!decision.allowed);
        assert_eq!(decision.retry_after, Duration::MAX);
        assert!(gcra.check(&state, 0, 3).allowed);
    }

    #[test]
    fn reserve_then_unreserve_restores_state() {
        let gcra = policy(10, 1);
        let state = gcra.new_state();
        assert!(gcra.check(&state, 0, 1).allowed);
        let before = state.load(Ordering::SeqCst);
        let ready_at = gcra.reserve(&state, 0, 2).unwrap();
        assert_eq!(ready_at, 200 * MS);
        gcra.unreserve(&state, ready_at, 2);
        assert_eq!(state.load(Ordering::SeqCst), before);
    }

    #[test]
    fn queue_spaces_requests() {
        let queue = LeakyQueuePolicy::from_quota(Quota::per_second(10).unwrap());
        let state = queue.new_state();
        assert!(queue.check(&state, 0, 1).allowed);
        let rejected = queue.check(&state, 50 * MS, 1);
        assert_eq!(rejected.retry_after, Duration::from_millis(50));
        assert_eq!(queue.reserve(&state, 50 * MS, 1), Some(100 * MS));
        assert_eq!(queue.reserve(&state, 50 * MS, 1), Some(200 * MS));
    }
}
