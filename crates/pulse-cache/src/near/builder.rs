//! Configuration of the near cache.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use pulse_core::cache::CacheStore;
use pulse_core::clock::Clock;
use pulse_core::error::ConfigError;
use pulse_core::lock::DynLock;
use pulse_core::task::Background;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::coherence::Coherence;
use super::{NearCache, NearInner, Shared, listen};
use crate::codec::{Codec, Postcard};
use crate::error::CacheError;
use crate::flight::Flight;
use crate::local::LocalCache;

/// Builds a [`NearCache`]. Start from [`NearCache::builder`].
pub struct NearCacheBuilder<V, S, C = Postcard> {
    store: S,
    codec: C,
    max_entries: u64,
    local_ttl: Option<Duration>,
    remote_ttl: Option<Duration>,
    negative_ttl: Option<Duration>,
    max_key_len: usize,
    clock: Option<Arc<dyn Clock>>,
    lock: Option<Arc<dyn DynLock>>,
    lock_ttl: Duration,
    lock_wait: Duration,
    lock_poll: Duration,
    _value: PhantomData<fn() -> V>,
}

impl<V, S> NearCacheBuilder<V, S> {
    pub(super) fn new(store: S) -> Self {
        NearCacheBuilder {
            store,
            codec: Postcard,
            max_entries: 10_000,
            local_ttl: Some(Duration::from_secs(300)),
            remote_ttl: None,
            negative_ttl: None,
            max_key_len: crate::DEFAULT_MAX_KEY_LEN,
            clock: None,
            lock: None,
            lock_ttl: Duration::from_secs(10),
            lock_wait: Duration::from_secs(5),
            lock_poll: Duration::from_millis(10),
            _value: PhantomData,
        }
    }
}

impl<V, S, C> NearCacheBuilder<V, S, C> {
    /// Encodes values with `codec` instead of [`Postcard`].
    pub fn codec<C2: Codec>(self, codec: C2) -> NearCacheBuilder<V, S, C2> {
        NearCacheBuilder {
            store: self.store,
            codec,
            max_entries: self.max_entries,
            local_ttl: self.local_ttl,
            remote_ttl: self.remote_ttl,
            negative_ttl: self.negative_ttl,
            max_key_len: self.max_key_len,
            clock: self.clock,
            lock: self.lock,
            lock_ttl: self.lock_ttl,
            lock_wait: self.lock_wait,
            lock_poll: self.lock_poll,
            _value: PhantomData,
        }
    }

    /// Bounds the local tier by entry count. Defaults to 10,000.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = entries;
        self
    }

    /// Sets how long a local copy lives at most; never longer than the
    /// value has left in the store. It bounds staleness when the store has
    /// no invalidation stream. Defaults to 5 minutes.
    pub fn local_ttl(mut self, ttl: Duration) -> Self {
        self.local_ttl = Some(ttl);
        self
    }

    /// Sets the TTL of values written to the remote store. Defaults to none.
    pub fn remote_ttl(mut self, ttl: Duration) -> Self {
        self.remote_ttl = Some(ttl);
        self
    }

    /// Remembers for `ttl` that a loader found nothing, so a missing key
    /// does not reach the loader on every call. Off by default.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Sets the longest key accepted, in bytes. Defaults to 1024.
    pub fn max_key_len(mut self, max: usize) -> Self {
        self.max_key_len = max;
        self
    }

    /// Times the local tier with `clock` (a `ManualClock` in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Loads each missing key once across processes: the caller that takes
    /// `lock` on the key loads, the others poll the remote store for up to
    /// [`lock_wait`](Self::lock_wait) and then load themselves. Any
    /// [`Lock`](pulse_core::lock::Lock) implementation works.
    pub fn cross_process_lock(mut self, lock: Arc<dyn DynLock>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Sets the TTL of the loading lock: the longest a load may take before
    /// another process may start one. Defaults to 10 s.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Sets how long callers wait for another process's load. Defaults to
    /// 5 s.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }
}

impl<V, S, C> NearCacheBuilder<V, S, C>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    S: CacheStore + 'static,
    C: Codec,
{
    /// Builds the near cache and starts listening to the store's
    /// invalidations. Must run inside a tokio runtime when the store has an
    /// invalidation stream.
    pub fn build(self) -> pulse_core::Result<NearCache<V, S, C>> {
        let check = |field: &'static str, value: Option<Duration>| match value {
            Some(d) if d.is_zero() => Err(CacheError::from(ConfigError::new(
                field,
                "0s",
                "use at least 1 ms, or leave it unset",
            ))),
            _ => Ok(()),
        };
        check("remote_ttl", self.remote_ttl)?;
        check("negative_ttl", self.negative_ttl)?;
        check("lock_ttl", Some(self.lock_ttl))?;
        if self.max_key_len == 0 {
            return Err(CacheError::from(ConfigError::new(
                "max_key_len",
                0,
                "use at least 1 byte",
            ))
            .into());
        }

        let mut local = LocalCache::<String, V>::builder().max_entries(self.max_entries);
        if let Some(ttl) = self.local_ttl {
            local = local.ttl(ttl);
        }
        let negative = match self.negative_ttl {
            Some(ttl) => {
                let mut negative = LocalCache::<String, ()>::builder()
                    .max_entries(self.max_entries)
                    .ttl(ttl);
                if let Some(clock) = &self.clock {
                    negative = negative.clock(clock.clone());
                }
                Some(negative.build()?)
            }
            None => None,
        };
        if let Some(clock) = self.clock {
            local = local.clock(clock);
        }
        let local = local.build()?;

        let invalidations = self.store.invalidations();
        let shared = Arc::new(Shared {
            local,
            negative,
            coherence: Coherence::new(invalidations.is_none()),
        });
        let background = Background::new("pulse-cache-near");
        if let Some(invalidations) = invalidations {
            let listener = shared.clone();
            background.spawn("invalidations", move |stop| {
                listen(listener, invalidations, stop)
            })?;
        }

        Ok(NearCache {
            inner: Arc::new(NearInner {
                shared,
                store: self.store,
                codec: self.codec,
                remote_ttl: self.remote_ttl,
                local_ttl: self.local_ttl,
                negative: self.negative_ttl.is_some(),
                max_key_len: self.max_key_len,
                flight: Flight::new(),
                lock: self.lock,
                lock_ttl: self.lock_ttl,
                lock_wait: self.lock_wait,
                lock_poll: self.lock_poll,
                background,
            }),
        })
    }
}
