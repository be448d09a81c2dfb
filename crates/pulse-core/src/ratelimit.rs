//! The rate-limiter contract: a synchronous trait for in-process limiters and
//! an asynchronous one for remote limiters.
//!
//! Every [`RateLimiter`] is also an [`AsyncRateLimiter`] through a blanket
//! impl whose future is ready at once, so code written against the async
//! trait (a tower layer, a fallback chain) takes either kind and never blocks
//! on a future. [`DynAsyncRateLimiter`] is the object-safe companion for
//! limiters chosen at run time.
//!
//! Concrete limiters also offer `check` and `check_n` as inherent methods;
//! in generic code that names both traits, call them as
//! `RateLimiter::check_n(&limiter, key, n)`.
//!
//! # Contract for implementors
//!
//! - A decision is made against the monotonic clock, never the wall clock.
//! - Concurrent callers never make the limiter admit more than its stated
//!   bound.
//! - `retry_after` is zero when the request was allowed, and otherwise the
//!   shortest wait after which the same request can be allowed, if nothing
//!   else consumes capacity meanwhile, rounded up to the millisecond.
//! - A cost that can never be admitted (larger than the burst) is rejected
//!   with `retry_after` equal to [`Duration::MAX`], never admitted.

use std::future::{Future, ready};
use std::sync::Arc;
use std::time::Duration;

use crate::BoxFuture;
use crate::error::Result;

/// The outcome of one rate-limit check.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::ratelimit::Decision;
///
/// let decision = Decision::rejected(10, Duration::from_millis(250), Duration::from_secs(1));
/// assert!(!decision.allowed);
/// assert_eq!(decision.remaining, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The burst capacity of the limiter.
    pub limit: u64,
    /// How many more permits could be taken right now.
    pub remaining: u64,
    /// How long to wait before retrying; zero when allowed.
    pub retry_after: Duration,
    /// How long until the limiter is back to its full capacity.
    pub reset_after: Duration,
}

impl Decision {
    /// Creates a decision that admits the request.
    #[inline]
    pub const fn allowed(limit: u64, remaining: u64, reset_after: Duration) -> Self {
        Decision {
            allowed: true,
            limit,
            remaining,
            retry_after: Duration::ZERO,
            reset_after,
        }
    }

    /// Creates a decision that rejects the request.
    #[inline]
    pub const fn rejected(limit: u64, retry_after: Duration, reset_after: Duration) -> Self {
        Decision {
            allowed: false,
            limit,
            remaining: 0,
            retry_after,
            reset_after,
        }
    }
}

/// An in-process rate limiter, keyed by `K` (`()` for a single limit).
///
/// # Examples
///
/// A limiter written against the trait and used both generically and as a
/// trait object:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use pulse_core::ratelimit::{Decision, RateLimiter};
///
/// /// Admits the first `limit` permits and nothing after.
/// struct Quota { limit: u64, used: AtomicU64 }
///
/// impl RateLimiter for Quota {
///     fn check_n(&self, _key: &(), cost: u32) -> Decision {
///         let cost = u64::from(cost);
///         let taken = self.used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
///             (used + cost <= self.limit).then_some(used + cost)
///         });
///         match taken {
///             Ok(used) => Decision::allowed(self.limit, self.limit - used - cost, Duration::MAX),
///             Err(_) => Decision::rejected(self.limit, Duration::MAX, Duration::MAX),
///         }
///     }
/// }
///
/// fn admit<L: RateLimiter>(limiter: &L) -> bool {
///     limiter.check(&()).allowed
/// }
///
/// let quota = Quota { limit: 2, used: AtomicU64::new(0) };
/// assert!(admit(&quota));
/// let shared: Arc<dyn RateLimiter> = Arc::new(quota);
/// assert!(shared.check(&()).allowed);
/// assert!(!shared.check(&()).allowed);
/// ```
pub trait RateLimiter<K: ?Sized = ()>: Send + Sync {
    /// Checks whether `cost` permits for `key` may be taken now, and takes
    /// them if so.
    fn check_n(&self, key: &K, cost: u32) -> Decision;

    /// Checks whether one permit for `key` may be taken now.
    #[inline]
    fn check(&self, key: &K) -> Decision {
        self.check_n(key, 1)
    }
}

impl<K: ?Sized, L: RateLimiter<K> + ?Sized> RateLimiter<K> for &L {
    #[inline]
    fn check_n(&self, key: &K, cost: u32) -> Decision {
        (**self).check_n(key, cost)
    }
}

impl<K: ?Sized, L: RateLimiter<K> + ?Sized> RateLimiter<K> for Arc<L> {
    #[inline]
    fn check_n(&self, key: &K, cost: u32) -> Decision {
        (**self).check_n(key, cost)
    }
}

/// A rate limiter whose decision may need a round trip, such as one kept in
/// Redis.
///
/// A remote limiter returns an error when it cannot decide (the server is
/// down and no fallback is configured); an in-process one never does.
pub trait AsyncRateLimiter<K: ?Sized = ()>: Send + Sync {
    /// Checks whether `cost` permits for `key` may be taken now, and takes
    /// them if so.
    fn check_n(&self, key: &K, cost: u32) -> impl Future<Output = Result<Decision>> + Send;

    /// Checks whether one permit for `key` may be taken now.
    fn check(&self, key: &K) -> impl Future<Output = Result<Decision>> + Send {
        self.check_n(key, 1)
    }
}

impl<K: ?Sized + Sync, L: RateLimiter<K>> AsyncRateLimiter<K> for L {
    #[inline]
    fn check_n(&self, key: &K, cost: u32) -> impl Future<Output = Result<Decision>> + Send {
        ready(Ok(RateLimiter::check_n(self, key, cost)))
    }
}

/// The object-safe companion of [`AsyncRateLimiter`], implemented for every
/// async limiter, for limiters chosen at run time.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use pulse_core::ratelimit::{AsyncRateLimiter, Decision, DynAsyncRateLimiter, RateLimiter};
///
/// struct Always;
/// impl RateLimiter<str> for Always {
///     fn check_n(&self, _key: &str, _cost: u32) -> Decision {
///         Decision::allowed(1, 1, Duration::ZERO)
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let limiter: Arc<dyn DynAsyncRateLimiter<str>> = Arc::new(Always);
/// let decision = AsyncRateLimiter::check(&*limiter, "tenant-7").await.unwrap();
/// assert!(decision.allowed);
/// # });
/// ```
pub trait DynAsyncRateLimiter<K: ?Sized = ()>: Send + Sync {
    /// Boxed form of [`AsyncRateLimiter::check_n`].
    fn check_n_boxed<'a>(&'a self, key: &'a K, cost: u32) -> BoxFuture<'a, Result<Decision>>;
}

impl<K: ?Sized + Sync, L: AsyncRateLimiter<K>> DynAsyncRateLimiter<K> for L {
    fn check_n_boxed<'a>(&'a self, key: &'a K, cost: u32) -> BoxFuture<'a, Result<Decision>> {
        Box::pin(AsyncRateLimiter::check_n(self, key, cost))
    }
}

impl<K: ?Sized + Sync> AsyncRateLimiter<K> for dyn DynAsyncRateLimiter<K> + '_ {
    async fn check_n(&self, key: &K, cost: u32) -> Result<Decision> {
        self.check_n_boxed(key, cost).await
    }
}
