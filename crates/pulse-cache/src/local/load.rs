//! Loading calls: one load per missing key, shared by concurrent callers.

use std::future::Future;
use std::hash::Hash;

use pulse_core::flight::SingleFlight;
use quick_cache::sync::GuardResult;

use super::LocalCache;

impl<K, V, S> LocalCache<K, V, S>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: SingleFlight<K, V>,
{
    /// Returns the value of `key`, running `load` on a miss and caching what
    /// it returns.
    ///
    /// Concurrent callers of one key share one load through the cache's
    /// single-flight. When the caller running the load is cancelled (its
    /// future dropped) or the loader panics, the next waiting caller runs its
    /// own `load`: a dropped request never blocks the key. A loader error is
    /// returned to every waiting caller and nothing is cached.
    pub async fn get_or_load<F, Fut>(&self, key: K, load: F) -> pulse_core::Result<V>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = pulse_core::Result<V>> + Send,
    {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }

        // The load owns a handle to the cache rather than borrowing it, so
        // its future is `Send` for any caller lifetime.
        let this = self.clone();
        let loading_key = key.clone();
        self.inner
            .flight
            .run(key, move || async move {
                // A load that finished just before this call joined, or the
                // one this caller took over from, may have filled the key.
                if let Some(value) = this.lookup(&loading_key) {
                    return Ok(value);
                }
                let result = load().await;
                this.inner.counters.loaded(result.is_ok());
                let value = result?;
                this.insert(loading_key, value.clone())?;
                Ok(value)
            })
            .await
    }
}

impl<K, V, S> LocalCache<K, V, S>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The blocking form of [`get_or_load`](Self::get_or_load), for
    /// synchronous code: concurrent callers of one key wait on one call of
    /// `load`, and if that caller's `load` fails or panics, the next waiter
    /// runs its own.
    ///
    /// This blocks the thread while another thread loads; do not call it
    /// from an async task.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_cache::LocalCache;
    ///
    /// let cache = LocalCache::<u64, u64>::builder().max_entries(10).build().unwrap();
    /// let value = cache.get_or_insert_with(7, || Ok(49)).unwrap();
    /// assert_eq!(value, 49);
    /// assert_eq!(cache.get_or_insert_with(7, || Ok(0)).unwrap(), 49);
    /// ```
    pub fn get_or_insert_with(
        &self,
        key: K,
        load: impl FnOnce() -> pulse_core::Result<V>,
    ) -> pulse_core::Result<V> {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let inner = &*self.inner;
        let mut load = Some(load);
        loop {
            match inner.map.get_value_or_guard(&key, None) {
                GuardResult::Value(entry) => {
                    if let Some(value) = self.lookup(&key) {
                        return Ok(value);
                    }
                    // Expired between the two reads: drop it and retry.
                    drop(entry);
                    continue;
                }
                GuardResult::Guard(guard) => {
                    let Some(load) = load.take() else {
                        unreachable!("the guard is handed out once per call")
                    };
                    let result = load();
                    inner.counters.loaded(result.is_ok());
                    let value = result?;
                    let entry = self.make_entry(&key, value.clone(), None)?;
                    let _ = guard.insert(entry);
                    return Ok(value);
                }
                GuardResult::Timeout => continue,
            }
        }
    }
}
