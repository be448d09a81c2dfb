//! The builder of [`KeyedLimiter`].

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use hashbrown::{DefaultHashBuilder, HashTable};
use parking_lot::RwLock;
use pulse_core::clock::{Clock, CoarseClock};
use pulse_core::task::Background;

use super::{KeyedLimiter, Shared, sweep};
use crate::error::RateLimitError;
use crate::policy::Policy;
use crate::quota::Quota;

/// The default bound on the number of keys.
const DEFAULT_MAX_KEYS: usize = 1_000_000;
/// The default time between two sweeps for idle keys.
const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// The largest shard count: more shards spread keys no better and only
/// take memory.
const MAX_SHARDS: usize = 1 << 16;

/// Keys per shard below which more shards would only waste memory.
const MIN_KEYS_PER_SHARD: usize = 64;

/// Settings of a [`KeyedLimiter`]; see [`KeyedLimiter::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct KeyedBuilder<K, P, C = CoarseClock> {
    quota: Quota,
    clock: C,
    max_keys: usize,
    sweep_interval: Duration,
    shards: Option<usize>,
    #[cfg(feature = "metrics")]
    metrics_name: Option<&'static str>,
    marker: PhantomData<fn() -> (K, P)>,
}

impl<K, P: Policy> KeyedBuilder<K, P, CoarseClock> {
    pub(super) fn new(quota: Quota) -> Self {
        KeyedBuilder {
            quota,
            clock: CoarseClock::shared(),
            max_keys: DEFAULT_MAX_KEYS,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            shards: None,
            #[cfg(feature = "metrics")]
            metrics_name: None,
            marker: PhantomData,
        }
    }
}

impl<K, P, C> KeyedBuilder<K, P, C>
where
    K: Hash + Eq + Send + Sync + 'static,
    P: Policy,
    C: Clock,
{
    /// Sets the clock (a [`ManualClock`](pulse_core::clock::ManualClock) in
    /// tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedBuilder<K, P, C2> {
        KeyedBuilder {
            quota: self.quota,
            clock,
            max_keys: self.max_keys,
            sweep_interval: self.sweep_interval,
            shards: self.shards,
            #[cfg(feature = "metrics")]
            metrics_name: self.metrics_name,
            marker: PhantomData,
        }
    }

    /// Sets the maximum number of keys held (default 1,000,000). The bound
    /// is kept per shard, so the total is at most `max_keys` rounded up to a
    /// multiple of the shard count.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// Sets how often the background thread drops idle keys (default 10 s).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Sets the number of shards, from 1 to 65,536, rounded up to a power of
    /// two (default: four per CPU, fewer for a small `max_keys`).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Counts allowed and rejected decisions under the label `limiter =
    /// name`; see [`Limiter::with_metrics`](crate::Limiter::with_metrics).
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(mut self, name: &'static str) -> Self {
        self.metrics_name = Some(name);
        self
    }

    /// Builds the limiter and starts its sweep thread.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidSetting`] for a zero `max_keys` or sweep
    /// interval, or a shard count of zero or above 65,536;
    /// [`RateLimitError::Background`] when the sweep thread cannot be
    /// started.
    pub fn build(self) -> Result<KeyedLimiter<K, P, C>, RateLimitError> {
        if self.max_keys == 0 {
            return Err(invalid("max_keys", 0, "use at least 1 key"));
        }
        if self.sweep_interval.is_zero() {
            return Err(invalid(
                "sweep_interval",
                format!("{:?}", self.sweep_interval),
                "use an interval of at least 1 ms",
            ));
        }
        let shard_count = match self.shards {
            Some(shards) if shards == 0 || shards > MAX_SHARDS => {
                return Err(invalid("shards", shards, "use 1 to 65536 shards"));
            }
            Some(shards) => shards.next_power_of_two(),
            None => default_shards(self.max_keys),
        };
        let max_per_shard = self.max_keys.div_ceil(shard_count);

        let shards = (0..shard_count)
            .map(|_| CachePadded::new(RwLock::new(HashTable::new())))
            .collect();
        let shared = Arc::new(Shared {
            policy: P::from_quota(self.quota),
            clock: self.clock,
            hasher: DefaultHashBuilder::default(),
            shards,
            shard_mask: shard_count - 1,
            max_per_shard,
            #[cfg(feature = "metrics")]
            metrics: self
                .metrics_name
                .map(|name| crate::metrics::Counters::new(name, P::NAME)),
        });

        let background = Background::new("pulse_ratelimit");
        sweep::start(&background, Arc::downgrade(&shared), self.sweep_interval)
            .map_err(RateLimitError::Background)?;
        tracing::debug!(
            target: "pulse_ratelimit",
            algorithm = P::NAME,
            shards = shard_count,
            max_keys = self.max_keys,
            "keyed limiter started"
        );
        Ok(KeyedLimiter { shared, background })
    }
}

fn invalid(field: &'static str, value: impl ToString, fix: &'static str) -> RateLimitError {
    RateLimitError::InvalidSetting {
        field,
        value: value.to_string(),
        fix,
    }
}

fn default_shards(max_keys: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
    let by_cpu = (cpus * 4).next_power_of_two();
    let by_keys = (max_keys / MIN_KEYS_PER_SHARD).max(1).next_power_of_two();
    by_cpu.min(by_keys)
}
