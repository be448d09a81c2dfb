//! Keeping the local copies coherent with the remote store.
//!
//! A fetch from the remote store can race an invalidation of the same key:
//! the fetch reads the old value, the invalidation is processed, then the
//! fetch stores the old value locally, where it would stay until its TTL.
//! To prevent that, a fetch takes a [`Mark`] before it sends its read, and
//! stores its result only if no invalidation of the key (or of everything)
//! was processed since.
//!
//! Invalidations bump a counter in one of [`STRIPES`] stripes chosen by the
//! key's hash, then remove the key. A fetch stores its value, then checks the
//! counters again and removes what it stored if they moved, so whichever
//! side runs second detects the other. Two keys sharing a stripe only cost an
//! occasional skipped store, never a stale read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use quick_cache::DefaultHashBuilder;

/// Number of invalidation counters.
pub(crate) const STRIPES: usize = 1024;

/// The invalidation state shared by a near cache and its listener task.
pub(crate) struct Coherence {
    stripes: Box<[AtomicU64]>,
    epoch: AtomicU64,
    /// Whether the invalidation stream is live; no local copy is kept while
    /// it is not.
    live: AtomicBool,
    hasher: DefaultHashBuilder,
}

/// The counters a fetch read before it sent its request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    stripe: usize,
    count: u64,
    epoch: u64,
    live: bool,
}

impl Coherence {
    pub(crate) fn new(live: bool) -> Self {
        Coherence {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(live),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn stripe(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % STRIPES
    }

    /// Takes a mark before a fetch of `key`.
    pub(crate) fn mark(&self, key: &str) -> Mark {
        let stripe = self.stripe(key);
        Mark {
            stripe,
            count: self.stripes[stripe].load(Ordering::SeqCst),
            epoch: self.epoch.load(Ordering::SeqCst),
            live: self.live.load(Ordering::SeqCst),
        }
    }

    /// Returns whether nothing invalidated the marked key since the mark.
    pub(crate) fn still_valid(&self, mark: Mark) -> bool {
        mark.live
            && self.live.load(Ordering::SeqCst)
            && self.epoch.load(Ordering::SeqCst) == mark.epoch
            && self.stripes[mark.stripe].load(Ordering::SeqCst) == mark.count
    }

    /// Records an invalidation of `key`. Call it before removing the key.
    pub(crate) fn invalidate_key(&self, key: &str) {
        self.stripes[self.stripe(key)].fetch_add(1, Ordering::SeqCst);
    }

    /// Records an invalidation of every key. Call it before flushing.
    pub(crate) fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Sets whether the stream is live.
    pub(crate) fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
    }

    /// Returns whether the stream is live.
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }
}
