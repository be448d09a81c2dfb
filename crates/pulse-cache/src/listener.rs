//! Removal notifications.

use std::fmt;
use std::sync::Arc;

/// Why an entry left the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Its TTL, idle time or per-entry expiry passed.
    Expired,
    /// It was removed to make room (capacity or weight bound).
    Evicted,
    /// A new value was inserted under its key.
    Replaced,
    /// It was removed by a call: `remove`, `invalidate_all`, or an
    /// invalidation from the remote store.
    Removed,
}

impl RemovalCause {
    /// Returns whether the cache removed the entry on its own (expiry or
    /// eviction) rather than because of a call.
    pub fn was_evicted(self) -> bool {
        matches!(self, RemovalCause::Expired | RemovalCause::Evicted)
    }

    /// Returns the cause as a lower-case word, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalCause::Expired => "expired",
            RemovalCause::Evicted => "evicted",
            RemovalCause::Replaced => "replaced",
            RemovalCause::Removed => "removed",
        }
    }
}

impl fmt::Display for RemovalCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The function a cache calls for each removed entry.
///
/// It runs on the thread that caused the removal, after the cache has
/// released its internal locks, so it may call back into the cache. Keep it
/// short: an insert that evicts waits for it.
pub type Listener<K, V> = Arc<dyn Fn(K, V, RemovalCause) + Send + Sync>;
