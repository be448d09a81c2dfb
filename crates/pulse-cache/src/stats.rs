//! Hit, miss and eviction counters.
//!
//! Counting must not cost more than the lookup it counts, so hits and misses
//! go to per-thread stripes on their own cache lines, updated with a plain
//! load and store rather than a locked instruction. Threads get stripe
//! numbers round robin, so two threads share a stripe only once the process
//! has started more than [`STRIPES`] threads that read caches. Two such
//! threads reading the same cache at the same instant may lose an increment,
//! so the figures are approximate in that case.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Number of counter stripes per cache.
pub(crate) const STRIPES: usize = 64;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The counters of one cache.
#[derive(Debug)]
pub(crate) struct Counters {
    stripes: Box<[Stripe]>,
    evictions: AtomicU64,
    expirations: AtomicU64,
    loads: AtomicU64,
    load_failures: AtomicU64,
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            loads: AtomicU64::new(0),
            load_failures: AtomicU64::new(0),
        }
    }

    #[inline]
    fn stripe(&self) -> &Stripe {
        let index = STRIPE.with(|index| *index);
        &self.stripes[index]
    }

    #[inline]
    pub(crate) fn hit(&self) {
        bump(&self.stripe().hits);
    }

    #[inline]
    pub(crate) fn miss(&self) {
        bump(&self.stripe().misses);
    }

    pub(crate) fn evicted(&self) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn expired(&self) {
        self.expirations.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn loaded(&self, ok: bool) {
        self.loads.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.load_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, entries: u64, weight: u64) -> CacheStats {
        let (hits, misses) = self.stripes.iter().fold((0u64, 0u64), |(h, m), s| {
            (
                h.wrapping_add(s.hits.load(Ordering::Relaxed)),
                m.wrapping_add(s.misses.load(Ordering::Relaxed)),
            )
        });
        CacheStats {
            hits,
            misses,
            evictions: self.evictions.load(Ordering::Relaxed),
            expirations: self.expirations.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            load_failures: self.load_failures.load(Ordering::Relaxed),
            entries,
            weight,
        }
    }
}

/// A snapshot of a cache's counters.
///
/// # Examples
///
/// ```
/// use pulse_cache::LocalCache;
///
/// let cache = LocalCache::<u64, u64>::builder().max_entries(100).build().unwrap();
/// cache.insert(1, 10).unwrap();
/// assert_eq!(cache.get(&1), Some(10));
/// assert_eq!(cache.get(&2), None);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses), (1, 1));
/// assert_eq!(stats.hit_ratio(), 0.5);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing, or an expired entry.
    pub misses: u64,
    /// Entries removed to make room.
    pub evictions: u64,
    /// Entries removed because their TTL or idle time passed.
    pub expirations: u64,
    /// Loader runs (`get_or_load` and friends).
    pub loads: u64,
    /// Loader runs that returned an error.
    pub load_failures: u64,
    /// Entries held when the snapshot was taken.
    pub entries: u64,
    /// Total weight held when the snapshot was taken.
    pub weight: u64,
}

impl CacheStats {
    /// Returns hits ÷ (hits + misses), or 0 before the first read.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits.saturating_add(self.misses);
        if reads == 0 {
            return 0.0;
        }
        self.hits as f64 / reads as f64
    }
}
