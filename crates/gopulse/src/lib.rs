//! Distributed building blocks for Rust services: caches, IDs, locks, message
//! queues, rate limiters, schedulers and concurrency tools.
//!
//! Every primitive works in-process with no server, and the same trait from
//! [`core`] is implemented over real engines (Redis, PostgreSQL) behind cargo
//! features. A service starts on one machine and grows into a fleet by
//! changing a constructor, not the code that calls it.
//!
//! This crate only re-exports. Each primitive is its own crate, behind a
//! feature of the same name as its module here; `full` turns on all of them.
//! Depend on a primitive crate directly when you need just one.
//!
//! | feature | module | crate | what it gives |
//! | --- | --- | --- | --- |
//! | (always) | [`core`] | `pulse-core` | the traits, the clock, the shared error kinds |
//! | `cache` | `cache` | `pulse-cache` | local cache tier, Redis store, near cache with invalidation |
//! | `conc` | `conc` | `pulse-conc` | worker pools, task groups, single-flight, circuit breaker, bulkhead, retry |
//! | `id` | `id` | `pulse-id` | Snowflake, UUIDv7, ULID and segment IDs, worker ids by lease |
//! | `lock` | `lock` | `pulse-lock` | keyed local locks, fenced leases over Redis and PostgreSQL |
//! | `mq` | `mq` | `pulse-mq` | publish/subscribe with ack and nack, in-memory broker, Redis Streams |
//! | `ratelimit` | `ratelimit` | `pulse-ratelimit` | GCRA, token and leaky bucket, sliding and fixed windows, in-process or in Redis |
//! | `sched` | `sched` | `pulse-sched` | timing-wheel delays, cron with time zones, one run per slot across a fleet |
//!
//! Server backends stay off even with `full`: turn on the ones you use with
//! the pass-through features `<primitive>-<backend>`, such as
//! `ratelimit-redis`, `lock-postgres`, `conc-tower` or `cache-metrics`.
//! Each of them also turns on its primitive.
//!
//! # Example
//!
//! ```toml
//! [dependencies]
//! gopulse = { version = "0.1", features = ["ratelimit-redis", "lock"] }
//! ```
//!
//! Every module shares the clock and the error kinds of [`core`], so a test
//! can drive any primitive with one manual clock, and a caller can handle
//! "the backend is down" the same way whichever primitive reports it:
//!
//! ```
//! use std::time::Duration;
//! use gopulse::core::clock::{Clock, ManualClock};
//! use gopulse::core::error::{Error, ErrorKind};
//!
//! let clock = ManualClock::new();
//! let start = clock.now();
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(clock.now().saturating_duration_since(start), Duration::from_secs(5));
//!
//! let err = Error::new(ErrorKind::Unavailable, "redis at 127.0.0.1:6379 refused the connection");
//! assert!(err.kind().is_transient());
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(no_inline)]
pub use pulse_core as core;

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
#[doc(no_inline)]
pub use pulse_cache as cache;

#[cfg(feature = "conc")]
#[cfg_attr(docsrs, doc(cfg(feature = "conc")))]
#[doc(no_inline)]
pub use pulse_conc as conc;

#[cfg(feature = "id")]
#[cfg_attr(docsrs, doc(cfg(feature = "id")))]
#[doc(no_inline)]
pub use pulse_id as id;

#[cfg(feature = "lock")]
#[cfg_attr(docsrs, doc(cfg(feature = "lock")))]
#[doc(no_inline)]
pub use pulse_lock as lock;

#[cfg(feature = "mq")]
#[cfg_attr(docsrs, doc(cfg(feature = "mq")))]
#[doc(no_inline)]
pub use pulse_mq as mq;

#[cfg(feature = "ratelimit")]
#[cfg_attr(docsrs, doc(cfg(feature = "ratelimit")))]
#[doc(no_inline)]
pub use pulse_ratelimit as ratelimit;

#[cfg(feature = "sched")]
#[cfg_attr(docsrs, doc(cfg(feature = "sched")))]
#[doc(no_inline)]
pub use pulse_sched as sched;
