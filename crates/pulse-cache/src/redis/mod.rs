//! The remote store over Redis, through deadpool-redis.
//!
//! [`RedisStore`] keeps bytes under `<prefix>:v1:k:<key>` and implements
//! [`CacheStore`]: one round trip per call (`GET`, `SET … PX`, `DEL`, and
//! `MGET` for many keys). Its invalidation stream, which a
//! [`NearCache`](crate::NearCache) listens to, comes from Redis client-side
//! caching (`CLIENT TRACKING … BCAST` over a RESP3 connection) or, where the
//! server or the connection cannot do that, from a pub/sub channel that
//! every write publishes to in the same round trip.

mod builder;
mod listener;

pub use builder::{DEFAULT_MAX_KEY_LEN, RedisStoreBuilder};
pub use deadpool_redis::Pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use deadpool_redis::redis::{self, ConnectionInfo};
use pulse_core::cache::{CacheStore, Invalidation, Invalidations};
use pulse_core::error::redact_url;
use pulse_core::task::Background;
use tokio::sync::broadcast;
use tracing::Instrument;

use crate::error::{CacheError, check_key, short_key};

/// The source of a store's invalidation stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidationMode {
    /// Redis client-side caching in broadcast mode over RESP3: Redis itself
    /// reports every change under the prefix, also changes made by writers
    /// that know nothing of this crate. Needs Redis 6 or later.
    Tracking,
    /// A pub/sub channel that this crate's writers publish to. Changes made
    /// around the crate (by `redis-cli`, another library) are not heard.
    PubSub,
    /// Tracking where the server accepts it, pub/sub otherwise.
    #[default]
    Auto,
}

/// A [`CacheStore`] over Redis.
///
/// Cloning is cheap; clones share the pool and the invalidation listener.
/// See [`RedisStoreBuilder`] for the options and an example.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    listener_client: Option<redis::Client>,
    listener_info: Option<ConnectionInfo>,
    value_prefix: String,
    negative_prefix: String,
    lock_prefix: String,
    channel: String,
    max_key_len: usize,
    mode: InvalidationMode,
    publish: bool,
    timeout: Option<Duration>,
    shown_url: Option<String>,
    sender: broadcast::Sender<Invalidation>,
    listener_started: AtomicBool,
    live: Arc<AtomicBool>,
    background: Background,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.shown_url)
            .field("prefix", &self.inner.value_prefix)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

fn backend_error(operation: &'static str, err: impl std::fmt::Display) -> CacheError {
    // Client errors can echo the address they failed on; never a password.
    CacheError::Backend {
        operation,
        message: redact_url(&err.to_string()),
    }
}

impl RedisStore {
    /// Starts a builder. A [`url`](RedisStoreBuilder::url) or a
    /// [`pool`](RedisStoreBuilder::pool) is required.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::new()
    }

    /// Returns the Redis key that stores the value of `key`.
    pub fn value_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.value_prefix)
    }

    /// Returns the Redis key that marks `key` as known to be absent.
    pub fn negative_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.negative_prefix)
    }

    /// Returns the lock name used for cross-process loading of `key`.
    pub fn lock_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.lock_prefix)
    }

    /// Returns the pub/sub channel that writes publish to.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Returns the pool, to run commands of your own.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Returns the longest key accepted, in bytes.
    pub fn max_key_len(&self) -> usize {
        self.inner.max_key_len
    }

    fn check(&self, key: &str) -> Result<(), CacheError> {
        check_key(key, self.inner.max_key_len)
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        command: &redis::Pipeline,
    ) -> Result<T, CacheError> {
        let span = tracing::debug_span!(target: "pulse_cache", "redis", backend = "redis", op = operation, key = %short_key(key));
        let work = async {
            let mut conn = self
                .inner
                .pool
                .get()
                .await
                .map_err(|err| backend_error(operation, err))?;
            command
                .query_async::<T>(&mut conn)
                .await
                .map_err(|err| backend_error(operation, err))
        };
        let result = match self.inner.timeout {
            Some(limit) => match tokio::time::timeout(limit, work)
                .instrument(span.clone())
                .await
            {
                Ok(result) => result,
                Err(_) => Err(backend_error(
                    operation,
                    format!("no reply within {limit:?}"),
                )),
            },
            None => work.instrument(span.clone()).await,
        };
        if let Err(err) = &result {
            tracing::warn!(target: "pulse_cache", parent: &span, error = %err, "redis call failed");
        }
        #[cfg(feature = "metrics")]
        crate::metrics::remote_call(operation, result.is_ok());
        result
    }

    /// Writes several changes and, when configured, publishes the keys, all
    /// in one round trip.
    fn with_publish(&self, pipe: &mut redis::Pipeline, key: &str) {
        if self.inner.publish {
            pipe.cmd("PUBLISH")
                .arg(&self.inner.channel)
                .arg(key)
                .ignore();
        }
    }

    /// Marks `key` as known to be absent for `ttl`, for negative caching.
    pub async fn set_negative(&self, key: &str, ttl: Duration) -> pulse_core::Result<()> {
        self.check(key)?;
        let ttl_ms = ttl_millis(key, ttl)?;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.negative_key(key))
            .arg(1u8)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        Ok(self.query::<()>("SET", key, &pipe).await?)
    }

    /// Reads the value of `key` and whether it is marked absent, in one
    /// round trip.
    pub async fn get_with_negative(&self, key: &str) -> pulse_core::Result<(Option<Bytes>, bool)> {
        self.check(key)?;
        let mut pipe = redis::pipe();
        pipe.cmd("MGET")
            .arg(self.value_key(key))
            .arg(self.negative_key(key));
        let (values,): (Vec<Option<Vec<u8>>>,) = self.query("MGET", key, &pipe).await?;
        let mut values = values.into_iter();
        let value = values.next().flatten().map(Bytes::from);
        let negative = values.next().flatten().is_some();
        Ok((value, negative))
    }

    /// Returns whether the invalidation stream is live now.
    pub fn is_listening(&self) -> bool {
        self.inner.listener_started.load(Ordering::SeqCst) && listener::is_live(&self.inner)
    }

    /// Stops the invalidation listener and waits for it.
    pub async fn shutdown(&self) {
        self.inner.background.shutdown().await;
    }
}

fn ttl_millis(key: &str, ttl: Duration) -> Result<u64, CacheError> {
    if ttl.is_zero() {
        return Err(CacheError::ZeroTtl {
            key: short_key(key),
        });
    }
    // Redis counts in whole milliseconds; never round a short TTL to zero.
    Ok(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
}

impl CacheStore for RedisStore {
    async fn get(&self, key: &str) -> pulse_core::Result<Option<Bytes>> {
        self.check(key)?;
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(self.value_key(key));
        let (value,): (Option<Vec<u8>>,) = self.query("GET", key, &pipe).await?;
        Ok(value.map(Bytes::from))
    }

    async fn get_with_ttl(
        &self,
        key: &str,
    ) -> pulse_core::Result<Option<(Bytes, Option<Duration>)>> {
        self.check(key)?;
        let value_key = self.value_key(key);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&value_key).cmd("PTTL").arg(&value_key);
        let (value, pttl): (Option<Vec<u8>>, i64) = self.query("GET", key, &pipe).await?;
        // PTTL is -1 for a key without TTL and -2 for a missing one.
        let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
        Ok(value.map(|value| (Bytes::from(value), ttl)))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> pulse_core::Result<()> {
        self.check(key)?;
        let mut pipe = redis::pipe();
        let set = pipe.cmd("SET").arg(self.value_key(key)).arg(value.as_ref());
        if let Some(ttl) = ttl {
            set.arg("PX").arg(ttl_millis(key, ttl)?);
        }
        set.ignore();
        pipe.cmd("DEL").arg(self.negative_key(key)).ignore();
        self.with_publish(&mut pipe, key);
        Ok(self.query::<()>("SET", key, &pipe).await?)
    }

    async fn delete(&self, key: &str) -> pulse_core::Result<bool> {
        self.check(key)?;
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.value_key(key));
        pipe.cmd("DEL").arg(self.negative_key(key)).ignore();
        self.with_publish(&mut pipe, key);
        let (deleted,): (u64,) = self.query("DEL", key, &pipe).await?;
        Ok(deleted > 0)
    }

    async fn get_many(&self, keys: &[&str]) -> pulse_core::Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        for key in keys {
            self.check(key)?;
        }
        let mut pipe = redis::pipe();
        let mget = pipe.cmd("MGET");
        for key in keys {
            mget.arg(self.value_key(key));
        }
        let (values,): (Vec<Option<Vec<u8>>>,) = self.query("MGET", keys[0], &pipe).await?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    fn invalidations(&self) -> Option<Invalidations> {
        listener::subscribe(&self.inner)
    }
}
