//! The schedule contract: when does a recurring job fire next.

use std::sync::Arc;

use crate::clock::WallTime;

/// A recurring schedule: a cron expression in a time zone, a fixed interval,
/// or anything else that can say when it fires next.
///
/// # Contract for implementors
///
/// - [`next_after`](Schedule::next_after) returns a time strictly after
///   `after`, or `None` when the schedule never fires again.
/// - It is a pure function of its argument: the scheduler may call it again
///   with the same instant after a wall-clock step and expects the same
///   answer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::clock::WallTime;
/// use pulse_core::sched::Schedule;
///
/// /// Fires on every whole minute.
/// struct EveryMinute;
///
/// impl Schedule for EveryMinute {
///     fn next_after(&self, after: WallTime) -> Option<WallTime> {
///         Some(WallTime::from_secs((after.as_secs() / 60 + 1) * 60))
///     }
/// }
///
/// let next = EveryMinute.next_after(WallTime::from_secs(90)).unwrap();
/// assert_eq!(next, WallTime::from_secs(120));
/// ```
pub trait Schedule: Send + Sync {
    /// Returns the first fire time strictly after `after`.
    fn next_after(&self, after: WallTime) -> Option<WallTime>;
}

impl<S: Schedule + ?Sized> Schedule for Arc<S> {
    fn next_after(&self, after: WallTime) -> Option<WallTime> {
        (**self).next_after(after)
    }
}

impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn next_after(&self, after: WallTime) -> Option<WallTime> {
        (**self).next_after(after)
    }
}
