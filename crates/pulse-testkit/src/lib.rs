//! Test support for gopulse and for anyone writing a gopulse backend.
//!
//! # Who should use this crate
//!
//! Use it as a dev-dependency. It gives the tests of every gopulse crate the
//! same tools, instead of copied helpers:
//!
//! | module | what it gives |
//! | --- | --- |
//! | [`services`] | the shared Redis, PostgreSQL, NATS and RabbitMQ: their URL, or a loud skip (a failure under `CI=true`) when one is down |
//! | [`unique_prefix`] | a random key prefix, so tests sharing one server never see each other's keys |
//! | [`pg`] | a fresh PostgreSQL schema per test |
//! | [`redis_server`] | a private `redis-server` child that a test may kill, restart or reconfigure |
//! | [`proxy`] | a loopback TCP proxy that delays, cuts and restores connections |
//! | [`clock`] | the manual clock, for tests that must not depend on real time |
//! | [`suites`] | conformance suites that every backend of a pulse-core trait runs |
//!
//! # Example
//!
//! A test against the shared Redis skips itself when Redis is not running
//! (and fails instead under `CI=true`), and keeps its keys apart from every
//! other test's:
//!
//! ```
//! # async fn run() {
//! let Some(url) = pulse_testkit::services::redis_url() else { return };
//! let prefix = pulse_testkit::unique_prefix("ratelimit");
//! assert!(prefix.starts_with("ratelimit-"));
//! // ... connect to `url` and use keys under `prefix` ...
//! # let _ = url;
//! # }
//! ```
//!
//! Anything destructive (`SCRIPT FLUSH`, `CONFIG SET`, killing the server)
//! runs on a [`RedisServer`](redis_server::RedisServer) of its own, never on
//! the shared one.

mod error;

pub mod clock;
pub mod pg;
pub mod proxy;
pub mod redis_server;
pub mod services;
pub mod suites;

pub use error::Error;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Returns a key prefix that no other call returns: `<area>-<16 hex digits>`.
///
/// The digits are random per process and distinct for every call within
/// one, so parallel tests and parallel test binaries sharing one server
/// never collide. The prefix has no trailing separator; add the one your key
/// layout uses.
///
/// ```
/// let first = pulse_testkit::unique_prefix("lock");
/// let second = pulse_testkit::unique_prefix("lock");
/// assert_ne!(first, second);
/// assert!(first.starts_with("lock-"));
/// ```
pub fn unique_prefix(area: &str) -> String {
    format!("{area}-{:016x}", random_u64())
}

/// Returns 64 random bits, distinct for every call in this process.
///
/// `RandomState` is seeded from the operating system's random source once
/// per process; hashing a counter with it gives unpredictable, distinct
/// values without another dependency.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static STATE: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();

    let mut hasher = STATE
        .get_or_init(std::hash::RandomState::new)
        .build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_distinct() {
        let prefixes: std::collections::HashSet<String> =
            (0..10_000).map(|_| unique_prefix("t")).collect();
        assert_eq!(prefixes.len(), 10_000);
    }
}
