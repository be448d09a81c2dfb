//! [`Limiter`]: one limit shared by every caller, with no key.

use std::fmt;

use crossbeam_utils::CachePadded;
use pulse_core::clock::{Clock, CoarseClock};
use pulse_core::ratelimit::{Decision, RateLimiter};

use crate::policy::{
    FixedWindowPolicy, GcraPolicy, LeakyBucketPolicy, LeakyQueuePolicy, Policy, SlidingLogPolicy,
    SlidingWindowPolicy, TokenBucketPolicy,
};
use crate::quota::Quota;

/// A GCRA limiter: one atomic compare-and-swap per decision.
pub type Gcra<C = CoarseClock> = Limiter<GcraPolicy, C>;
/// A token-bucket limiter with continuous refill.
pub type TokenBucket<C = CoarseClock> = Limiter<TokenBucketPolicy, C>;
/// A leaky bucket used as a meter.
pub type LeakyBucket<C = CoarseClock> = Limiter<LeakyBucketPolicy, C>;
/// A leaky bucket used as a queue that spaces requests out.
pub type LeakyQueue<C = CoarseClock> = Limiter<LeakyQueuePolicy, C>;
/// An exact sliding-window log.
pub type SlidingLog<C = CoarseClock> = Limiter<SlidingLogPolicy, C>;
/// A sliding-window counter.
pub type SlidingWindow<C = CoarseClock> = Limiter<SlidingWindowPolicy, C>;
/// A fixed-window counter.
pub type FixedWindow<C = CoarseClock> = Limiter<FixedWindowPolicy, C>;

/// A rate limiter without keys: every caller shares one limit.
///
/// The algorithm is the policy `P` (use the aliases [`Gcra`],
/// [`TokenBucket`], [`LeakyBucket`], [`LeakyQueue`], [`SlidingLog`],
/// [`SlidingWindow`] and [`FixedWindow`]); the clock `C` is
/// [`CoarseClock`] unless a test passes a
/// [`ManualClock`](pulse_core::clock::ManualClock).
///
/// [`check`](Limiter::check) and [`check_n`](Limiter::check_n) allocate
/// nothing. The state sits on its own cache line, so threads that contend on
/// it do not also evict the configuration they read.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::clock::ManualClock;
/// use pulse_ratelimit::{Gcra, Quota};
///
/// let clock = ManualClock::new();
/// let limiter = Gcra::with_clock(Quota::per_second(2)?, clock.clone());
///
/// assert!(limiter.check().allowed);
/// assert!(limiter.check().allowed);
/// let rejected = limiter.check();
/// assert!(!rejected.allowed);
/// assert_eq!(rejected.retry_after, Duration::from_millis(500));
///
/// clock.advance(Duration::from_millis(500));
/// assert!(limiter.check().allowed);
/// # Ok::<(), pulse_ratelimit::RateLimitError>(())
/// ```
pub struct Limiter<P: Policy, C: Clock = CoarseClock> {
    state: CachePadded<P::State>,
    policy: P,
    clock: C,
    pub(crate) waiters: tokio::sync::Mutex<()>,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::Counters>,
}

impl<P: Policy> Limiter<P, CoarseClock> {
    /// Creates a limiter for `quota` on a [`CoarseClock`].
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, CoarseClock::shared())
    }
}

impl<P: Policy, C: Clock> Limiter<P, C> {
    /// Creates a limiter for `quota` that reads time from `clock`.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        let policy = P::from_quota(quota);
        Limiter {
            state: CachePadded::new(policy.new_state()),
            policy,
            clock,
            waiters: tokio::sync::Mutex::new(()),
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }

    /// Counts allowed and rejected decisions in the `metrics` recorder as
    /// `pulse_ratelimit_allowed_total` and `pulse_ratelimit_rejected_total`,
    /// labelled `limiter = name` and `algorithm`.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_metrics(mut self, name: &'static str) -> Self {
        self.metrics = Some(crate::metrics::Counters::new(name, P::NAME));
        self
    }

    /// Takes one permit if it is available now.
    #[inline]
    pub fn check(&self) -> Decision {
        self.check_n(1)
    }

    /// Takes `cost` permits if they are all available now; otherwise takes
    /// nothing. A cost above the burst is rejected with `retry_after` equal
    /// to [`Duration::MAX`](std::time::Duration::MAX).
    #[inline]
    pub fn check_n(&self, cost: u32) -> Decision {
        let decision = self
            .policy
            .check(&self.state, self.clock.now().as_nanos(), cost);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.record(&decision);
        }
        decision
    }

    /// Returns the quota this limiter enforces.
    pub fn quota(&self) -> &Quota {
        self.policy.quota()
    }

    /// Returns the clock this limiter reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    pub(crate) fn policy(&self) -> &P {
        &self.policy
    }

    pub(crate) fn state(&self) -> &P::State {
        &self.state
    }
}

impl<P: Policy, C: Clock> RateLimiter for Limiter<P, C> {
    #[inline]
    fn check_n(&self, _key: &(), cost: u32) -> Decision {
        Limiter::check_n(self, cost)
    }
}

impl<P: Policy, C: Clock> fmt::Debug for Limiter<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("policy", &self.policy)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
