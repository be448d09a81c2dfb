//! Worker pools, task groups, single-flight, circuit breaker, bulkhead and
//! retry: the concurrency and resilience tools of Go's `errgroup` and
//! `singleflight`, gobreaker and resilience4j, for tokio services.
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
pub use group::{GroupError, TaskGroup};
pub use flight::{BlockingSingleFlight, LoadFlight, SharedError, SingleFlight};
pub use timeout::TimeLimiter;
