//! Stores of handled message ids, for the [`deduplicate`](super::deduplicate)
//! middleware.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::BoxFuture;
use pulse_core::clock::{Clock, MonoTime, SystemClock};
use pulse_core::error::Result;

/// Remembers which message ids were handled, for a time.
///
/// # Contract for implementors
///
/// [`claim`](DedupStore::claim) is atomic: of two concurrent claims of the
/// same key, at most one returns `true`, also across processes where the
/// store is shared.
pub trait DedupStore: Send + Sync + 'static {
    /// Records `key` for `ttl`. Returns `true` when it was not recorded yet.
    fn claim<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>>;

    /// Forgets `key`, so that the next claim succeeds.
    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// A [`DedupStore`] in process memory, for one process.
///
/// Expired ids are swept when the number of entries doubles since the last
/// sweep, so memory stays proportional to the ids seen within one TTL.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_mq::router::{DedupStore, MemoryDedupStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryDedupStore::new();
/// assert!(store.claim("m-1", Duration::from_secs(60)).await?);
/// assert!(!store.claim("m-1", Duration::from_secs(60)).await?);
/// # Ok::<(), pulse_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct MemoryDedupStore {
    clock: Arc<dyn Clock>,
    state: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    expiry: HashMap<String, MonoTime>,
    sweep_at: usize,
}

impl Default for MemoryDedupStore {
    fn default() -> Self {
        MemoryDedupStore::new()
    }
}

impl MemoryDedupStore {
    /// Creates an empty store on the system clock.
    pub fn new() -> Self {
        MemoryDedupStore::with_clock(Arc::new(SystemClock::new()))
    }

    /// Creates an empty store that reads expiry from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryDedupStore {
            clock,
            state: Mutex::new(Seen {
                expiry: HashMap::new(),
                sweep_at: 1024,
            }),
        }
    }

    /// Returns the number of ids held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().expiry.len()
    }

    /// Returns whether the store contains no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DedupStore for MemoryDedupStore {
    fn claim<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        let now = self.clock.now();
        let mut seen = self.lock();
        if seen.expiry.len() >= seen.sweep_at {
            seen.expiry.retain(|_, until| *until > now);
            seen.sweep_at = (seen.expiry.len() * 2).max(1024);
        }
        let first = match seen.expiry.get(key) {
            Some(until) if *until > now => false,
            _ => {
                seen.expiry.insert(key.to_owned(), now.saturating_add(ttl));
                true
            }
        };
        Box::pin(std::future::ready(Ok(first)))
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        self.lock().expiry.remove(key);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_core::clock::ManualClock;

    #[tokio::test]
    async fn expired_ids_are_claimed_again() {
        let clock = Arc::new(ManualClock::new());
        let store = MemoryDedupStore::with_clock(clock.clone());
        assert!(store.claim("a", Duration::from_secs(1)).await.unwrap());
        assert!(!store.claim("a", Duration::from_secs(1)).await.unwrap());
        clock.advance(Duration::from_secs(1));
        assert!(store.claim("a", Duration::from_secs(1)).await.unwrap());
        store.release("a").await.unwrap();
        assert!(store.claim("a", Duration::from_secs(1)).await.unwrap());
    }

    #[tokio::test]
    async fn sweep_bounds_memory() {
        let clock = Arc::new(ManualClock::new());
        let store = MemoryDedupStore::with_clock(clock.clone());
        for i in 0..5000 {
            store
                .claim(&i.to_string(), Duration::from_secs(1))
                .await
                .unwrap();
            clock.advance(Duration::from_millis(1));
        }
        assert!(store.len() < 3000, "{} ids held", store.len());
    }
}
