//! The local tier as a [`CacheStore`] of bytes.

use std::time::Duration;

use bytes::Bytes;
use pulse_core::cache::CacheStore;

use super::LocalCache;

/// A local tier of bytes is a cache store with no invalidation stream: the
/// in-process backend of code written against [`CacheStore`].
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use pulse_cache::LocalCache;
/// use pulse_core::cache::CacheStore;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = LocalCache::<String, Bytes>::builder().max_entries(100).build()?;
/// CacheStore::set(&store, "k", Bytes::from_static(b"v"), None).await?;
/// assert_eq!(CacheStore::get(&store, "k").await?.as_deref(), Some(&b"v"[..]));
/// # Ok::<(), pulse_core::Error>(())
/// # }).unwrap();
/// ```
impl<S: Send + Sync + 'static> CacheStore for LocalCache<String, Bytes, S> {
    async fn get(&self, key: &str) -> pulse_core::Result<Option<Bytes>> {
        Ok(LocalCache::get(self, key))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> pulse_core::Result<()> {
        match ttl {
            Some(ttl) => self.insert_with_ttl(key.to_owned(), value, ttl),
            None => self.insert(key.to_owned(), value),
        }
    }

    async fn delete(&self, key: &str) -> pulse_core::Result<bool> {
        Ok(self.remove(key).is_some())
    }
}
