//! Local cache tier, Redis store and coherent near cache.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod codec;
pub mod error;
mod flight;
mod listener;
mod local;
mod near;
mod stats;
mod time;

pub use error::CacheError;
pub use flight::Flight;
pub use listener::{Listener, RemovalCause};
pub use local::{LocalCache, LocalCacheBuilder};
pub use near::{NearCache, NearCacheBuilder};
pub use stats::CacheStats;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[cfg(feature = "metrics")]
mod metrics;

/// The default longest key, in bytes, of the near cache and the Redis store.
pub const DEFAULT_MAX_KEY_LEN: usize = 1024;
