//! The window algorithms: a fixed window and the sliding-window counter.
//!
//! Windows are aligned to the origin of the limiter's monotonic clock, are
//! `burst × period ÷ rate` long and admit up to `burst` permits each.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use pulse_core::ratelimit::Decision;

use super::{Policy, cap_now, ceil_ms, never};
use crate::quota::Quota;

/// A fixed window: up to `burst` permits per aligned window.
///
/// Bound: at most `burst` per aligned window, which allows up to
/// `2 × burst` within one window length that straddles a boundary. Use
/// [`SlidingWindowPolicy`] or [`GcraPolicy`](super::GcraPolicy) where that
/// burst at the boundary matters.
///
/// The state packs the window number (its low 32 bits) and the count into
/// one `AtomicU64`, so a decision is one compare-and-swap.
#[derive(Clone, Copy, Debug)]
pub struct FixedWindowPolicy {
    quota: Quota,
    window: u64,
}

const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

impl FixedWindowPolicy {
    /// Splits a packed state into (window tag, count) and returns the count
    /// that applies to window `index` (zero when the state is of an older
    /// window).
    #[inline]
    fn count_in(state: u64, index: u64) -> u64 {
        // NOTE: the tag is the window number plus one, modulo 2^32. A key
        // untouched for exactly a multiple of 2^32 windows would see its old
        // count again; that can only reject too much, never admit too much.
        if state >> COUNT_BITS == Self::tag(index) {
            state & COUNT_MASK
        } else {
            0
        }
    }

    #[inline]
    fn tag(index: u64) -> u64 {
        (index.wrapping_add(1)) & COUNT_MASK
    }
}

impl Policy for FixedWindowPolicy {
    type State = AtomicU64;

    const NAME: &'static str = "fixed_window";

    fn from_quota(quota: Quota) -> Self {
        FixedWindowPolicy {
            quota,
            window: quota.window_nanos(),
        }
    }

    fn quota(&self) -> &Quota {
        &self.quota
    }

    fn new_state(&self) -> AtomicU64 {
        AtomicU64::new(0)
    }

    fn check(&self, state: &AtomicU64, now: u64, cost: u32) -> Decision {
        let limit = u64::from(self.quota.burst());
        if u64::from(cost) > limit {
            return never(&self.quota);
        }
        let now = cap_now(now);
        let index = now / self.window;
        let window_end = (index + 1).saturating_mul(self.window);
        let until_end = ceil_ms(window_end - now);

        let mut current = state.load(Ordering::Relaxed);
        loop {
            let count = Self::count_in(current, index);
            let reset_after = if count == 0 {
                Default::default()
            } else {
                until_end
            };
            if count + u64::from(cost) > limit {
                return Decision::rejected(limit, until_end, reset_after);
            }
            let remaining = limit - count - u64::from(cost);
            if cost == 0 {
                return Decision::allowed(limit, remaining, reset_after);
            }
            let next = (Self::tag(index) << COUNT_BITS) | (count + u64::from(cost));
            match state.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Decision::allowed(limit, remaining, until_end),
                Err(actual) => current = actual,
            }
        }
    }

    fn idle_after(&self, state: &AtomicU64, now: u64) -> u64 {
        let now = cap_now(now);
        let index = now / self.window;
        if Self::count_in(state.load(Ordering::Relaxed), index) == 0 {
            0
        } else {
            (index + 1).saturating_mul(self.window) - now
        }
    }
}

/// The sliding-window counter: the count of the current aligned window plus
/// the previous window's count weighted by how much of it still overlaps the
/// sliding window.
///
/// It assumes the previous window's requests were spread evenly, so it is an
/// estimate with this error bound (tested): at most `burst` permits per
/// aligned window, and at most `burst + previous × elapsed ÷ window`, which
/// is below `2 × burst`, within any span of one window length. The weighted
/// count is rounded up, so the estimate errs towards rejecting. It can
/// reject a caller who stays just under the rate; use
/// [`SlidingLogPolicy`](super::SlidingLogPolicy) for an exact window.
#[derive(Clone, Copy, Debug)]
pub struct SlidingWindowPolicy {
    quota: Quota,
    window: u64,
}

/// The counts of a sliding-window counter.
#[derive(Debug, Default)]
pub struct SlidingCounts {
    index: u64,
    previous: u64,
    current: u64,
}

impl SlidingCounts {
    /// Moves the counts forward to window `index`.
    fn roll(&mut self, index: u64) {
        if index == self.index {
            return;
        }
        self.previous = if index == self.index + 1 {
            self.current
        } else {
            0
        };
        self.current = 0;
        self.index = index;
    }
}

impl SlidingWindowPolicy {
    /// The weighted count of the previous window `elapsed` nanoseconds into
    /// the current one, rounded up.
    #[inline]
    fn weighted(&self, previous: u64, elapsed: u64) -> u64 {
        let overlap = u128::from(self.window - elapsed);
        (u128::from(previous) * overlap).div_ceil(u128::from(self.window)) as u64
    }

    /// Nanoseconds after `now` at which `cost` more permits fit.
    fn wait_for(&self, counts: &SlidingCounts, elapsed: u64, cost: u64) -> u64 {
        let limit = u64::from(self.quota.burst());
        let window = u128::from(self.window);
        if counts.current + cost <= limit {
            // Within this window, once enough of the previous one has slid
            // out: previous × (window − e) ≤ (limit − cost − current) × window.
            let room = u128::from(limit - cost - counts.current);
            let keep = room * window / u128::from(counts.previous.max(1));
            if keep > 0 {
                let at = (window - keep.min(window)) as u64;
                return at.saturating_sub(elapsed).max(1);
            }
        }

        // In the next window the current count becomes the previous one.
        let room = u128::from(limit - cost);
        let keep = room * window / u128::from(counts.current.max(1));
        let at = self.window + (window - keep.min(window)) as u64;
        at - elapsed
    }
}

impl Policy for SlidingWindowPolicy {
    type State = Mutex<SlidingCounts>;

    const NAME: &'static str = "sliding_window";

    fn from_quota(quota: Quota) -> Self {
        SlidingWindowPolicy {
            quota,
            window: quota.window_nanos(),
        }
    }

    fn quota(&self) -> &Quota {
        &self.quota
    }

    fn new_state(&self) -> Mutex<SlidingCounts> {
        Mutex::new(SlidingCounts::default())
    }

    fn check(&self, state: &Mutex<SlidingCounts>, now: u64, cost: u32) -> Decision {
        let limit = u64::from(self.quota.burst());
        let cost = u64::from(cost);
        if cost > limit {
            return never(&self.quota);
        }
        let now = cap_now(now);
        let index = now / self.window;
        let elapsed = now - index * self.window;

        let mut counts = state.lock();
        counts.roll(index);
        let used = counts.current + self.weighted(counts.previous, elapsed);
        let reset_after = ceil_ms(self.idle_after_counts(&counts, elapsed));
        if used + cost > limit {
            let wait = self.wait_for(&counts, elapsed, cost);
            return Decision::rejected(limit, ceil_ms(wait), reset_after);
        }
        counts.current += cost;
        let reset_after = ceil_ms(self.idle_after_counts(&counts, elapsed));
        Decision::allowed(limit, limit - used - cost, reset_after)
    }

    fn idle_after(&self, state: &Mutex<SlidingCounts>, now: u64) -> u64 {
        let now = cap_now(now);
        let index = now / self.window;
        let mut counts = state.lock();
        counts.roll(index);
        self.idle_after_counts(&counts, now - index * self.window)
    }
}

impl SlidingWindowPolicy {
    fn idle_after_counts(&self, counts: &SlidingCounts, elapsed: u64) -> u64 {
        if counts.current > 0 {
            2 * self.window - elapsed
        } else if counts.previous > 0 {
            self.window - elapsed
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn fixed_window_resets_at_boundary() {
        let policy = FixedWindowPolicy::from_quota(Quota::per_second(2).unwrap());
        let state = policy.new_state();
        assert!(policy.check(&state, 100 * MS, 1).allowed);
        assert!(policy.check(&state, 200 * MS, 1).allowed);
        let rejected = policy.check(&state, 300 * MS, 1);
        assert!(!rejected.allowed);
        assert_eq!(rejected.retry_after, Duration::from_millis(700));
        assert!(policy.check(&state, 1000 * MS, 2).allowed);
        assert_eq!(policy.idle_after(&state, 1500 * MS), 500 * MS);
        assert_eq!(policy.idle_after(&state, 2000 * MS), 0);
    }

    #[test]
    fn sliding_window_weights_previous() {
        let policy = SlidingWindowPolicy::from_quota(Quota::per_second(10).unwrap());
        let state = policy.new_state();
        assert!(policy.check(&state, 900 * MS, 10).allowed);

        // At 1.5 s, half of the previous window overlaps: 5 of 10 count.
        let decision = policy.check(&state, 1500 * MS, 5);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 0);
        let rejected = policy.check(&state, 1500 * MS, 1);
        assert!(!rejected.allowed);

        // One more fits once 0.1 s more of the previous window slid out.
        assert_eq!(rejected.retry_after, Duration::from_millis(100));
        assert!(!policy.check(&state, 1599 * MS, 1).allowed);
        assert!(policy.check(&state, 1600 * MS, 1).allowed);
    }
}
