//! Rate limiters that never over-admit: GCRA, token bucket, leaky bucket,
//! sliding-window log and counter, and fixed window, in-process or in Redis.
//!
//! # Which limiter do I want?
//!
//! | you want | use | cost per check |
//! | --- | --- | --- |
//! | a rate with bursts, the usual choice | [`Gcra`] (or [`TokenBucket`], which decides the same) | one atomic compare-and-swap |
//! | requests spaced out evenly, callers wait their turn | [`LeakyQueue`] with [`until_ready`](Limiter::until_ready) | one compare-and-swap |
//! | "N per window", exact over any window | [`SlidingLog`] | mutex; 16 bytes per admitted request in the window |
//! | "N per window", cheap, approximate | [`SlidingWindow`] | mutex; 32 bytes of state |
//! | "N per calendar window", simplest to explain | [`FixedWindow`] (up to 2 × N across a boundary) | one compare-and-swap |
//! | one limit per tenant, user or IP | [`KeyedLimiter`] ([`KeyedGcra`] and friends) | read lock on a shard + the above |
//! | one limit shared by many processes | `RedisLimiter` (feature `redis`) | one `EVALSHA` round trip |
//! | HTTP 429 with `Retry-After` | `RateLimitLayer` (feature `tower`) | one check per request |
//!
//! Every limiter is built from a [`Quota`] (rate per period, burst) and
//! returns a [`Decision`]: allowed, remaining, and `retry_after` and
//! `reset_after` rounded up to the millisecond. A cost above the burst is
//! rejected with `retry_after == Duration::MAX`; it is never admitted.
//!
//! Time is integer nanoseconds from the monotonic clock of
//! [`pulse_core::clock`]: the process-wide
//! [`CoarseClock`](pulse_core::clock::CoarseClock) by default (one atomic
//! load, refreshed every millisecond),
//! [`ManualClock`](pulse_core::clock::ManualClock) in tests. The coarse
//! reading lags real time by up to a millisecond and never runs ahead, so a
//! limiter decides on a slightly old time and never admits more than its
//! quota; pass a [`FastClock`](pulse_core::clock::FastClock) through
//! `with_clock` where sub-millisecond rates need exact readings.
//!
//! # Examples
//!
//! ```
//! use pulse_ratelimit::{Gcra, KeyedGcra, Quota};
//!
//! let quota = Quota::per_second(100)?.with_burst(10)?;
//!
//! let global = Gcra::new(quota);
//! assert!(global.check().allowed);
//!
//! let per_tenant = KeyedGcra::<String>::builder(quota).max_keys(100_000).build()?;
//! let decision = per_tenant.check_n("tenant-7", 5);
//! assert!(decision.allowed);
//! assert_eq!(decision.remaining, 5);
//! # Ok::<(), pulse_ratelimit::RateLimitError>(())
//! ```
//!
//! # Traits
//!
//! Limiters implement [`RateLimiter`]
//! (and through it the async trait), so code can accept any of them, or a
//! Redis limiter, as `impl AsyncRateLimiter<str>`. The inherent `check` and
//! `check_n` are the fastest way to call a concrete limiter.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod keyed;
mod limiter;
#[cfg(feature = "metrics")]
mod metrics;
pub mod policy;
mod quota;
mod wait;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use error::RateLimitError;
pub use keyed::{
    KeyedBuilder, KeyedFixedWindow, KeyedGcra, KeyedLeakyBucket, KeyedLeakyQueue, KeyedLimiter,
    KeyedSlidingLog, KeyedSlidingWindow, KeyedTokenBucket,
};
pub use limiter::{
    FixedWindow, Gcra, LeakyBucket, LeakyQueue, Limiter, SlidingLog, SlidingWindow, TokenBucket,
};
pub use pulse_core::ratelimit::{AsyncRateLimiter, Decision, DynAsyncRateLimiter, RateLimiter};
pub use quota::Quota;
