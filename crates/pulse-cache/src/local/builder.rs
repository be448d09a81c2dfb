//! Configuration of the local tier.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use pulse_core::clock::{Clock, FastClock};
use pulse_core::error::ConfigError;
use quick_cache::{DefaultHashBuilder, OptionsBuilder};

use super::entry::{EntryWeight, Hooks};
use super::{Inner, LocalCache};
use crate::error::CacheError;
use crate::flight::Flight;
use crate::listener::{Listener, RemovalCause};
use crate::stats::Counters;
use crate::time::TimeSource;

/// A weigher: the cost of one entry against the capacity.
pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;
/// A per-entry expiry: the TTL of one entry, or `None` for the default.
pub(crate) type ExpiryFn<K, V> = Arc<dyn Fn(&K, &V) -> Option<Duration> + Send + Sync>;

/// Builds a [`LocalCache`]. Start from [`LocalCache::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_cache::LocalCache;
///
/// // At most 64 KiB of values, each alive 5 minutes, or 1 minute unread.
/// let cache = LocalCache::<String, Vec<u8>>::builder()
///     .max_weight(64 * 1024)
///     .weigher(|_key, value: &Vec<u8>| value.len() as u64)
///     .ttl(Duration::from_secs(300))
///     .time_to_idle(Duration::from_secs(60))
///     .build()
///     .unwrap();
/// cache.insert("a".to_owned(), vec![0; 100]).unwrap();
/// assert_eq!(cache.weighted_size(), 100);
/// ```
pub struct LocalCacheBuilder<K, V, S = Flight<K, V>> {
    capacity: Option<(u64, bool)>,
    estimated_entries: Option<usize>,
    weigher: Option<Weigher<K, V>>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    expiry: Option<ExpiryFn<K, V>>,
    listener: Option<Listener<K, V>>,
    time: Option<TimeSource>,
    flight: S,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> LocalCacheBuilder<K, V> {
    pub(super) fn new() -> Self {
        LocalCacheBuilder {
            capacity: None,
            estimated_entries: None,
            weigher: None,
            ttl: None,
            tti: None,
            expiry: None,
            listener: None,
            time: None,
            flight: Flight::new(),
            _types: PhantomData,
        }
    }
}

impl<K, V, S> LocalCacheBuilder<K, V, S> {
    /// Bounds the cache by entry count.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.capacity = Some((entries, false));
        self
    }

    /// Bounds the cache by total weight, as computed by
    /// [`weigher`](Self::weigher).
    pub fn max_weight(mut self, weight: u64) -> Self {
        self.capacity = Some((weight, true));
        self
    }

    /// Tells the cache how many entries to expect when it is bounded by
    /// weight, so that it sizes its tables and shards well. Defaults to the
    /// weight capacity ÷ 64.
    pub fn estimated_entries(mut self, entries: usize) -> Self {
        self.estimated_entries = Some(entries);
        self
    }

    /// Sets the weight of an entry. It is computed once at insert. Every
    /// entry weighs at least 1, so that every entry stays evictable.
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Sets the time each entry lives after it was written.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets how long an entry lives without being read or written.
    pub fn time_to_idle(mut self, idle: Duration) -> Self {
        self.tti = Some(idle);
        self
    }

    /// Chooses the TTL of each entry from its key and value. `None` falls
    /// back to [`ttl`](Self::ttl). A TTL passed to
    /// [`LocalCache::insert_with_ttl`] wins over both.
    pub fn expire_after(
        mut self,
        expiry: impl Fn(&K, &V) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.expiry = Some(Arc::new(expiry));
        self
    }

    /// Calls `listener` for every entry that leaves the cache, with the
    /// cause. See [`Listener`] for where it runs.
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Reads time from `clock` on every call that needs it. Use it with a
    /// `ManualClock` in tests. Without it the cache reads a
    /// [`FastClock`] through a coarse copy refreshed every millisecond,
    /// which keeps a hit cheap.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.time = Some(TimeSource::Exact(Arc::new(clock)));
        self
    }

    /// Reads time from `clock` through a coarse copy refreshed every
    /// millisecond, as the default clock is read.
    pub fn coarse_clock(mut self, clock: impl Clock) -> Self {
        self.time = Some(TimeSource::coarse(Arc::new(clock)));
        self
    }

    /// Shares loads through `flight` instead of the built-in [`Flight`],
    /// such as a single-flight from `pulse-conc` or one of your own.
    pub fn single_flight<S2>(self, flight: S2) -> LocalCacheBuilder<K, V, S2> {
        LocalCacheBuilder {
            capacity: self.capacity,
            estimated_entries: self.estimated_entries,
            weigher: self.weigher,
            ttl: self.ttl,
            tti: self.tti,
            expiry: self.expiry,
            listener: self.listener,
            time: self.time,
            flight,
            _types: PhantomData,
        }
    }
}

fn check_duration(field: &'static str, value: Option<Duration>) -> Result<u64, ConfigError> {
    match value {
        None => Ok(u64::MAX),
        Some(d) if d.is_zero() => Err(ConfigError::new(
            field,
            "0s",
            "use at least 1 ms, or leave it unset for no limit",
        )),
        Some(d) => Ok(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
    }
}

impl<K, V, S> LocalCacheBuilder<K, V, S>
where
    K: Eq + std::hash::Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Builds the cache.
    ///
    /// Fails with [`ErrorKind::InvalidConfig`](pulse_core::ErrorKind) when
    /// no capacity or a zero capacity was set, when a weight bound has no
    /// weigher, or when a TTL or idle time is zero.
    pub fn build(self) -> pulse_core::Result<LocalCache<K, V, S>> {
        Ok(self.build_inner().map_err(CacheError::from)?)
    }

    fn build_inner(self) -> Result<LocalCache<K, V, S>, ConfigError> {
        let Some((capacity, by_weight)) = self.capacity else {
            return Err(ConfigError::new(
                "capacity",
                "unset",
                "call max_entries or max_weight",
            ));
        };
        if capacity == 0 {
            let field = if by_weight {
                "max_weight"
            } else {
                "max_entries"
            };
            return Err(ConfigError::new(
                field,
                0,
                "use at least 1; to disable caching, do not build a cache",
            ));
        }
        if by_weight && self.weigher.is_none() {
            return Err(ConfigError::new(
                "weigher",
                "unset",
                "max_weight needs a weigher; use max_entries to bound by count",
            ));
        }
        let ttl_nanos = check_duration("ttl", self.ttl)?;
        let idle_nanos = check_duration("time_to_idle", self.tti)?;

        let estimated = match (by_weight, self.estimated_entries) {
            (_, Some(entries)) => entries.max(1),
            (false, None) => usize::try_from(capacity).unwrap_or(usize::MAX),
            (true, None) => usize::try_from((capacity / 64).max(1)).unwrap_or(usize::MAX),
        };
        let options = OptionsBuilder::new()
            .estimated_items_capacity(estimated)
            .weight_capacity(capacity)
            .build()
            .map_err(|err| ConfigError::new("capacity", capacity, err.to_string()))?;

        let time = self
            .time
            .unwrap_or_else(|| TimeSource::coarse(Arc::new(FastClock::new())));
        let counters = Arc::new(Counters::new());
        let hooks = Hooks {
            listener: self.listener.clone(),
            counters: counters.clone(),
            time: time.clone(),
            idle_nanos,
        };
        let map = quick_cache::sync::Cache::with_options(
            options,
            EntryWeight,
            DefaultHashBuilder::default(),
            hooks,
        );

        Ok(LocalCache {
            inner: Arc::new(Inner {
                map,
                time,
                capacity,
                weigher: self.weigher,
                ttl_nanos,
                idle_nanos,
                expiry: self.expiry,
                listener: self.listener,
                counters,
                flight: self.flight,
            }),
        })
    }
}
