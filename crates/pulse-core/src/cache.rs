//! The cache-store contract: a remote or local key-value store with TTLs
//! and, where the store has one, a stream of invalidations for near caches.
//!
//! Values are bytes; typed values go through a codec in `pulse-cache`, so
//! that the trait stays object-safe.
//!
//! # Contract for implementors
//!
//! - `set` with a TTL makes the value invisible to `get` once the TTL has
//!   passed; `None` keeps it until it is deleted or evicted.
//! - After `set` or `delete` returns, every later `get` through any handle of
//!   the same store sees the change.
//! - A store that publishes invalidations sends one for every key changed
//!   by another writer, and [`Invalidation::All`] whenever some may have been
//!   missed (a reconnect, a lagging receiver), so that a near cache flushes.
//! - It sends [`Invalidation::Interrupted`] as soon as it knows the stream
//!   stopped (a lost connection), and [`Invalidation::All`] once the stream
//!   is live again, also the first time after subscribing. A near cache keeps
//!   no local copy between the two.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::BoxFuture;
use crate::error::Result;

/// A value with the TTL it has left, `None` when it has none or the store
/// cannot tell: what [`CacheStore::get_with_ttl`] returns.
pub type ValueWithTtl = (Bytes, Option<Duration>);

/// One change that a near cache must apply to its local copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// The value of this key changed or was removed.
    Key(String),
    /// Any key may have changed: drop every local copy. Also sent when the
    /// stream becomes live, at subscribe and after each reconnect.
    All,
    /// The stream stopped and invalidations may be lost: drop every local
    /// copy and keep none until the next [`Invalidation::All`].
    Interrupted,
}

/// A receiver of [`Invalidation`]s from a store.
///
/// A receiver that falls behind the sender gets [`Invalidation::All`] in
/// place of what it missed, never a silent gap.
#[derive(Debug)]
pub struct Invalidations {
    receiver: broadcast::Receiver<Invalidation>,
}

impl Invalidations {
    /// Wraps a broadcast receiver. The store keeps the sender.
    pub fn new(receiver: broadcast::Receiver<Invalidation>) -> Self {
        Invalidations { receiver }
    }

    /// Waits for the next invalidation. Returns `None` once the store has
    /// closed the stream.
    pub async fn recv(&mut self) -> Option<Invalidation> {
        match self.receiver.recv().await {
            Ok(invalidation) => Some(invalidation),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Invalidation::All),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// A key-value store with TTLs, the storage role of a cache.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use bytes::Bytes;
/// use pulse_core::cache::{CacheStore, DynCacheStore};
/// use pulse_core::error::Result;
///
/// #[derive(Default)]
/// struct MapStore(Mutex<HashMap<String, Bytes>>);
///
/// impl CacheStore for MapStore {
///     async fn get(&self, key: &str) -> Result<Option<Bytes>> {
///         Ok(self.0.lock().unwrap().get(key).cloned())
///     }
///     async fn set(&self, key: &str, value: Bytes, _ttl: Option<Duration>) -> Result<()> {
///         self.0.lock().unwrap().insert(key.to_owned(), value);
///         Ok(())
///     }
///     async fn delete(&self, key: &str) -> Result<bool> {
///         Ok(self.0.lock().unwrap().remove(key).is_some())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store: Arc<dyn DynCacheStore> = Arc::new(MapStore::default());
/// store.set("user:1", Bytes::from_static(b"ada"), None).await.unwrap();
/// assert_eq!(store.get("user:1").await.unwrap().as_deref(), Some(&b"ada"[..]));
/// assert!(store.delete("user:1").await.unwrap());
/// # });
/// ```
pub trait CacheStore: Send + Sync {
    /// Reads a value.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Writes a value with an optional TTL.
    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes a value. Returns whether it was present.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Reads a value with its remaining TTL: `None` when the value has no
    /// TTL or the store cannot tell. A near cache keeps its local copy no
    /// longer than that. The default calls [`get`](Self::get) and reports no
    /// TTL; remote stores override it with one round trip.
    fn get_with_ttl(&self, key: &str) -> impl Future<Output = Result<Option<ValueWithTtl>>> + Send {
        async move { Ok(self.get(key).await?.map(|value| (value, None))) }
    }

    /// Reads several values, in the order of `keys`. The default issues one
    /// `get` per key; remote stores override it with one round trip.
    fn get_many(&self, keys: &[&str]) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send {
        async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get(key).await?);
            }
            Ok(values)
        }
    }

    /// Subscribes to the invalidations of this store, or returns `None` when
    /// it has none (a purely local store).
    fn invalidations(&self) -> Option<Invalidations> {
        None
    }
}

/// The object-safe companion of [`CacheStore`], implemented for every store,
/// for stores chosen at run time. `dyn DynCacheStore` implements
/// [`CacheStore`] again, so generic code accepts it.
pub trait DynCacheStore: Send + Sync {
    /// Boxed form of [`CacheStore::get`].
    fn get_boxed<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>>;
    /// Boxed form of [`CacheStore::set`].
    fn set_boxed<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Boxed form of [`CacheStore::delete`].
    fn delete_boxed<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// Boxed form of [`CacheStore::get_with_ttl`].
    fn get_with_ttl_boxed<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<ValueWithTtl>>>;
    /// Boxed form of [`CacheStore::get_many`].
    fn get_many_boxed<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>>;
    /// Same as [`CacheStore::invalidations`].
    fn invalidations_dyn(&self) -> Option<Invalidations>;
}

impl<S: CacheStore> DynCacheStore for S {
    fn get_boxed<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(CacheStore::get(self, key))
    }

    fn set_boxed<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(CacheStore::set(self, key, value, ttl))
    }

    fn delete_boxed<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(CacheStore::delete(self, key))
    }

    fn get_with_ttl_boxed<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<ValueWithTtl>>> {
        Box::pin(CacheStore::get_with_ttl(self, key))
    }

    fn get_many_boxed<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>> {
        Box::pin(CacheStore::get_many(self, keys))
    }

    fn invalidations_dyn(&self) -> Option<Invalidations> {
        CacheStore::invalidations(self)
    }
}

impl CacheStore for dyn DynCacheStore + '_ {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.get_boxed(key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.set_boxed(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.delete_boxed(key).await
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<ValueWithTtl>> {
        self.get_with_ttl_boxed(key).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.get_many_boxed(keys).await
    }

    fn invalidations(&self) -> Option<Invalidations> {
        self.invalidations_dyn()
    }
}

impl<S: CacheStore + ?Sized> CacheStore for Arc<S> {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        (**self).get(key)
    }

    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send {
        (**self).set(key, value, ttl)
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send {
        (**self).delete(key)
    }

    fn get_with_ttl(&self, key: &str) -> impl Future<Output = Result<Option<ValueWithTtl>>> + Send {
        (**self).get_with_ttl(key)
    }

    fn get_many(&self, keys: &[&str]) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send {
        (**self).get_many(keys)
    }

    fn invalidations(&self) -> Option<Invalidations> {
        (**self).invalidations()
    }
}
