//! The error enum of this crate.
//!
//! Public calls return [`pulse_core::Error`], whose source is a
//! [`CacheError`]: match on [`pulse_core::ErrorKind`] for the broad category,
//! or downcast with [`pulse_core::Error::downcast_ref`] for the details.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use pulse_core::ErrorKind;
use pulse_core::error::{Classify, ConfigError};

/// A boxed error from a codec or a client library.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A failure of a cache call.
#[derive(Debug)]
#[non_exhaustive]
pub enum CacheError {
    /// A builder setting was rejected.
    Config(ConfigError),
    /// A key is longer than the configured maximum.
    KeyTooLong {
        /// The start of the key, cut to 64 characters.
        key: String,
        /// The key's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// One entry weighs more than the whole cache may hold.
    TooHeavy {
        /// The weight the weigher returned.
        weight: u64,
        /// The capacity of the cache.
        capacity: u64,
    },
    /// A per-entry TTL of zero was passed.
    ZeroTtl {
        /// The start of the key, cut to 64 characters.
        key: String,
    },
    /// A stored value could not be decoded. The entry was removed.
    Decode {
        /// The start of the key, cut to 64 characters.
        key: String,
        /// The codec that failed.
        codec: &'static str,
        /// The codec's message.
        source: BoxError,
    },
    /// A value could not be encoded.
    Encode {
        /// The start of the key, cut to 64 characters.
        key: String,
        /// The codec that failed.
        codec: &'static str,
        /// The codec's message.
        source: BoxError,
    },
    /// The remote store failed or could not be reached.
    Backend {
        /// The operation, such as `GET` or `MGET`.
        operation: &'static str,
        /// The client library's message, with any password removed.
        message: String,
    },
    /// Waiting for another process to load a key took too long.
    LoadWaitTimedOut {
        /// The start of the key, cut to 64 characters.
        key: String,
        /// How long the caller waited.
        waited: Duration,
    },
}

/// Cuts a key for an error message, so a huge key does not flood the logs.
pub(crate) fn short_key(key: &str) -> String {
    const MAX: usize = 64;
    if key.len() <= MAX {
        return key.to_owned();
    }
    let mut end = MAX;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &key[..end])
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Config(err) => err.fmt(f),
            CacheError::KeyTooLong { key, len, max } => write!(
                f,
                "cache key `{key}` is {len} bytes, over the maximum of {max}; shorten it or raise `max_key_len`"
            ),
            CacheError::TooHeavy { weight, capacity } => write!(
                f,
                "an entry of weight {weight} cannot fit a cache of capacity {capacity}; raise the capacity or store smaller values"
            ),
            CacheError::ZeroTtl { key } => write!(
                f,
                "TTL of zero for cache key `{key}`; pass a TTL of at least 1 ms, or delete the key instead"
            ),
            CacheError::Decode { key, codec, source } => write!(
                f,
                "stored value of cache key `{key}` is not valid {codec} ({source}); the entry was removed, the next read loads it again"
            ),
            CacheError::Encode { key, codec, source } => write!(
                f,
                "value for cache key `{key}` cannot be encoded as {codec}: {source}"
            ),
            CacheError::Backend { operation, message } => {
                write!(f, "remote cache store failed on {operation}: {message}")
            }
            CacheError::LoadWaitTimedOut { key, waited } => write!(
                f,
                "waited {waited:?} for another process to load cache key `{key}`; raise `lock_wait` or check the loader"
            ),
        }
    }
}

impl StdError for CacheError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CacheError::Config(err) => Some(err),
            CacheError::Decode { source, .. } | CacheError::Encode { source, .. } => {
                Some(source.as_ref())
            }
            _ => None,
        }
    }
}

impl Classify for CacheError {
    fn kind(&self) -> ErrorKind {
        match self {
            CacheError::Config(_) => ErrorKind::InvalidConfig,
            CacheError::KeyTooLong { .. }
            | CacheError::TooHeavy { .. }
            | CacheError::ZeroTtl { .. } => ErrorKind::InvalidInput,
            CacheError::Decode { .. } | CacheError::Encode { .. } => ErrorKind::Codec,
            CacheError::Backend { .. } => ErrorKind::Unavailable,
            CacheError::LoadWaitTimedOut { .. } => ErrorKind::TimedOut,
        }
    }
}

impl From<CacheError> for pulse_core::Error {
    fn from(err: CacheError) -> Self {
        pulse_core::Error::from_source(err)
    }
}

impl From<ConfigError> for CacheError {
    fn from(err: ConfigError) -> Self {
        CacheError::Config(err)
    }
}

/// Checks a key against the configured maximum length.
pub(crate) fn check_key(key: &str, max: usize) -> Result<(), CacheError> {
    if key.len() > max {
        return Err(CacheError::KeyTooLong {
            key: short_key(key),
            len: key.len(),
            max,
        });
    }
    Ok(())
}
