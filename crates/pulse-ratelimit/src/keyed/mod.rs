//! [`KeyedLimiter`]: one limit per key, over any hashable key, with bounded
//! memory.

mod builder;
mod sweep;
mod wait;

pub use builder::KeyedBuilder;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use hashbrown::{DefaultHashBuilder, HashTable};
use parking_lot::RwLock;
use pulse_core::clock::{Clock, CoarseClock};
use pulse_core::ratelimit::{Decision, RateLimiter};
use pulse_core::task::Background;

use crate::policy::{
    FixedWindowPolicy, GcraPolicy, LeakyBucketPolicy, LeakyQueuePolicy, Policy, SlidingLogPolicy,
    SlidingWindowPolicy, TokenBucketPolicy, ceil_ms,
};
use crate::quota::Quota;

/// A GCRA limit per key.
pub type KeyedGcra<K, C = CoarseClock> = KeyedLimiter<K, GcraPolicy, C>;
/// A token bucket per key.
pub type KeyedTokenBucket<K, C = CoarseClock> = KeyedLimiter<K, TokenBucketPolicy, C>;
/// A leaky bucket (meter) per key.
pub type KeyedLeakyBucket<K, C = CoarseClock> = KeyedLimiter<K, LeakyBucketPolicy, C>;
/// A leaky bucket (queue) per key.
pub type KeyedLeakyQueue<K, C = CoarseClock> = KeyedLimiter<K, LeakyQueuePolicy, C>;
/// A sliding-window log per key.
pub type KeyedSlidingLog<K, C = CoarseClock> = KeyedLimiter<K, SlidingLogPolicy, C>;
/// A sliding-window counter per key.
pub type KeyedSlidingWindow<K, C = CoarseClock> = KeyedLimiter<K, SlidingWindowPolicy, C>;
/// A fixed window per key.
pub type KeyedFixedWindow<K, C = CoarseClock> = KeyedLimiter<K, FixedWindowPolicy, C>;

type Shard<K, S> = CachePadded<RwLock<HashTable<(K, S)>>>;

/// The part of a keyed limiter that its sweep thread shares.
pub(crate) struct Shared<K, P: Policy, C> {
    policy: P,
    clock: C,
    hasher: DefaultHashBuilder,
    shards: Box<[Shard<K, P::State>]>,
    shard_mask: usize,
    max_per_shard: usize,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::Counters>,
}

/// A rate limiter with one limit per key: a tenant, a user, an IP address.
///
/// # Memory
///
/// Keys live in a sharded hash table. A key whose state has become equal to
/// a fresh one (its bucket refilled, its window passed) is *idle* and is
/// dropped by a background thread every
/// [`sweep_interval`](KeyedBuilder::sweep_interval), with no call from the
/// application; dropping an idle key loses nothing. Each shard's table
/// shrinks after a sweep, so a churn of millions of keys gives its memory
/// back. At most [`max_keys`](KeyedBuilder::max_keys) keys are kept. When a
/// shard is full and none of its keys is idle, a *new* key is rejected with
/// a `retry_after` of when one will be. Evicting a live key instead would
/// reset its limit and over-admit.
///
/// The sweep thread stops when the limiter is dropped (within 50 ms) or
/// after [`shutdown`](KeyedLimiter::shutdown).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::clock::ManualClock;
/// use pulse_ratelimit::{KeyedGcra, Quota};
///
/// let clock = ManualClock::new();
/// let limiter = KeyedGcra::<String>::builder(Quota::per_second(1)?)
///     .max_keys(10_000)
///     .clock(clock.clone())
///     .build()?;
///
/// assert!(limiter.check("tenant-a").allowed);
/// assert!(!limiter.check("tenant-a").allowed);
/// assert!(limiter.check("tenant-b").allowed);
///
/// // Once both buckets have refilled, the sweep drops the keys.
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(limiter.sweep(), 2);
/// assert!(limiter.is_empty());
/// # Ok::<(), pulse_ratelimit::RateLimitError>(())
/// ```
pub struct KeyedLimiter<K, P: Policy, C: Clock = CoarseClock> {
    shared: Arc<Shared<K, P, C>>,
    background: Background,
}

impl<K, P> KeyedLimiter<K, P, CoarseClock>
where
    K: Hash + Eq + Send + Sync + 'static,
    P: Policy,
{
    /// Starts building a keyed limiter for `quota`, on a [`CoarseClock`]
    /// unless [`clock`](KeyedBuilder::clock) sets another.
    pub fn builder(quota: Quota) -> KeyedBuilder<K, P, CoarseClock> {
        KeyedBuilder::new(quota)
    }
}

impl<K, P, C> KeyedLimiter<K, P, C>
where
    K: Hash + Eq + Send + Sync + 'static,
    P: Policy,
    C: Clock,
{
    /// Takes one permit for `key` if it is available now.
    #[inline]
    pub fn check<Q>(&self, key: &Q) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_n(key, 1)
    }

    /// Takes `cost` permits for `key` if they are all available now. A new
    /// key is stored only when it takes something.
    #[inline]
    pub fn check_n<Q>(&self, key: &Q, cost: u32) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let decision = self.shared.check_n(key, cost);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.shared.metrics {
            metrics.record(&decision);
        }
        decision
    }

    /// Drops every idle key now and returns how many were dropped. The
    /// background sweep does the same on its own; this is for tests and
    /// for callers that want memory back at a moment of their choosing.
    pub fn sweep(&self) -> usize {
        self.shared.sweep()
    }

    /// Returns the number of keys held.
    pub fn len(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|shard| shard.read().len())
            .sum()
    }

    /// Returns whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the bytes allocated by the key tables (not counting memory
    /// that keys or states own on the heap, such as a `String` key).
    pub fn table_bytes(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|shard| shard.read().allocation_size())
            .sum()
    }

    /// Returns the quota each key gets.
    pub fn quota(&self) -> &Quota {
        self.shared.policy.quota()
    }

    /// Stops the sweep thread and waits until it has exited.
    pub async fn shutdown(&self) {
        self.background.shutdown().await;
    }
}

impl<K, P: Policy, C> Shared<K, P, C> {
    #[inline]
    fn shard_of(&self, hash: u64) -> &Shard<K, P::State> {
        // hashbrown places entries by the low bits and tags them with the top
        // seven, so the shard comes from the bits in between.
        &self.shards[(hash >> 32) as usize & self.shard_mask]
    }
}

impl<K, P, C> Shared<K, P, C>
where
    K: Hash + Eq + Send + Sync + 'static,
    P: Policy,
    C: Clock,
{
    /// Runs `f` on the state of `key`, storing a fresh state first if the
    /// key is new. Returns `None` when the key is new and its shard is full.
    fn with_state<Q, R>(&self, key: &Q, now: u64, f: impl FnOnce(&P::State) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard_of(hash);
        {
            let table = shard.read();
            if let Some((_, state)) = table.find(hash, |(stored, _)| stored.borrow() == key) {
                return Some(f(state));
            }
        }
        let mut table = shard.write();
        if table
            .find(hash, |(stored, _)| stored.borrow() == key)
            .is_none()
        {
            if table.len() >= self.max_per_shard {
                table.retain(|(_, state)| self.policy.idle_after(state, now) > 0);
            }
            if table.len() >= self.max_per_shard {
                return None;
            }
            let hasher = &self.hasher;
            table.insert_unique(
                hash,
                (key.to_owned(), self.policy.new_state()),
                |(stored, _)| hasher.hash_one(stored),
            );
        }
        let (_, state) = table.find(hash, |(stored, _)| stored.borrow() == key)?;
        Some(f(state))
    }

    #[inline]
    fn check_n<Q>(&self, key: &Q, cost: u32) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = self.clock.now().as_nanos();
        let hash = self.hasher.hash_one(key);
        let shard = self.shard_of(hash);
        {
            let table = shard.read();
            if let Some((_, state)) = table.find(hash, |(stored, _)| stored.borrow() == key) {
                return self.policy.check(state, now, cost);
            }
        }
        self.check_new(shard, hash, key, now, cost)
    }

    /// The slow path: the key was not found under the read lock.
    #[cold]
    fn check_new<Q>(
        &self,
        shard: &Shard<K, P::State>,
        hash: u64,
        key: &Q,
        now: u64,
        cost: u32,
    ) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut table = shard.write();
        if let Some((_, state)) = table.find(hash, |(stored, _)| stored.borrow() == key) {
            return self.policy.check(state, now, cost);
        }

        let state = self.policy.new_state();
        let decision = self.policy.check(&state, now, cost);
        if !decision.allowed || cost == 0 {
            // Nothing was taken, so the key need not be stored.
            return decision;
        }

        if table.len() >= self.max_per_shard {
            table.retain(|(_, state)| self.policy.idle_after(state, now) > 0);
            if table.len() >= self.max_per_shard {
                let soonest = table
                    .iter()
                    .map(|(_, state)| self.policy.idle_after(state, now))
                    .min()
                    .unwrap_or(0);
                tracing::debug!(target: "pulse_ratelimit", keys = table.len(), "keyed limiter shard full; rejecting a new key");
                return Decision::rejected(
                    u64::from(self.policy.quota().burst()),
                    ceil_ms(soonest).max(Duration::from_millis(1)),
                    Duration::ZERO,
                );
            }
        }

        let hasher = &self.hasher;
        table.insert_unique(hash, (key.to_owned(), state), |(stored, _)| {
            hasher.hash_one(stored)
        });
        decision
    }

    pub(crate) fn sweep(&self) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let now = self.clock.now().as_nanos();
            let mut table = shard.write();
            let before = table.len();
            table.retain(|(_, state)| self.policy.idle_after(state, now) > 0);
            dropped += before - table.len();

            // Give memory back once the table is mostly empty; the slack
            // avoids shrinking and regrowing a table that hovers at a size.
            if table.capacity() > 4 * table.len().max(16) {
                let hasher = &self.hasher;
                let len = table.len();
                table.shrink_to(len, |(stored, _)| hasher.hash_one(stored));
            }
        }
        dropped
    }
}

impl<K, Q, P, C> RateLimiter<Q> for KeyedLimiter<K, P, C>
where
    K: Hash + Eq + Borrow<Q> + Send + Sync + 'static,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    P: Policy,
    C: Clock,
{
    #[inline]
    fn check_n(&self, key: &Q, cost: u32) -> Decision {
        KeyedLimiter::check_n(self, key, cost)
    }
}

impl<K, P: Policy, C: Clock> fmt::Debug for KeyedLimiter<K, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("policy", &self.shared.policy)
            .field("shards", &self.shared.shards.len())
            .field("max_per_shard", &self.shared.max_per_shard)
            .finish_non_exhaustive()
    }
}
