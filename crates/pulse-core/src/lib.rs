//! The shared contracts of gopulse: the clock, the error kinds, the
//! background-task rules, and one trait per primitive.
//!
//! # Who should use this crate
//!
//! - Authors of a backend (a lock over etcd, a cache store over Memcached)
//!   implement the trait here, run the conformance suite from
//!   `pulse-testkit`, and their backend works with every gopulse primitive.
//! - Library code that wants to accept "any rate limiter" or "any lock"
//!   takes these traits as bounds.
//! - Applications usually depend on a primitive crate (`pulse-ratelimit`,
//!   `pulse-lock`, …) or on the `gopulse` umbrella instead, which re-export
//!   what they need from here.
//!
//! This crate stays small and changes rarely. It holds traits, the clock and
//! shared error kinds; it will never contain a server client, and its only
//! runtime dependency is the part of tokio that timers and signals need.
//!
//! # Which module do I want?
//!
//! | module | role |
//! | --- | --- |
//! | [`clock`] | monotonic and wall time, a cheap clock for hot paths, a manual clock for tests |
//! | [`error`] | [`Error`](error::Error), [`ErrorKind`](error::ErrorKind), [`ConfigError`](error::ConfigError) |
//! | [`signal`] | a one-shot flag to wait on: a lease's lost signal, a stop signal |
//! | [`task`] | the background-task contract: run on the caller's runtime, stop with the owner |
//! | [`ratelimit`] | [`RateLimiter`](ratelimit::RateLimiter) and [`AsyncRateLimiter`](ratelimit::AsyncRateLimiter) |
//! | [`id`] | [`IdGenerator`](id::IdGenerator) |
//! | [`lock`] | [`Lock`](lock::Lock) and [`Lease`](lock::Lease) with fencing tokens |
//! | [`cache`] | [`CacheStore`](cache::CacheStore) with invalidations |
//! | [`mq`] | [`Publisher`](mq::Publisher), [`Subscriber`](mq::Subscriber), [`Delivery`](mq::Delivery) |
//! | [`sched`] | [`Schedule`](sched::Schedule) and [`JobStore`](sched::JobStore) |
//! | [`flight`] | [`SingleFlight`](flight::SingleFlight) |
//!
//! # Generic use and trait objects
//!
//! An `async fn` in a trait cannot be called through `dyn`. Each async trait
//! here therefore comes in two parts: the main trait, with native async
//! methods whose futures are `Send`, for generic code that allocates nothing;
//! and an object-safe companion named `Dyn…` whose methods return boxed
//! futures. A blanket impl gives every implementor of the main trait the
//! companion, and `dyn Dyn…` implements the main trait again, so a backend
//! chosen from configuration at run time (`Arc<dyn DynLock>`) goes wherever
//! a generic `L: Lock` does.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pulse_core::ratelimit::{AsyncRateLimiter, Decision, DynAsyncRateLimiter, RateLimiter};
//!
//! struct AllowAll;
//! impl RateLimiter<str> for AllowAll {
//!     fn check_n(&self, _key: &str, _cost: u32) -> Decision {
//!         Decision::allowed(u64::MAX, u64::MAX, Duration::ZERO)
//!     }
//! }
//!
//! // Generic: the future is a plain `Ready`, nothing is boxed.
//! async fn admit<L: AsyncRateLimiter<str> + ?Sized>(limiter: &L, tenant: &str) -> bool {
//!     limiter.check(tenant).await.map(|d| d.allowed).unwrap_or(false)
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! assert!(admit(&AllowAll, "tenant-1").await);
//!
//! // Chosen at run time: the same function takes the trait object.
//! let limiter: Arc<dyn DynAsyncRateLimiter<str>> = Arc::new(AllowAll);
//! assert!(admit(&*limiter, "tenant-1").await);
//! # });
//! ```

pub mod cache;
pub mod clock;
pub mod error;
pub mod flight;
pub mod id;
pub mod lock;
pub mod mq;
pub mod ratelimit;
pub mod sched;
pub mod signal;
pub mod task;

pub use error::{ConfigError, Error, ErrorKind, Result};

/// A boxed, `Send` future: the return type of the object-safe companion
/// traits.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
