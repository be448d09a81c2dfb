use std::fmt;
use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A reading of a monotonic clock, in nanoseconds since that clock's origin.
///
/// Readings of different clocks cannot be compared. A `u64` of nanoseconds
/// covers 584 years, so arithmetic saturates instead of overflowing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonoTime(u64);

impl MonoTime {
    /// The clock's origin.
    pub const ZERO: MonoTime = MonoTime(0);

    /// The largest reading, used as "never".
    pub const MAX: MonoTime = MonoTime(u64::MAX);

    /// Creates a reading from nanoseconds since the clock's origin.
    #[inline]
    pub const fn from_nanos(nanos: u64) -> Self {
        MonoTime(nanos)
    }

    /// Returns nanoseconds since the clock's origin.
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Adds a duration, saturating at [`MonoTime::MAX`].
    #[inline]
    pub fn saturating_add(self, duration: Duration) -> Self {
        MonoTime(self.0.saturating_add(duration_nanos(duration)))
    }

    /// Subtracts a duration, saturating at [`MonoTime::ZERO`].
    #[inline]
    pub fn saturating_sub(self, duration: Duration) -> Self {
        MonoTime(self.0.saturating_sub(duration_nanos(duration)))
    }

    /// Returns the time elapsed from `earlier` to `self`, or zero if `earlier`
    /// is later.
    #[inline]
    pub fn saturating_duration_since(self, earlier: MonoTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for MonoTime {
    type Output = MonoTime;

    #[inline]
    fn add(self, duration: Duration) -> MonoTime {
        self.saturating_add(duration)
    }
}

impl Sub<MonoTime> for MonoTime {
    type Output = Duration;

    #[inline]
    fn sub(self, earlier: MonoTime) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// A wall-clock reading: nanoseconds since the Unix epoch.
///
/// Unlike [`MonoTime`], a wall reading can move backwards when the system
/// clock is stepped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(u64);

impl WallTime {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: WallTime = WallTime(0);

    /// Creates a reading from nanoseconds since the Unix epoch.
    #[inline]
    pub const fn from_nanos(nanos: u64) -> Self {
        WallTime(nanos)
    }

    /// Creates a reading from milliseconds since the Unix epoch, saturating
    /// at the largest reading.
    #[inline]
    pub const fn from_millis(millis: u64) -> Self {
        WallTime(millis.saturating_mul(1_000_000))
    }

    /// Creates a reading from whole seconds since the Unix epoch, saturating
    /// at the largest reading.
    #[inline]
    pub const fn from_secs(secs: u64) -> Self {
        WallTime(secs.saturating_mul(1_000_000_000))
    }

    /// Converts a [`SystemTime`]; times before the epoch become the epoch.
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(since) => WallTime(duration_nanos(since)),
            Err(_) => WallTime(0),
        }
    }

    /// Returns nanoseconds since the Unix epoch.
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Returns whole milliseconds since the Unix epoch.
    #[inline]
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Returns whole microseconds since the Unix epoch.
    #[inline]
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// Returns whole seconds since the Unix epoch.
    #[inline]
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// Converts to a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    /// Adds a duration, saturating at the largest reading.
    #[inline]
    pub fn saturating_add(self, duration: Duration) -> Self {
        WallTime(self.0.saturating_add(duration_nanos(duration)))
    }

    /// Subtracts a duration, saturating at the epoch.
    #[inline]
    pub fn saturating_sub(self, duration: Duration) -> Self {
        WallTime(self.0.saturating_sub(duration_nanos(duration)))
    }

    /// Returns the time from `earlier` to `self`, or zero if `earlier` is
    /// later.
    #[inline]
    pub fn saturating_duration_since(self, earlier: WallTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s since the Unix epoch",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// Converts a duration to nanoseconds, saturating at `u64::MAX`.
#[inline]
pub(crate) fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_arithmetic_saturates() {
        assert_eq!(MonoTime::MAX + Duration::from_secs(1), MonoTime::MAX);
        assert_eq!(
            MonoTime::ZERO.saturating_sub(Duration::from_secs(1)),
            MonoTime::ZERO
        );
        assert_eq!(MonoTime::ZERO - MonoTime::from_nanos(5), Duration::ZERO);
        assert_eq!(MonoTime::from_nanos(0) + Duration::MAX, MonoTime::MAX);
    }

    #[test]
    fn wall_conversions_round_trip() {
        let wall = WallTime::from_millis(1_700_000_000_123);
        assert_eq!(wall.as_millis(), 1_700_000_000_123);
        assert_eq!(wall.as_secs(), 1_700_000_000);
        assert_eq!(WallTime::from_system_time(wall.to_system_time()), wall);
    }

    #[test]
    fn wall_before_epoch_clamps() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(WallTime::from_system_time(before), WallTime::UNIX_EPOCH);
    }
}
