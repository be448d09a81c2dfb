//! Loading missing keys: once per process through the single-flight, and
//! once across processes through a lock when one is configured.

use std::future::Future;
use std::sync::Arc;

use pulse_core::cache::CacheStore;
use pulse_core::flight::SingleFlight;
use pulse_core::lock::{DynLock, Lock};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{NearCache, Slot};
use crate::codec::Codec;
use crate::error::short_key;

impl<V, S, C> NearCache<V, S, C>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    S: CacheStore + 'static,
    C: Codec,
{
    /// Returns the value of `key`, loading it with `load` when neither tier
    /// has it, and writing what it returns to the store.
    ///
    /// Concurrent callers in this process share one load; a cancelled
    /// caller hands the load to the next. With a
    /// [cross-process lock](super::NearCacheBuilder::cross_process_lock),
    /// processes share it too: the lock holder loads, the others poll the
    /// store until the value appears. `Ok(None)` from `load` means the key
    /// does not exist; with a [negative TTL](super::NearCacheBuilder::negative_ttl)
    /// that result is kept locally.
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> pulse_core::Result<Option<V>>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = pulse_core::Result<Option<V>>> + Send,
    {
        self.check(key)?;
        if let Some(answer) = self.inner.shared.read(key, true) {
            return Ok(answer);
        }

        let this = self.clone();
        let owned_key = key.to_owned();
        self.inner
            .flight
            .run(key.to_owned(), move || async move {
                this.load_once(&owned_key, load).await
            })
            .await
    }

    async fn load_once<F, Fut>(&self, key: &str, load: F) -> pulse_core::Result<Option<V>>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = pulse_core::Result<Option<V>>> + Send,
    {
        // The caller this one took over from may have filled the key.
        if let Some(answer) = self.inner.shared.read(key, false) {
            return Ok(answer);
        }
        let mark = self.inner.shared.coherence.mark(key);
        if let Some(value) = self.fetch(key, mark).await? {
            return Ok(Some(value));
        }

        match &self.inner.lock {
            None => self.load_and_store(key, load).await,
            Some(lock) => self.load_across(key, load, lock.clone()).await,
        }
    }

    async fn load_and_store<F, Fut>(&self, key: &str, load: F) -> pulse_core::Result<Option<V>>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = pulse_core::Result<Option<V>>> + Send,
    {
        let mark = self.inner.shared.coherence.mark(key);
        let loaded = load().await;
        #[cfg(feature = "metrics")]
        crate::metrics::load(loaded.is_ok());
        match loaded? {
            Some(value) => {
                let bytes = self.encode(key, &value)?;
                self.inner
                    .store
                    .set(key, bytes, self.inner.remote_ttl)
                    .await?;
                // Our own write comes back as an invalidation; until then
                // the copy is right, and after it the next read refetches.
                self.keep(
                    key,
                    Slot::Present(value.clone()),
                    mark,
                    self.inner.remote_ttl,
                );
                Ok(Some(value))
            }
            None => {
                if self.inner.negative {
                    self.keep(key, Slot::Absent, mark, None);
                }
                Ok(None)
            }
        }
    }

    async fn load_across<F, Fut>(
        &self,
        key: &str,
        load: F,
        lock: Arc<dyn DynLock>,
    ) -> pulse_core::Result<Option<V>>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = pulse_core::Result<Option<V>>> + Send,
    {
        let name = format!("pulse-cache:load:{key}");
        let deadline = tokio::time::Instant::now() + self.inner.lock_wait;
        loop {
            match lock.try_acquire(&name, self.inner.lock_ttl).await {
                Ok(Some(lease)) => {
                    // The previous holder may have written it just now.
                    let mark = self.inner.shared.coherence.mark(key);
                    let result = match self.fetch(key, mark).await {
                        Ok(Some(value)) => Ok(Some(value)),
                        Ok(None) => self.load_and_store(key, load).await,
                        Err(err) => Err(err),
                    };
                    if let Err(err) = lock.release(lease).await {
                        tracing::debug!(target: "pulse_cache", key = %short_key(key), error = %err, "loading lock release failed; it expires at its TTL");
                    }
                    return result;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(target: "pulse_cache", key = %short_key(key), error = %err, "loading lock unavailable; loading in this process");
                    return self.load_and_store(key, load).await;
                }
            }

            // Another process is loading: wait for its value.
            tokio::time::sleep(self.inner.lock_poll).await;
            let mark = self.inner.shared.coherence.mark(key);
            if let Some(value) = self.fetch(key, mark).await? {
                return Ok(Some(value));
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(target: "pulse_cache", key = %short_key(key), waited = ?self.inner.lock_wait, "another process's load did not finish in time; loading here");
                return self.load_and_store(key, load).await;
            }
        }
    }
}
