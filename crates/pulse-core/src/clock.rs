//! Time sources: a monotonic reading for durations, a wall reading for
//! timestamps, and a sleep that a test clock can wake.
//!
//! # Which clock do I want?
//!
//! | clock | monotonic read | wall read | use it for |
//! | --- | --- | --- | --- |
//! | [`SystemClock`] | `std::time::Instant` (about 17–25 ns) | `SystemTime::now` | the default everywhere |
//! | [`FastClock`] | CPU time-stamp counter through `quanta` (a few ns; 35–40 ns where `quanta` falls back to the OS clock) | derived from the monotonic reading | exact readings on a hot path |
//! | [`CoarseClock`] | one atomic load of a value a thread refreshes every 1 ms (about 1 ns); lags by up to one interval | derived from the monotonic reading | hot paths at millisecond granularity: rate-limit checks, ID generation |
//! | [`ManualClock`] | set by the test | set by the test, can step back | tests of expiry, backoff, clock faults |
//!
//! Every primitive reads durations (rates, leases, timeouts, timers) from
//! [`Clock::now`], never from the wall clock, so that an NTP step cannot
//! stretch or shrink them. The wall reading is for what people read: IDs,
//! timestamps and cron slots.
//!
//! Waiting goes through [`Clock::sleep_until`], because `tokio::time::pause`
//! cannot move a custom clock: a [`ManualClock`] wakes its sleepers when a test
//! advances it.

mod coarse;
mod fast;
mod manual;
mod system;
mod time;

pub use coarse::CoarseClock;
pub use fast::FastClock;
pub use manual::ManualClock;
pub use system::SystemClock;
pub use time::{MonoTime, WallTime};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of monotonic and wall-clock time.
///
/// The trait is object-safe, so a primitive can hold an `Arc<dyn Clock>`, and
/// also cheap to use generically.
///
/// # Contract for implementors
///
/// - [`now`](Clock::now) never decreases between two calls, from any thread.
/// - [`wall`](Clock::wall) may jump in both directions: callers that need
///   uniqueness (ID generators) detect and handle a step back themselves.
/// - The future from [`sleep_until`](Clock::sleep_until) completes no earlier
///   than the moment `now()` reaches the deadline, and is cancel-safe: dropping
///   it releases everything it registered. It may need a tokio runtime
///   ([`SystemClock`] and [`FastClock`] use the tokio timer).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(clock.now().saturating_duration_since(start), Duration::from_millis(1500));
/// ```
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Reads the monotonic clock.
    fn now(&self) -> MonoTime;

    /// Reads the wall clock (time since the Unix epoch).
    fn wall(&self) -> WallTime;

    /// Returns a future that completes once [`now`](Clock::now) has reached
    /// `deadline`. A deadline in the past completes at once.
    fn sleep_until(&self, deadline: MonoTime) -> Sleep;

    /// Returns a future that completes after `duration` of monotonic time.
    fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(self.now().saturating_add(duration))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn now(&self) -> MonoTime {
        (**self).now()
    }

    #[inline]
    fn wall(&self) -> WallTime {
        (**self).wall()
    }

    fn sleep_until(&self, deadline: MonoTime) -> Sleep {
        (**self).sleep_until(deadline)
    }
}

impl<C: Clock + ?Sized> Clock for &'static C {
    #[inline]
    fn now(&self) -> MonoTime {
        (**self).now()
    }

    #[inline]
    fn wall(&self) -> WallTime {
        (**self).wall()
    }

    fn sleep_until(&self, deadline: MonoTime) -> Sleep {
        (**self).sleep_until(deadline)
    }
}
