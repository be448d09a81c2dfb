//! The near cache: a local tier in front of a remote store, kept coherent
//! by the store's invalidation stream.

mod builder;
mod coherence;
mod load;

pub use builder::NearCacheBuilder;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{self, Either};

use bytes::Bytes;
use pulse_core::cache::{CacheStore, Invalidation, Invalidations};
use pulse_core::lock::DynLock;
use pulse_core::signal::Signal;
use pulse_core::task::Background;
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::coherence::{Coherence, Mark};
use crate::codec::{Codec, Postcard};
use crate::error::{CacheError, check_key, short_key};
use crate::flight::Flight;
use crate::local::LocalCache;
use crate::stats::CacheStats;

/// The result of a fetch or a load for one key.
#[derive(Clone, Debug)]
pub(crate) enum Slot<V> {
    Present(V),
    /// A loader found nothing (negative caching).
    Absent,
}

/// A local tier in front of a remote [`CacheStore`], coherent across
/// instances.
///
/// A hit is served from the local tier. A miss reads the store (one round
/// trip) and keeps a local copy. Writes and deletes go to the store, and
/// every instance drops its local copy when the store's invalidation stream
/// reports the change (Redis client tracking, or pub/sub). While the stream
/// is down, after a reconnect, and when it lags, the local tier is flushed
/// and keeps nothing until the stream is live again, so an instance never
/// serves a value after it processed that value's invalidation.
///
/// A fetch that races an invalidation of its key is not kept (see the
/// crate docs, "Invalidation").
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use pulse_cache::{LocalCache, NearCache};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // Any CacheStore works as the remote tier; production uses RedisStore.
/// let remote = LocalCache::<String, Bytes>::builder().max_entries(1000).build()?;
/// let users = NearCache::<String, _>::builder(remote).max_entries(100).build()?;
///
/// users.set("user:1", &"ada".to_owned()).await?;
/// assert_eq!(users.get("user:1").await?.as_deref(), Some("ada"));
///
/// let loaded = users
///     .get_or_load("user:2", || async { Ok(Some("grace".to_owned())) })
///     .await?;
/// assert_eq!(loaded.as_deref(), Some("grace"));
/// # Ok::<(), pulse_core::Error>(())
/// # }).unwrap();
/// ```
pub struct NearCache<V, S, C = Postcard> {
    inner: Arc<NearInner<V, S, C>>,
}

impl<V, S, C> Clone for NearCache<V, S, C> {
    fn clone(&self) -> Self {
        NearCache {
            inner: self.inner.clone(),
        }
    }
}

impl<V, S: std::fmt::Debug, C> std::fmt::Debug for NearCache<V, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("store", &self.inner.store)
            .field("coherent", &self.inner.shared.coherence.is_live())
            .finish_non_exhaustive()
    }
}

/// The part the listener task shares.
///
/// Values and "known missing" marks live in two tiers, so that a hit reads
/// the value tier exactly as a plain local cache would.
pub(crate) struct Shared<V> {
    local: LocalCache<String, V>,
    negative: Option<LocalCache<String, ()>>,
    coherence: Coherence,
}

impl<V: Clone + Send + Sync + 'static> Shared<V> {
    /// Returns `Some(result)` when a local tier has the key's value or marks
    /// it as missing.
    #[inline]
    fn read(&self, key: &str, counted: bool) -> Option<Option<V>> {
        let value = if counted {
            self.local.get(key)
        } else {
            self.local.lookup(key)
        };
        if value.is_some() {
            return Some(value);
        }
        let negative = self.negative.as_ref()?;
        negative.lookup(key).map(|()| None)
    }

    fn remove(&self, key: &str) {
        self.local.remove(key);
        if let Some(negative) = &self.negative {
            negative.remove(key);
        }
    }

    fn flush(&self) {
        self.local.invalidate_all();
        if let Some(negative) = &self.negative {
            negative.invalidate_all();
        }
    }
}

struct NearInner<V, S, C> {
    shared: Arc<Shared<V>>,
    store: S,
    codec: C,
    remote_ttl: Option<Duration>,
    local_ttl: Option<Duration>,
    negative: bool,
    max_key_len: usize,
    flight: Flight<String, Option<V>>,
    lock: Option<Arc<dyn DynLock>>,
    lock_ttl: Duration,
    lock_wait: Duration,
    lock_poll: Duration,
    background: Background,
}

/// Applies invalidations until the stream ends or the cache is dropped.
pub(crate) async fn listen<V: Clone + Send + Sync + 'static>(
    shared: Arc<Shared<V>>,
    mut invalidations: Invalidations,
    stop: Signal,
) {
    loop {
        let next = tokio::select! {
            _ = stop.fired() => return,
            next = invalidations.recv() => next,
        };
        #[cfg(feature = "metrics")]
        crate::metrics::invalidation(&next);
        match next {
            Some(Invalidation::Key(key)) => {
                shared.coherence.invalidate_key(&key);
                shared.remove(&key);
            }
            Some(Invalidation::All) => {
                shared.coherence.invalidate_all();
                shared.flush();
                shared.coherence.set_live(true);
            }
            Some(Invalidation::Interrupted) => {
                shared.coherence.set_live(false);
                shared.coherence.invalidate_all();
                shared.flush();
                tracing::warn!(target: "pulse_cache", "invalidation stream interrupted; local tier flushed until it is back");
            }
            None => {
                shared.coherence.set_live(false);
                shared.coherence.invalidate_all();
                shared.flush();
                tracing::warn!(target: "pulse_cache", "invalidation stream closed; the near cache now reads through to the store");
                return;
            }
        }
    }
}

impl<V, S> NearCache<V, S>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    S: CacheStore + 'static,
{
    /// Starts a builder over `store`.
    pub fn builder(store: S) -> NearCacheBuilder<V, S> {
        NearCacheBuilder::new(store)
    }
}

impl<V, S, C> NearCache<V, S, C>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    S: CacheStore + 'static,
    C: Codec,
{
    fn check(&self, key: &str) -> Result<(), CacheError> {
        check_key(key, self.inner.max_key_len)
    }

    /// Returns the local copy of `key`, without a remote call. `Ok(None)`
    /// from [`get`](Self::get) and `None` here differ: this one only means
    /// that no local copy exists.
    #[inline]
    pub fn get_local(&self, key: &str) -> Option<V> {
        self.inner.shared.local.get(key)
    }

    /// Reads `key`: from the local tier, else from the store (one round
    /// trip), keeping a local copy unless an invalidation raced the read.
    ///
    /// A stored value that does not decode is deleted from the store and
    /// reported as an error of kind [`Codec`](pulse_core::ErrorKind::Codec)
    /// that names the key. The next read then finds nothing.
    #[inline]
    pub fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = pulse_core::Result<Option<V>>> + Send + 'a {
        // A hit returns before any future is built, so it costs what a
        // local-tier hit costs. Only a miss boxes the remote read. A key over
        // the length limit is never stored, so checking it on a miss is
        // enough.
        match self.inner.shared.read(key, true) {
            Some(value) => Either::Left(future::ready(Ok(value))),
            None => Either::Right(Box::pin(async move {
                self.check(key)?;
                let mark = self.inner.shared.coherence.mark(key);
                self.fetch(key, mark).await
            })),
        }
    }

    /// Reads the store and keeps a local copy if `mark` still holds.
    async fn fetch(&self, key: &str, mark: Mark) -> pulse_core::Result<Option<V>> {
        let Some((bytes, remote_ttl)) = self.inner.store.get_with_ttl(key).await? else {
            return Ok(None);
        };
        let value = self.decode(key, &bytes).await?;
        self.keep(key, Slot::Present(value.clone()), mark, remote_ttl);
        Ok(Some(value))
    }

    async fn decode(&self, key: &str, bytes: &[u8]) -> pulse_core::Result<V> {
        match self.inner.codec.decode::<V>(bytes) {
            Ok(value) => Ok(value),
            Err(source) => {
                // A value that never decodes must not be served (or fail)
                // forever: remove it so the next read loads a fresh one.
                tracing::warn!(target: "pulse_cache", key = %short_key(key), codec = self.inner.codec.name(), error = %source, "undecodable cached value removed");
                self.invalidate_local(key);
                if let Err(err) = self.inner.store.delete(key).await {
                    tracing::warn!(target: "pulse_cache", key = %short_key(key), error = %err, "could not remove the undecodable value");
                }
                Err(CacheError::Decode {
                    key: short_key(key),
                    codec: self.inner.codec.name(),
                    source,
                }
                .into())
            }
        }
    }

    /// Stores a local copy if no invalidation of `key` was processed since
    /// `mark`, for no longer than the value has left in the store.
    fn keep(&self, key: &str, slot: Slot<V>, mark: Mark, remote_ttl: Option<Duration>) {
        let shared = &*self.inner.shared;
        if !shared.coherence.still_valid(mark) {
            return;
        }
        let local_ttl = match (remote_ttl, self.inner.local_ttl) {
            (Some(remote), Some(local)) => Some(remote.min(local)),
            (remote, local) => remote.or(local),
        };
        let inserted = match (slot, &shared.negative) {
            // A negative entry lives for the negative TTL of its tier.
            (Slot::Absent, Some(negative)) => negative.insert(key.to_owned(), ()),
            (Slot::Absent, None) => return,
            (Slot::Present(_), _) if local_ttl.is_some_and(|ttl| ttl.is_zero()) => return,
            (Slot::Present(value), _) => match local_ttl {
                Some(ttl) => shared.local.insert_with_ttl(key.to_owned(), value, ttl),
                None => shared.local.insert(key.to_owned(), value),
            },
        };
        if inserted.is_err() {
            return;
        }
        // An invalidation processed between the check and the insert must
        // still win: look again and undo.
        if !shared.coherence.still_valid(mark) {
            shared.remove(key);
        }
    }

    fn encode(&self, key: &str, value: &V) -> pulse_core::Result<Bytes> {
        self.inner
            .codec
            .encode(value)
            .map(Bytes::from)
            .map_err(|source| {
                CacheError::Encode {
                    key: short_key(key),
                    codec: self.inner.codec.name(),
                    source,
                }
                .into()
            })
    }

    /// Writes `value` to the store (with the remote TTL, if set) and drops
    /// the local copy; other instances drop theirs when the invalidation
    /// reaches them.
    pub async fn set(&self, key: &str, value: &V) -> pulse_core::Result<()> {
        self.check(key)?;
        let bytes = self.encode(key, value)?;
        self.invalidate_local(key);
        let result = self
            .inner
            .store
            .set(key, bytes, self.inner.remote_ttl)
            .await;
        self.invalidate_local(key);
        result
    }

    /// Deletes `key` from the store and drops the local copy. Returns
    /// whether the store held it.
    pub async fn delete(&self, key: &str) -> pulse_core::Result<bool> {
        self.check(key)?;
        self.invalidate_local(key);
        let result = self.inner.store.delete(key).await;
        self.invalidate_local(key);
        result
    }

    /// Drops the local copy of `key` only.
    pub fn invalidate_local(&self, key: &str) {
        let shared = &*self.inner.shared;
        shared.coherence.invalidate_key(key);
        shared.remove(key);
    }

    /// Returns whether the invalidation stream is live, so that local
    /// copies are kept. Always true for a store without a stream.
    pub fn is_coherent(&self) -> bool {
        self.inner.shared.coherence.is_live()
    }

    /// Waits up to `timeout` for the invalidation stream to be live.
    /// Returns whether it is.
    pub async fn wait_coherent(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_coherent() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Returns the local tier's counters.
    pub fn local_stats(&self) -> CacheStats {
        self.inner.shared.local.stats()
    }

    /// Returns the number of local copies.
    pub fn local_entry_count(&self) -> u64 {
        self.inner.shared.local.entry_count()
    }

    /// Returns the remote store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Stops the invalidation listener and waits for it. The cache then
    /// reads through to the store.
    pub async fn shutdown(&self) {
        self.inner.background.shutdown().await;
        let shared = &*self.inner.shared;
        shared.coherence.set_live(false);
        shared.coherence.invalidate_all();
        shared.flush();
    }
}

/// A near cache of bytes is itself a [`CacheStore`], so the conformance
/// suite and code written against the trait can use it.
impl<S, C> CacheStore for NearCache<Bytes, S, C>
where
    S: CacheStore + 'static,
    C: Codec,
{
    async fn get(&self, key: &str) -> pulse_core::Result<Option<Bytes>> {
        NearCache::get(self, key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> pulse_core::Result<()> {
        self.check(key)?;
        if ttl.is_some_and(|ttl| ttl.is_zero()) {
            return Err(CacheError::ZeroTtl {
                key: short_key(key),
            }
            .into());
        }
        let bytes = self.encode(key, &value)?;
        self.invalidate_local(key);
        let result = self
            .inner
            .store
            .set(key, bytes, ttl.or(self.inner.remote_ttl))
            .await;
        self.invalidate_local(key);
        result
    }

    async fn delete(&self, key: &str) -> pulse_core::Result<bool> {
        NearCache::delete(self, key).await
    }
}
