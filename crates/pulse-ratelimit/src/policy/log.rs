//! The sliding-window log: an exact window, at the cost of one entry per
//! admitted request.

use std::collections::VecDeque;

use parking_lot::Mutex;
use pulse_core::ratelimit::Decision;

use super::{Policy, cap_now, ceil_ms, never};
use crate::quota::Quota;

/// The sliding-window log: remembers when each admitted request was taken,
/// and admits a request when the permits taken in the last window plus its
/// cost are at most `burst`.
///
/// Bound: at most `burst` permits within any span of one window
/// (`burst × period ÷ rate`), so at most `burst + rate × elapsed ÷ period`
/// over any span of `elapsed`. A caller that takes one permit per
/// `window ÷ burst` is never rejected. Memory grows with the admitted
/// requests in a window: 16 bytes each, up to `burst` entries.
#[derive(Clone, Copy, Debug)]
pub struct SlidingLogPolicy {
    quota: Quota,
    window: u64,
}

/// The admitted requests of the last window, oldest first.
#[derive(Debug, Default)]
pub struct Log {
    entries: VecDeque<(u64, u32)>,
    total: u64,
}

impl Log {
    /// Drops the entries that fell out of the window ending at `now`.
    fn expire(&mut self, now: u64, window: u64) {
        while let Some(&(at, cost)) = self.entries.front() {
            if at.saturating_add(window) > now {
                break;
            }
            self.entries.pop_front();
            self.total -= u64::from(cost);
        }
        if self.entries.is_empty() && self.entries.capacity() > 64 {
            // Give back the memory of a past burst.
            self.entries.shrink_to(8);
        }
    }
}

/// The largest log kept allocated up front, so small quotas never allocate
/// on the hot path and large ones do not reserve memory they may not use.
const PREALLOCATED_ENTRIES: u32 = 64;

impl Policy for SlidingLogPolicy {
    type State = Mutex<Log>;

    const NAME: &'static str = "sliding_log";

    fn from_quota(quota: Quota) -> Self {
        SlidingLogPolicy {
            quota,
            window: quota.window_nanos(),
        }
    }

    fn quota(&self) -> &Quota {
        &self.quota
    }

    fn new_state(&self) -> Mutex<Log> {
        let capacity = self.quota.burst().min(PREALLOCATED_ENTRIES) as usize;
        Mutex::new(Log {
            entries: VecDeque::with_capacity(capacity),
            total: 0,
        })
    }

    fn check(&self, state: &Mutex<Log>, now: u64, cost: u32) -> Decision {
        let limit = u64::from(self.quota.burst());
        if u64::from(cost) > limit {
            return never(&self.quota);
        }
        let now = cap_now(now);
        let mut log = state.lock();
        log.expire(now, self.window);
        let newest_end = log
            .entries
            .back()
            .map_or(0, |&(at, _)| at + self.window - now);

        if log.total + u64::from(cost) > limit {
            // Wait until enough of the oldest entries have left the window.
            let mut freed = 0;
            let mut retry_at = now;
            for &(at, taken) in &log.entries {
                freed += u64::from(taken);
                retry_at = at + self.window;
                if log.total - freed + u64::from(cost) <= limit {
                    break;
                }
            }
            return Decision::rejected(limit, ceil_ms(retry_at - now), ceil_ms(newest_end));
        }
        if cost == 0 {
            return Decision::allowed(limit, limit - log.total, ceil_ms(newest_end));
        }
        log.entries.push_back((now, cost));
        log.total += u64::from(cost);
        Decision::allowed(limit, limit - log.total, ceil_ms(self.window))
    }

    fn idle_after(&self, state: &Mutex<Log>, now: u64) -> u64 {
        let now = cap_now(now);
        let mut log = state.lock();
        log.expire(now, self.window);
        log.entries
            .back()
            .map_or(0, |&(at, _)| at + self.window - now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn log_is_exact_over_the_window() {
        let policy = SlidingLogPolicy::from_quota(Quota::per_second(2).unwrap());
        let state = policy.new_state();
        assert!(policy.check(&state, 0, 1).allowed);
        assert!(policy.check(&state, 400 * MS, 1).allowed);
        let rejected = policy.check(&state, 900 * MS, 1);
        assert!(!rejected.allowed);
        assert_eq!(rejected.retry_after, Duration::from_millis(100));
        assert!(policy.check(&state, 1000 * MS, 1).allowed);
        assert!(!policy.check(&state, 1399 * MS, 1).allowed);
        assert!(policy.check(&state, 1400 * MS, 1).allowed);
        assert_eq!(policy.idle_after(&state, 1400 * MS), 1000 * MS);
    }
}
