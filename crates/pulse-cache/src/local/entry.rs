//! What the local tier stores per key, and the hooks it gives quick_cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::{Lifecycle, Weighter};

use crate::listener::{Listener, RemovalCause};
use crate::stats::Counters;
use crate::time::TimeSource;

/// Expiry instant meaning "never".
pub(crate) const NEVER: u64 = u64::MAX;

/// One stored value with its expiry data.
///
/// Without time-to-idle the entry is plain data, so a hit copies the value
/// and two integers. With time-to-idle the last-access time lives behind an
/// `Arc`, shared by the copies, so a hit can move it forward.
#[derive(Clone, Debug)]
pub(crate) struct Entry<V> {
    pub(crate) value: V,
    /// Monotonic nanoseconds after which the entry is dead, or [`NEVER`].
    pub(crate) expires_at: u64,
    /// The weight computed at insert, so it never changes while stored.
    pub(crate) weight: u64,
    /// Last access in monotonic nanoseconds, when time-to-idle is on.
    pub(crate) last_access: Option<Arc<AtomicU64>>,
}

impl<V> Entry<V> {
    /// Returns whether the entry is dead at `now`, given the idle limit.
    #[inline]
    pub(crate) fn is_expired(&self, now: u64, idle_nanos: u64) -> bool {
        if now >= self.expires_at {
            return true;
        }
        match &self.last_access {
            Some(last) => now.saturating_sub(last.load(Ordering::Relaxed)) >= idle_nanos,
            None => false,
        }
    }

    /// Records an access at `now`, for time-to-idle.
    #[inline]
    pub(crate) fn touch(&self, now: u64) {
        if let Some(last) = &self.last_access {
            last.store(now, Ordering::Relaxed);
        }
    }

    /// Returns whether reading this entry needs the time.
    #[inline]
    pub(crate) fn needs_time(&self) -> bool {
        self.expires_at != NEVER || self.last_access.is_some()
    }
}

/// Reads the weight stored in the entry.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EntryWeight;

impl<K, V> Weighter<K, Entry<V>> for EntryWeight {
    #[inline]
    fn weight(&self, _key: &K, entry: &Entry<V>) -> u64 {
        entry.weight
    }
}

/// Counts evictions and calls the listener once quick_cache lets go of its
/// locks.
pub(crate) struct Hooks<K, V> {
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) time: TimeSource,
    pub(crate) idle_nanos: u64,
}

impl<K, V> Clone for Hooks<K, V> {
    fn clone(&self) -> Self {
        Hooks {
            listener: self.listener.clone(),
            counters: self.counters.clone(),
            time: self.time.clone(),
            idle_nanos: self.idle_nanos,
        }
    }
}

/// The evictions of one quick_cache request, reported when it ends.
pub(crate) type Evicted<K, V> = Vec<(K, V, RemovalCause)>;

impl<K, V> Lifecycle<K, Entry<V>> for Hooks<K, V> {
    type RequestState = Evicted<K, V>;

    #[inline]
    fn begin_request(&self) -> Self::RequestState {
        Vec::new()
    }

    fn on_evict(&self, state: &mut Self::RequestState, key: K, entry: Entry<V>) {
        // An entry pushed out after its expiry counts as expired: that is
        // what its owner cares about.
        let cause = if entry.is_expired(self.time.now(), self.idle_nanos) {
            self.counters.expired();
            RemovalCause::Expired
        } else {
            self.counters.evicted();
            RemovalCause::Evicted
        };
        if self.listener.is_some() {
            state.push((key, entry.value, cause));
        }
    }

    fn end_request(&self, state: Self::RequestState) {
        if let Some(listener) = &self.listener {
            for (key, value, cause) in state {
                listener(key, value, cause);
            }
        }
    }
}
