//! Worker pools, task groups, single-flight, circuit breaker, bulkhead and
//! retry: the concurrency and resilience tools of Go (`errgroup`,
//! `singleflight`, gobreaker) and of resilience4j, for tokio services.
//!
//! Everything here runs in-process and needs no server.
//!
//! # Which one do I want?
//!
//! | need | type | Go / resilience4j |
//! | --- | --- | --- |
//! | run many jobs on a fixed or bounded number of workers, with backpressure | [`WorkerPool`](pool::WorkerPool) (futures), [`ThreadPool`](pool::ThreadPool) (blocking closures) | a worker pool over a buffered channel |
//! | run related tasks; the first error cancels the rest | [`TaskGroup`] | `errgroup.Group` with `SetLimit`/`TryGo` |
//! | map a stream or iterator with bounded concurrency | [`fanout::map`] | a semaphore plus goroutines |
//! | load each key once however many callers ask at the same time | [`SingleFlight`], [`BlockingSingleFlight`] | `singleflight.Group` |
//! | stop calling a failing dependency for a while | [`CircuitBreaker`] | gobreaker; resilience4j `CircuitBreaker` |
//! | cap concurrent calls to one dependency | [`Bulkhead`] | `semaphore.Weighted`; resilience4j `Bulkhead` |
//! | give up on a slow call | [`TimeLimiter`] | `context.WithTimeout`; resilience4j `TimeLimiter` |
//! | retry with backoff, without retry storms | [`retry::Retry`], [`retry::RetryBudget`] | resilience4j `Retry` |
//! | the breaker and bulkhead as tower middleware | `layer` (feature `tower`) | — |
//!
//! # Errors
//!
//! The crate's own failures are [`Error`]. A guard that wraps the caller's
//! call (breaker, bulkhead, time limiter) returns [`CallError`]: either
//! the guard stopped the call, or the call failed with its own error.
//! Invalid settings are rejected when the object is built, never by a
//! panic.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use pulse_conc::breaker::CircuitBreaker;
//! use pulse_conc::retry::{Backoff, Retry};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let breaker = CircuitBreaker::builder("prices").consecutive_failures(5).build().unwrap();
//! let retry = Retry::new(3, Backoff::exponential(Duration::from_millis(1), Duration::from_millis(20)).unwrap()).unwrap();
//!
//! let price = breaker
//!     .call(|| retry.call(|_attempt| async { Ok::<_, std::io::Error>(1999) }))
//!     .await
//!     .unwrap();
//! assert_eq!(price, 1999);
//! # });
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breaker;
mod bulkhead;
mod error;
pub mod fanout;
pub mod flight;
mod group;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod layer;
pub mod pool;
pub mod retry;
mod timeout;
mod util;

pub use breaker::CircuitBreaker;
pub use bulkhead::{Bulkhead, BulkheadBuilder, BulkheadPermit};
pub use error::{CallError, Error};
pub use flight::{BlockingSingleFlight, LoadFlight, SharedError, SingleFlight};
pub use group::{GroupError, TaskGroup};
pub use timeout::TimeLimiter;

/// The cancellation token that [`TaskGroup`] hands to its tasks.
pub use tokio_util::sync::CancellationToken;
