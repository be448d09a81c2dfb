//! Helpers shared by the Redis-backed tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pulse_cache::redis::{InvalidationMode, RedisStore};
use pulse_core::clock::{Clock, SystemClock};
use pulse_core::error::{Error, ErrorKind, Result};
use pulse_core::lock::{Lease, Lock};

/// A store on `url` under a fresh prefix.
pub(crate) fn store(url: &str, prefix: &str, mode: InvalidationMode) -> RedisStore {
    RedisStore::builder()
        .url(url)
        .prefix(prefix)
        .invalidation(mode)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("valid store")
}

/// A single-node lock over `SET NX PX`, enough for the cross-process load
/// test; it issues no fencing tokens and does not extend.
pub(crate) struct NxLock {
    pub(crate) store: RedisStore,
    pub(crate) clock: SystemClock,
    pub(crate) next: AtomicU64,
}

impl NxLock {
    pub(crate) fn new(store: RedisStore) -> Self {
        NxLock {
            store,
            clock: SystemClock::new(),
            next: AtomicU64::new(0),
        }
    }

    fn name(&self, key: &str) -> String {
        self.store.lock_key(key)
    }
}

fn unavailable(err: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unavailable, err.to_string())
}

impl Lock for NxLock {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        let owner = format!(
            "{}-{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::SeqCst)
        );
        let mut conn = self.store.pool().get().await.map_err(unavailable)?;
        let set: Option<String> = deadpool_redis::redis::cmd("SET")
            .arg(self.name(key))
            .arg(&owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(set.map(|_| Lease::new(key, owner, None, self.clock.now() + ttl)))
    }

    async fn acquire(&self, key: &str, ttl: Duration, wait: Duration) -> Result<Lease> {
        let deadline = self.clock.now() + wait;
        loop {
            if let Some(lease) = self.try_acquire(key, ttl).await? {
                return Ok(lease);
            }
            if self.clock.now() >= deadline {
                return Err(Error::new(ErrorKind::TimedOut, "lock busy"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn extend(&self, _lease: &Lease, _ttl: Duration) -> Result<()> {
        Err(Error::new(
            ErrorKind::Other,
            "not supported by this test lock",
        ))
    }

    async fn release(&self, lease: Lease) -> Result<()> {
        let mut conn = self.store.pool().get().await.map_err(unavailable)?;
        let script = deadpool_redis::redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
        );
        let _: i64 = script
            .key(self.name(lease.key()))
            .arg(lease.owner())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
