use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use super::time::duration_nanos;
use super::{Clock, MonoTime, Sleep, WallTime};

/// The operating system's clocks: `std::time::Instant` for monotonic time and
/// `SystemTime` for wall time.
///
/// All `SystemClock` values share one origin, so their [`MonoTime`] readings
/// can be compared with each other. Sleeping uses the tokio timer and needs a
/// tokio runtime with the time driver enabled.
///
/// # Examples
///
/// ```
/// use pulse_core::clock::{Clock, SystemClock};
///
/// let clock = SystemClock::new();
/// let first = clock.now();
/// assert!(clock.now() >= first);
/// assert!(clock.wall().as_secs() > 1_600_000_000);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock {
    _private: (),
}

impl SystemClock {
    /// Creates a handle to the system clock.
    pub const fn new() -> Self {
        SystemClock { _private: () }
    }
}

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> MonoTime {
        MonoTime::from_nanos(duration_nanos(origin().elapsed()))
    }

    #[inline]
    fn wall(&self) -> WallTime {
        WallTime::from_system_time(SystemTime::now())
    }

    fn sleep_until(&self, deadline: MonoTime) -> Sleep {
        let clock = *self;
        Box::pin(async move {
            // The tokio timer rounds to milliseconds; loop so that the future
            // never completes before the deadline of this clock.
            loop {
                let now = clock.now();
                if now >= deadline {
                    return;
                }
                tokio::time::sleep(deadline - now).await;
            }
        })
    }
}
