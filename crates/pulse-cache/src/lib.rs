//! Caching for services: a fast in-process tier, a Redis store, and a near
//! cache that keeps many instances coherent.
//!
//! # Which type do I want?
//!
//! | type | where values live | use it when |
//! | --- | --- | --- |
//! | [`LocalCache`] | this process | one process, or data that may be stale for its TTL |
//! | [`redis::RedisStore`] (feature `redis`) | Redis | every instance must see the same value; a miss costs one round trip |
//! | [`NearCache`] | this process, in front of any [`CacheStore`](pulse_core::cache::CacheStore) | reads must be local-fast and writes seen everywhere soon after |
//!
//! All three load a missing key once however many callers ask at the same
//! time (`get_or_load`), and a caller that gives up (its future dropped)
//! hands the load to the next caller instead of wedging the key.
//!
//! ```
//! use std::time::Duration;
//! use pulse_cache::LocalCache;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let prices = LocalCache::<String, u64>::builder()
//!     .max_entries(50_000)
//!     .ttl(Duration::from_secs(30))
//!     .build()?;
//! let price = prices
//!     .get_or_load("sku-1".to_owned(), || async { Ok(1999) })
//!     .await?;
//! assert_eq!(price, 1999);
//! assert_eq!(prices.get("sku-1"), Some(1999));
//! # Ok::<(), pulse_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # The engine: quick_cache, with expiry added
//!
//! The local tier stores its entries in [`quick_cache`]'s sharded
//! S3-FIFO-like cache and adds TTL, time-to-idle, per-entry expiry, the
//! removal listener and statistics on top. moka was measured first, because
//! it has all of these built in. In one criterion run on the development
//! machine (2 shared cores) a moka hit took about 10 times a quick_cache hit
//! (u64 keys, one thread), far from the target of 1.5 times. quick_cache
//! with the additions stays within it, at about 1.2 times (see
//! `docs/bench/cache.md` in the repository). moka remains the benchmark
//! peer.
//!
//! # How it works, and what it costs
//!
//! - **A hit** takes one shard read lock, one hash lookup and one clone of
//!   the value. An entry that can expire also reads the time, from an
//!   atomic that one process-wide thread refreshes every millisecond (a
//!   clock read costs more than the lookup on some virtual machines).
//!   Expiry is therefore exact to about 1 ms; a cache built with
//!   [`clock`](LocalCacheBuilder::clock) reads that clock on every call
//!   instead. Hit and miss counters are per-thread stripes, so counting
//!   costs no locked instruction.
//! - **Memory per entry**: the key and value, 24 bytes of expiry data (an
//!   8-byte counter more with time-to-idle, behind a shared pointer), and
//!   quick_cache's slot and table overhead: about 63 bytes in all for a
//!   `u64 → u64` entry with a TTL, measured by a test through
//!   [`LocalCache::memory_used`], plus whatever keys and values point to.
//! - **Expired entries** are removed when read, when eviction reaches them,
//!   or by [`LocalCache::purge_expired`]; until then they count against the
//!   capacity.
//! - **Eviction** is quick_cache's: a small probationary queue, a main
//!   queue and ghost entries, which keeps a scan from flushing hot keys.
//!   Its Zipf hit ratio is reported beside moka's in `docs/bench/cache.md`.
//!
//! # Invalidation in the near cache
//!
//! A [`NearCache`] keeps a local copy of what it read. When any instance
//! writes or deletes a key, the store's invalidation stream tells every
//! other instance to drop its copy:
//!
//! - Over Redis 6 and later, the listener turns on client-side caching in
//!   broadcast mode (`CLIENT TRACKING ON BCAST PREFIX <prefix>`) on a
//!   dedicated RESP3 connection, so Redis itself reports every change under
//!   the prefix, expiries and changes by other clients included.
//! - Where tracking is refused, writers publish the key on a pub/sub
//!   channel, pipelined with the write (no extra round trip), and the
//!   listener subscribes to it.
//! - While the stream is down, the local tier is flushed and keeps nothing;
//!   once it is back it is flushed again, since changes may have been missed.
//! - A read that races an invalidation of its key is not kept: the fetch
//!   takes a mark before it sends its read, and keeps its value only if no
//!   invalidation of that key was processed since.
//!
//! Staleness is therefore the time an invalidation takes to reach the
//! other instance; the crate README gives the measured p50 and p99.
//!
//! # Features
//!
//! | feature | adds |
//! | --- | --- |
//! | `redis` | [`redis::RedisStore`] over deadpool-redis, with the invalidation listener |
//! | `metrics` | counters through the `metrics` facade (names in the README) |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod codec;
pub mod error;
mod flight;
mod listener;
mod local;
mod near;
mod stats;
mod time;

#[cfg(feature = "metrics")]
mod metrics;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use error::CacheError;
pub use flight::Flight;
pub use listener::{Listener, RemovalCause};
pub use local::{LocalCache, LocalCacheBuilder};
pub use near::{NearCache, NearCacheBuilder};
pub use stats::CacheStats;

/// The default longest key, in bytes, of the near cache and the Redis store.
pub const DEFAULT_MAX_KEY_LEN: usize = 1024;
