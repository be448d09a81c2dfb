//! Conformance suites: the behaviour every backend of a pulse-core trait owes
//! its users, as runnable checks.
//!
//! Each module contains the suite for one trait. A suite takes the backend under
//! test (or a factory that builds a fresh one per check) and the capabilities
//! the backend declares, such as "persistent" or "ordered per key", and runs
//! only the checks that those capabilities promise. The in-process backends
//! and the Redis and PostgreSQL backends of gopulse all run these suites from
//! their tests, and a third-party backend can run them the same way.
//!
//! | module | trait under test |
//! | --- | --- |
//! | [`ratelimit`] | `pulse_core::ratelimit::AsyncRateLimiter` |
//! | [`lock`] | `pulse_core::lock::Lock` |
//! | [`cache`] | `pulse_core::cache::CacheStore` |
//! | [`mq`] | `pulse_core::mq::Publisher` and `Subscriber` |
//! | [`sched`] | the scheduler's job store |

pub mod cache;
pub mod lock;
pub mod mq;
pub mod ratelimit;
pub mod sched;
