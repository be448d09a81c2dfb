//! The quota every limiter is built from: a rate per period and a burst.

use std::time::Duration;

use crate::error::RateLimitError;

/// The longest time a quota may span (burst × period ÷ rate): 100 years.
const MAX_SPAN_NANOS: u128 = 100 * 365 * 24 * 3600 * 1_000_000_000;

/// A validated rate limit: `rate` permits per `period`, with bursts of up to
/// `burst` permits.
///
/// Every algorithm in this crate takes a `Quota` and keeps the same long-run
/// rate and the same largest burst:
///
/// - GCRA, token bucket and leaky bucket refill one permit every
///   `period ÷ rate` (the *emission interval*) and hold at most `burst`.
/// - Window algorithms count up to `burst` permits per window of
///   `burst × period ÷ rate`, so `Quota::per_second(10)` is 10 per second and
///   `Quota::new(10, 1 s)?.with_burst(100)?` is 100 per 10 seconds.
///
/// Times are integer nanoseconds. Where `period ÷ rate` is not a whole number
/// of nanoseconds it is rounded up, so a limiter never admits more than its
/// rate.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_ratelimit::Quota;
///
/// let quota = Quota::new(100, Duration::from_secs(60))?.with_burst(10)?;
/// assert_eq!(quota.emission_interval(), Duration::from_millis(600));
/// assert_eq!(quota.burst(), 10);
///
/// // Zero, negative and oversized values are typed errors, never a panic.
/// assert!(Quota::new(0, Duration::from_secs(1)).is_err());
/// assert!(Quota::new(-5, Duration::from_secs(1)).is_err());
/// assert!(Quota::new(5, Duration::ZERO).is_err());
/// # Ok::<(), pulse_ratelimit::RateLimitError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: u32,
    period: Duration,
    burst: u32,
    interval_nanos: u64,
    /// `u64::MAX / interval_nanos`, to divide by the interval with a
    /// multiplication on the hot path.
    interval_reciprocal: u64,
}

impl Quota {
    /// Creates a quota of `rate` permits per `period`, with a burst equal to
    /// the rate.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidRate`] for a rate below 1 or above
    /// `u32::MAX`, [`RateLimitError::InvalidPeriod`] for a zero period.
    pub fn new(rate: i64, period: Duration) -> Result<Self, RateLimitError> {
        let rate = u32::try_from(rate)
            .ok()
            .filter(|&rate| rate > 0)
            .ok_or(RateLimitError::InvalidRate(rate))?;
        if period.is_zero() {
            return Err(RateLimitError::InvalidPeriod(period));
        }
        Self::build(rate, period, rate)
    }

    /// Creates a quota of `rate` permits per second, burst equal to the rate.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidRate`] for a rate below 1.
    pub fn per_second(rate: i64) -> Result<Self, RateLimitError> {
        Self::new(rate, Duration::from_secs(1))
    }

    /// Creates a quota of `rate` permits per minute, burst equal to the rate.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidRate`] for a rate below 1.
    pub fn per_minute(rate: i64) -> Result<Self, RateLimitError> {
        Self::new(rate, Duration::from_secs(60))
    }

    /// Returns the quota with a different burst.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidBurst`] for a burst below 1 or above
    /// `u32::MAX`, [`RateLimitError::QuotaTooLong`] when the burst spans more
    /// than 100 years.
    pub fn with_burst(self, burst: i64) -> Result<Self, RateLimitError> {
        let burst = u32::try_from(burst)
            .ok()
            .filter(|&burst| burst > 0)
            .ok_or(RateLimitError::InvalidBurst(burst))?;
        Self::build(self.rate, self.period, burst)
    }

    fn build(rate: u32, period: Duration, burst: u32) -> Result<Self, RateLimitError> {
        let too_long = RateLimitError::QuotaTooLong {
            rate,
            period,
            burst,
        };
        let interval = period.as_nanos().div_ceil(u128::from(rate));
        if interval.saturating_mul(u128::from(burst)) > MAX_SPAN_NANOS {
            return Err(too_long);
        }
        Ok(Quota {
            rate,
            period,
            burst,
            interval_nanos: interval as u64,
            interval_reciprocal: u64::MAX / interval as u64,
        })
    }

    /// Returns the number of permits per period.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Returns the period the rate is counted over.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Returns the largest number of permits that can be taken at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Returns the time it takes to refill one permit: `period ÷ rate`,
    /// rounded up to the nanosecond.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos)
    }

    /// Returns the window length of the window algorithms:
    /// `burst × period ÷ rate`, rounded up to the nanosecond.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window_nanos())
    }

    pub(crate) fn interval_nanos(&self) -> u64 {
        self.interval_nanos
    }

    /// Returns `nanos / interval`, exactly, with a multiplication instead of
    /// a division (which costs tens of cycles on some CPUs).
    #[inline]
    pub(crate) fn div_interval(&self, nanos: u64) -> u64 {
        // The reciprocal is at most one below 2^64 / interval, so the
        // estimate is the quotient or one less.
        let estimate = ((u128::from(nanos) * u128::from(self.interval_reciprocal)) >> 64) as u64;
        if nanos - estimate * self.interval_nanos >= self.interval_nanos {
            estimate + 1
        } else {
            estimate
        }
    }

    pub(crate) fn window_nanos(&self) -> u64 {
        // Bounded by MAX_SPAN_NANOS when the quota was built.
        (self.period.as_nanos() * u128::from(self.burst)).div_ceil(u128::from(self.rate)) as u64
    }

    /// Burst × emission interval: how far ahead of now a GCRA may schedule.
    pub(crate) fn burst_nanos(&self) -> u64 {
        self.interval_nanos * u64::from(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_values() {
        let second = Duration::from_secs(1);
        assert!(matches!(
            Quota::new(0, second),
            Err(RateLimitError::InvalidRate(0))
        ));
        assert!(matches!(
            Quota::new(-1, second),
            Err(RateLimitError::InvalidRate(-1))
        ));
        assert!(matches!(
            Quota::new(1 << 40, second),
            Err(RateLimitError::InvalidRate(_))
        ));
        assert!(matches!(
            Quota::new(1, Duration::ZERO),
            Err(RateLimitError::InvalidPeriod(_))
        ));
        let quota = Quota::per_second(1).unwrap();
        assert!(matches!(
            quota.with_burst(0),
            Err(RateLimitError::InvalidBurst(0))
        ));
        assert!(matches!(
            quota.with_burst(-3),
            Err(RateLimitError::InvalidBurst(-3))
        ));
        assert!(matches!(
            Quota::new(1, Duration::from_secs(3600 * 24 * 365))
                .unwrap()
                .with_burst(1000),
            Err(RateLimitError::QuotaTooLong { .. })
        ));
    }

    #[test]
    fn interval_rounds_up() {
        let quota = Quota::new(3, Duration::from_secs(1)).unwrap();
        assert_eq!(quota.emission_interval(), Duration::from_nanos(333_333_334));
        assert_eq!(quota.window(), Duration::from_secs(1));
    }

    #[test]
    fn div_interval_is_exact() {
        for (rate, period) in [
            (1, 1),
            (3, 1_000_000_000),
            (7, 2_000_000_000),
            (1_000_000_000, 1_000_000_000),
        ] {
            let quota = Quota::new(rate, Duration::from_nanos(period)).unwrap();
            let interval = quota.interval_nanos();
            for nanos in [
                0,
                1,
                interval - 1,
                interval,
                interval + 1,
                12_345_678_901,
                u64::MAX / 2,
                u64::MAX,
            ] {
                assert_eq!(
                    quota.div_interval(nanos),
                    nanos / interval,
                    "{nanos} / {interval}"
                );
            }
        }
    }

    #[test]
    fn error_names_value_and_fix() {
        let err = Quota::new(-5, Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid rate `-5`: use a rate of at least 1 permit per period (at most 4294967295)"
        );
    }
}
