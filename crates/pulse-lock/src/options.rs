//! Settings shared by every lease backend.

use std::sync::Arc;
use std::time::Duration;

use pulse_core::clock::{Clock, SystemClock};

use crate::error::LockError;

/// Settings of a lease backend: the clock, the drift margin, the watchdog
/// and the retry pacing of waiting acquirers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_lock::LeaseOptions;
///
/// let options = LeaseOptions::new()
///     .drift_margin(Duration::from_millis(20))
///     .watchdog(true);
/// assert_eq!(options.drift_for(Duration::from_secs(10)), Duration::from_millis(20));
/// ```
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) drift_margin: Option<Duration>,
    pub(crate) watchdog: bool,
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) namespace: String,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            clock: Arc::new(SystemClock::new()),
            drift_margin: None,
            watchdog: false,
            retry_min: Duration::from_millis(5),
            retry_max: Duration::from_millis(100),
            namespace: String::new(),
        }
    }
}

impl LeaseOptions {
    /// Creates the default settings: the system clock, a drift margin of
    /// 1% of the TTL plus 2 ms, no watchdog, and retries every 5 to 100 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the clock that times deadlines, the lost signal, the watchdog
    /// and retries. Tests pass a [`ManualClock`](pulse_core::clock::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets a fixed drift margin: how much earlier than the server-side
    /// expiry the local deadline passes. It covers clock-rate differences
    /// between the client and the server.
    pub fn drift_margin(mut self, margin: Duration) -> Self {
        self.drift_margin = Some(margin);
        self
    }

    /// Turns on the watchdog, which renews each lease at a third of its TTL
    /// until the lease is released or dropped.
    pub fn watchdog(mut self, enabled: bool) -> Self {
        self.watchdog = enabled;
        self
    }

    /// Sets a namespace that keeps this service's locks apart from other
    /// services on the same server: it becomes part of every Redis key and
    /// of the hash of every PostgreSQL advisory lock key.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the pause between two attempts of a waiting acquire when no
    /// release notification arrives: a random pause between `min` and
    /// `max`, doubling `min` after each attempt up to `max`.
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min.max(Duration::from_millis(1));
        self.retry_max = max.max(self.retry_min);
        self
    }

    /// Returns the drift margin for a lease of `ttl`.
    pub fn drift_for(&self, ttl: Duration) -> Duration {
        self.drift_margin
            .unwrap_or_else(|| ttl / 100 + Duration::from_millis(2))
    }

    /// Checks a TTL and returns the drift margin that applies to it.
    pub(crate) fn check_ttl(&self, ttl: Duration) -> Result<Duration, LockError> {
        if ttl.is_zero() {
            return Err(LockError::ZeroTtl);
        }
        let drift = self.drift_for(ttl);
        if ttl <= drift {
            return Err(LockError::TtlBelowDrift { ttl, drift });
        }
        Ok(drift)
    }

    /// Returns the pause before retry number `attempt` (0-based), with jitter.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let floor = self
            .retry_min
            .saturating_mul(1 << attempt.min(16))
            .min(self.retry_max);
        let span = self.retry_max.saturating_sub(floor);
        let jitter = rand::random_range(0..=span.as_micros().min(u64::MAX as u128) as u64);
        floor / 2 + Duration::from_micros(jitter / 2)
    }
}

/// Creates a random owner value: 128 bits as 32 hex digits.
pub(crate) fn new_owner() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_ttl_is_rejected() {
        let err = LeaseOptions::new().check_ttl(Duration::ZERO).unwrap_err();
        assert!(matches!(err, LockError::ZeroTtl));
    }

    #[test]
    fn ttl_below_drift_is_rejected() {
        let options = LeaseOptions::new().drift_margin(Duration::from_millis(50));
        let err = options.check_ttl(Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, LockError::TtlBelowDrift { .. }));
        assert!(options.check_ttl(Duration::from_millis(51)).is_ok());
    }

    #[test]
    fn default_drift_scales_with_ttl() {
        let options = LeaseOptions::new();
        assert_eq!(
            options.drift_for(Duration::from_secs(10)),
            Duration::from_millis(102)
        );
        assert!(options.check_ttl(Duration::from_millis(2)).is_err());
    }

    #[test]
    fn backoff_stays_within_bounds() {
        let options =
            LeaseOptions::new().retry_backoff(Duration::from_millis(4), Duration::from_millis(40));
        for attempt in 0..40 {
            let pause = options.backoff(attempt);
            assert!(pause <= Duration::from_millis(40), "{pause:?}");
            assert!(pause >= Duration::from_millis(2), "{pause:?}");
        }
    }

    #[test]
    fn owners_are_unique() {
        assert_ne!(new_owner(), new_owner());
        assert_eq!(new_owner().len(), 32);
    }
}
