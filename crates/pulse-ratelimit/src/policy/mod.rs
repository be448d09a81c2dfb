//! The algorithms: each is a [`Policy`], an immutable configuration that
//! decides against a per-limiter (or per-key) state.
//!
//! | policy | state | bytes of state | hot path |
//! | --- | --- | --- | --- |
//! | [`GcraPolicy`], [`TokenBucketPolicy`], [`LeakyBucketPolicy`], [`LeakyQueuePolicy`] | one instant | 8 | one `AtomicU64` compare-and-swap |
//! | [`FixedWindowPolicy`] | window number and count, packed | 8 | one `AtomicU64` compare-and-swap |
//! | [`SlidingWindowPolicy`] | window number and two counts | 32 | a short mutex section |
//! | [`SlidingLogPolicy`] | one timestamp and count per admitted request in the window | 48 + 16 per entry | a short mutex section |

mod log;
mod tat;
mod window;

pub use log::SlidingLogPolicy;
pub use tat::{GcraPolicy, LeakyBucketPolicy, LeakyQueuePolicy, TokenBucketPolicy};
pub use window::{FixedWindowPolicy, SlidingWindowPolicy};

use std::fmt;
use std::time::Duration;

use pulse_core::ratelimit::Decision;

use crate::quota::Quota;

/// A rate-limiting algorithm: how to decide a request against a state.
///
/// Times are nanoseconds of the limiter's monotonic clock. Implementations
/// must never admit more than their stated bound when called concurrently
/// on one state, and never panic.
pub trait Policy: Send + Sync + fmt::Debug + 'static {
    /// The per-limiter or per-key state.
    type State: Send + Sync + 'static;

    /// The algorithm's name, used in logs and metrics labels.
    const NAME: &'static str;

    /// Creates the policy for a quota.
    fn from_quota(quota: Quota) -> Self;

    /// Returns the quota this policy enforces.
    fn quota(&self) -> &Quota;

    /// Creates the state of a limiter (or key) that has taken nothing yet.
    fn new_state(&self) -> Self::State;

    /// Decides whether `cost` permits may be taken at `now`, and takes them
    /// if so.
    fn check(&self, state: &Self::State, now: u64, cost: u32) -> Decision;

    /// Returns the nanoseconds after `now` at which `state` will be equal to
    /// a fresh state, so that dropping it loses nothing. Zero means it can
    /// be dropped now.
    fn idle_after(&self, state: &Self::State, now: u64) -> u64;

    /// Reserves `cost` permits in first-come-first-served order and returns
    /// the instant at which they may be used, or `None` when this algorithm
    /// cannot reserve ahead (the window algorithms), in which case waiting
    /// callers poll with the decision's `retry_after`.
    fn reserve(&self, state: &Self::State, now: u64, cost: u32) -> Option<u64> {
        let _ = (state, now, cost);
        None
    }

    /// Gives back a reservation made by [`reserve`](Policy::reserve) that
    /// will not be used.
    fn unreserve(&self, state: &Self::State, ready_at: u64, cost: u32) {
        let _ = (state, ready_at, cost);
    }
}

/// The latest clock reading the policies use, about 384 years after the
/// clock's origin: two quota spans of 100 years below `u64::MAX`, so that
/// an instant plus a burst plus a cost never overflows. A clock read later
/// (only a manual clock gets there) stands still at this reading, which
/// stops refills instead of admitting everything.
pub(crate) const LATEST_NOW: u64 = u64::MAX - 2 * 100 * 365 * 24 * 3600 * 1_000_000_000;

/// Caps a clock reading at [`LATEST_NOW`].
#[inline]
pub(crate) fn cap_now(now: u64) -> u64 {
    now.min(LATEST_NOW)
}

/// Converts nanoseconds to a duration rounded up to the millisecond, the
/// precision every decision promises.
#[inline]
pub(crate) fn ceil_ms(nanos: u64) -> Duration {
    Duration::from_millis(nanos.div_ceil(1_000_000))
}

/// The decision for a cost larger than the burst: it can never be admitted.
#[inline]
pub(crate) fn never(quota: &Quota) -> Decision {
    Decision::rejected(u64::from(quota.burst()), Duration::MAX, Duration::ZERO)
}
