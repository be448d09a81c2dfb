//! Keyed local locks and fenced distributed leases on Redis and PostgreSQL.
//!
//! # Which one do I want?
//!
//! | need | type | feature |
//! | --- | --- | --- |
//! | exclude tasks of one process per key (an order id, a user id) | [`KeyedMutex`] | default |
//! | many readers or one writer per key, in one process | [`KeyedRwLock`] | default |
//! | bound in-process concurrency by weight (bytes, jobs) | [`Semaphore`] | default |
//! | the lease contract inside one process (tests, one node) | [`MemoryLock`] | default |
//! | one holder across processes, with fencing tokens | [`RedisLock`] | `redis` |
//! | one holder across processes, surviving the loss of a minority of Redis servers | [`Redlock`] | `redis` |
//! | at most N holders across processes | [`RedisSemaphore`] | `redis` |
//! | one holder across processes, on the database you already run | [`PgLock`] | `postgres` |
//!
//! The four lease services implement [`Lock`] from pulse-core, so code
//! written against `L: Lock` (or `Arc<dyn DynLock>`) runs on any of them.
//!
//! # What a lease promises, and what it cannot
//!
//! A [`Lease`] carries the key, an owner value, a fencing token, a local
//! deadline and a lost signal. The local deadline is the moment the acquire
//! request was *sent*, plus the TTL, minus a drift margin
//! ([`LeaseOptions::drift_margin`]), so it passes before the server-side
//! expiry however slow the reply was. The lost signal fires at that deadline,
//! and earlier when the backend learns the lease is gone (a failed renewal,
//! a closed PostgreSQL connection).
//!
//! Nothing can reach a paused process (a long GC pause, a stopped VM). So a
//! holder calls [`Lease::check`] before each protected action, and every
//! write to the protected resource carries the fencing token, which the
//! resource compares with the highest token it has seen:
//!
//! ```sql
//! UPDATE accounts SET balance = $1, fence = $2 WHERE id = $3 AND fence < $2
//! ```
//!
//! An update that matches no row came from a holder whose lease has passed
//! to someone else: drop the work. Tokens strictly increase per key, also
//! across a restart of a Redis that keeps nothing (they are at least Redis
//! `TIME` in microseconds).
//!
//! # Release and drop
//!
//! Release is an explicit async call, and so is extend; both compare the
//! owner value on the server, so a late call after the lease passed to
//! someone else fails with `NotOwner` and changes nothing. `Drop` cannot
//! await: a dropped lease stops its background tasks and spawns the release
//! on the tokio runtime it was created on; when that runtime is gone, the
//! lease expires at its TTL (a PostgreSQL lease closes its connection, which
//! frees the lock at once).
//!
//! With [`LeaseOptions::watchdog`], a background task renews each lease at a
//! third of its TTL until it is released or dropped.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use pulse_core::clock::SystemClock;
//! use pulse_core::lock::Lock;
//! use pulse_lock::{KeyedMutex, MemoryLock};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! // In one process: a mutex per order.
//! let orders: KeyedMutex<u64> = KeyedMutex::new();
//! let guard = orders.lock(&42).await;
//! drop(guard);
//!
//! // Across processes the code is the same with RedisLock or PgLock.
//! let locks = MemoryLock::new();
//! let lease = locks.acquire("nightly-report", Duration::from_secs(30), Duration::from_secs(5)).await?;
//! lease.check(&SystemClock::new())?; // before each protected action
//! let token = lease.fencing_token().expect("fenced");
//! # let _ = token;
//! locks.release(lease).await?;
//! # Ok::<(), pulse_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Redis key layout
//!
//! See the [`RedisLock`] docs and the crate README: `pulse:lock:v1:<ns>:{<key>}`
//! holds the owner, `…:fence` the last token, `…:released` is the wake-up
//! channel, and `pulse:sem:v1:<ns>:{<name>}` is a semaphore's holder set.
//!
//! # PostgreSQL objects
//!
//! [`PgLock::migrate`] creates the table `pulse_lock_migrations` and the
//! sequence `pulse_lock_fence`. A key becomes the advisory lock's `bigint`
//! through 64-bit FNV-1a over the namespace, a zero byte and the key
//! ([`PgLock::key_hash`]).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod lease;
mod local;
mod memory;
mod options;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

pub use error::LockError;
pub use local::{
    KeyedMutex, KeyedMutexGuard, KeyedReadGuard, KeyedRwLock, KeyedWriteGuard, Semaphore,
    SemaphorePermit,
};
pub use memory::MemoryLock;
pub use options::LeaseOptions;
#[cfg(feature = "postgres")]
pub use postgres::PgLock;
pub use pulse_core::lock::{DynLock, Lease, Lock};
#[cfg(feature = "redis")]
pub use redis::{RedisLock, RedisSemaphore, Redlock};
