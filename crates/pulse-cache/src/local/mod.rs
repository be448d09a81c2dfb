//! The local tier: an in-process cache bounded by count or weight, with
//! TTL, time-to-idle, per-entry expiry, a removal listener, statistics and
//! loads shared between concurrent callers.

mod builder;
mod entry;
mod load;
mod store;

pub use builder::LocalCacheBuilder;

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use quick_cache::sync::EntryResult;
use quick_cache::{DefaultHashBuilder, Equivalent};

use self::builder::{ExpiryFn, Weigher};
use self::entry::{Entry, EntryWeight, Hooks, NEVER};
use crate::error::{CacheError, short_key};
use crate::flight::Flight;
use crate::listener::{Listener, RemovalCause};
use crate::stats::{CacheStats, Counters};
use crate::time::TimeSource;

type Map<K, V> =
    quick_cache::sync::Cache<K, Entry<V>, EntryWeight, DefaultHashBuilder, Hooks<K, V>>;

/// An in-process cache: the local tier.
///
/// Cloning is cheap and clones share the entries. Reads never block on a
/// loader; see [`get_or_load`](LocalCache::get_or_load) for loading.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_cache::LocalCache;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let users = LocalCache::<u64, String>::builder()
///     .max_entries(10_000)
///     .ttl(Duration::from_secs(60))
///     .build()?;
///
/// users.insert(1, "ada".to_owned())?;
/// assert_eq!(users.get(&1).as_deref(), Some("ada"));
///
/// // A miss runs the loader once, however many callers ask at once.
/// let name = users.get_or_load(2, || async { Ok("grace".to_owned()) }).await?;
/// assert_eq!(name, "grace");
/// assert_eq!(users.get(&2).as_deref(), Some("grace"));
/// # Ok::<(), pulse_core::Error>(())
/// # }).unwrap();
/// ```
pub struct LocalCache<K, V, S = Flight<K, V>> {
    inner: Arc<Inner<K, V, S>>,
}

struct Inner<K, V, S> {
    map: Map<K, V>,
    time: TimeSource,
    capacity: u64,
    weigher: Option<Weigher<K, V>>,
    ttl_nanos: u64,
    idle_nanos: u64,
    expiry: Option<ExpiryFn<K, V>>,
    listener: Option<Listener<K, V>>,
    counters: Arc<Counters>,
    flight: S,
}

impl<K, V, S> Clone for LocalCache<K, V, S> {
    fn clone(&self) -> Self {
        LocalCache {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V, S> std::fmt::Debug for LocalCache<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("capacity", &self.inner.capacity)
            .field("weighted", &self.inner.weigher.is_some())
            .finish_non_exhaustive()
    }
}

impl<K, V> LocalCache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts a builder. A capacity ([`max_entries`](LocalCacheBuilder::max_entries)
    /// or [`max_weight`](LocalCacheBuilder::max_weight)) is required.
    pub fn builder() -> LocalCacheBuilder<K, V> {
        LocalCacheBuilder::new()
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl<K, V, S> LocalCache<K, V, S>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Returns the value of `key` if it is present and alive.
    ///
    /// The hot path: one shard read lock, one hash lookup, one clone of the
    /// value, and a coarse time reading only when the entry can expire.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let inner = &*self.inner;
        match self.lookup(key) {
            Some(value) => {
                inner.counters.hit();
                Some(value)
            }
            None => {
                inner.counters.miss();
                None
            }
        }
    }

    /// Same as [`get`](Self::get) but counts neither a hit nor a miss.
    #[inline]
    pub(crate) fn lookup<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let inner = &*self.inner;
        let entry = inner.map.get(key)?;
        if entry.needs_time() {
            let now = inner.time.now();
            if entry.is_expired(now, inner.idle_nanos) {
                self.expire(key);
                return None;
            }
            entry.touch(now);
        }
        Some(entry.value)
    }

    /// Returns whether `key` has a live entry, without counting a read.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.lookup(key).is_some()
    }

    /// Removes `key` if its entry is dead, and reports it as expired.
    #[cold]
    fn expire<Q>(&self, key: &Q)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let inner = &*self.inner;
        let now = inner.time.now();
        let removed = inner
            .map
            .remove_if(key, |entry| entry.is_expired(now, inner.idle_nanos));
        if let Some((key, entry)) = removed {
            inner.counters.expired();
            self.notify(key, entry.value, RemovalCause::Expired);
        }
    }

    fn notify(&self, key: K, value: V, cause: RemovalCause) {
        if let Some(listener) = &self.inner.listener {
            listener(key, value, cause);
        }
    }

    /// Inserts or replaces the value of `key`, with the cache's TTL.
    ///
    /// Fails with [`ErrorKind::InvalidInput`](pulse_core::ErrorKind) when the
    /// weigher gives the entry more weight than the whole cache holds.
    ///
    // NOTE: quick_cache splits the capacity between shards. An entry that
    // fits the cache but weighs more than one shard's part is dropped at
    // once and reported to the listener as evicted; `estimated_entries`
    // controls the shard count.
    pub fn insert(&self, key: K, value: V) -> pulse_core::Result<()> {
        let ttl = self
            .inner
            .expiry
            .as_ref()
            .and_then(|expiry| expiry(&key, &value))
            .map(nanos);
        self.insert_entry(key, value, ttl)
    }

    /// Inserts or replaces the value of `key`, alive for `ttl`.
    ///
    /// Fails with [`ErrorKind::InvalidInput`](pulse_core::ErrorKind) for a
    /// TTL of zero or an entry heavier than the cache.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> pulse_core::Result<()>
    where
        K: std::fmt::Debug,
    {
        if ttl.is_zero() {
            return Err(CacheError::ZeroTtl {
                key: short_key(&format!("{key:?}")),
            }
            .into());
        }
        self.insert_entry(key, value, Some(nanos(ttl)))
    }

    fn make_entry(&self, key: &K, value: V, ttl: Option<u64>) -> Result<Entry<V>, CacheError> {
        let inner = &*self.inner;
        let weight = match &inner.weigher {
            Some(weigher) => weigher(key, &value).max(1),
            None => 1,
        };
        if weight > inner.capacity {
            return Err(CacheError::TooHeavy {
                weight,
                capacity: inner.capacity,
            });
        }

        let ttl = ttl.unwrap_or(inner.ttl_nanos);
        let needs_time = ttl != NEVER || inner.idle_nanos != NEVER;
        let now = if needs_time { inner.time.now() } else { 0 };
        Ok(Entry {
            value,
            expires_at: if ttl == NEVER {
                NEVER
            } else {
                now.saturating_add(ttl)
            },
            weight,
            last_access: (inner.idle_nanos != NEVER).then(|| Arc::new(AtomicU64::new(now))),
        })
    }

    fn insert_entry(&self, key: K, value: V, ttl: Option<u64>) -> pulse_core::Result<()> {
        let entry = self.make_entry(&key, value, ttl)?;
        let inner = &*self.inner;

        if inner.listener.is_none() {
            inner.map.insert(key, entry);
            return Ok(());
        }

        // With a listener the old value must come back to report it as
        // replaced: swap it out under a placeholder, then fill that.
        match inner.map.entry(&key, None, |_, _| {
            quick_cache::sync::EntryAction::<()>::ReplaceWithGuard
        }) {
            EntryResult::Replaced(guard, old) => {
                let _ = guard.insert(entry);
                self.notify(key, old.value, RemovalCause::Replaced);
            }
            EntryResult::Vacant(guard) => {
                let _ = guard.insert(entry);
            }
            EntryResult::Retained(()) | EntryResult::Removed(..) | EntryResult::Timeout => {}
        }
        Ok(())
    }

    /// Removes `key` and returns its value if it was alive.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let inner = &*self.inner;
        let (key, entry) = inner.map.remove(key)?;
        let alive = !entry.is_expired(inner.time.now(), inner.idle_nanos);
        let value = alive.then(|| entry.value.clone());
        self.notify(key, entry.value, RemovalCause::Removed);
        value
    }

    /// Removes every entry. The listener sees each one as removed.
    pub fn invalidate_all(&self) {
        let inner = &*self.inner;
        if inner.listener.is_none() {
            inner.map.clear();
            return;
        }
        let drained: Vec<(K, Entry<V>)> = inner.map.drain().collect();
        for (key, entry) in drained {
            self.notify(key, entry.value, RemovalCause::Removed);
        }
    }

    /// Removes the entries whose time is up, reporting each as expired.
    ///
    /// Expired entries are otherwise removed when read or when evicted, so
    /// a cache whose keys are never read again holds them until they are
    /// pushed out; call this from a timer to give their memory back sooner.
    pub fn purge_expired(&self) -> usize {
        let inner = &*self.inner;
        let now = inner.time.now();
        let dead = parking_lot::Mutex::new(Vec::new());
        let keep_values = inner.listener.is_some();
        inner.map.retain(|key, entry| {
            let expired = entry.is_expired(now, inner.idle_nanos);
            if expired {
                dead.lock()
                    .push((key.clone(), keep_values.then(|| entry.value.clone())));
            }
            !expired
        });
        let dead = dead.into_inner();
        let count = dead.len();
        for (key, value) in dead {
            inner.counters.expired();
            if let Some(value) = value {
                self.notify(key, value, RemovalCause::Expired);
            }
        }
        count
    }

    /// Returns the number of entries, expired ones not yet removed included.
    pub fn entry_count(&self) -> u64 {
        self.inner.map.len() as u64
    }

    /// Returns the total weight held (the entry count without a weigher).
    pub fn weighted_size(&self) -> u64 {
        self.inner.map.weight()
    }

    /// Returns the capacity: entries, or weight with a weigher.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// Returns a snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        self.inner
            .counters
            .snapshot(self.entry_count(), self.weighted_size())
    }

    /// Returns the clock this cache reads time from.
    pub fn clock(&self) -> &Arc<dyn pulse_core::clock::Clock> {
        self.inner.time.clock()
    }

    /// Returns the approximate memory of the cache's own tables and
    /// entries, in bytes, without what keys and values point to on the heap.
    pub fn memory_used(&self) -> usize {
        self.inner.map.memory_used().total()
    }
}
