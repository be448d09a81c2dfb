//! Waiting for permits of one key.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use pulse_core::clock::{Clock, MonoTime};

use super::{KeyedLimiter, Shared};
use crate::error::RateLimitError;
use crate::policy::Policy;

/// Gives back a key's reservation unless it was used.
struct Reservation<'a, K, Q, P, C>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    P: Policy,
    C: Clock,
{
    shared: &'a Shared<K, P, C>,
    key: &'a Q,
    cost: u32,
    ready_at: u64,
    used: bool,
}

impl<K, Q, P, C> Drop for Reservation<'_, K, Q, P, C>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    P: Policy,
    C: Clock,
{
    fn drop(&mut self) {
        // Past its ready time the key may have gone idle, been dropped and
        // made again, so only an unused reservation still ahead is given
        // back. Until then the key is not idle and the sweep keeps it.
        if self.used || self.shared.clock.now().as_nanos() >= self.ready_at {
            return;
        }
        let hash = self.shared.hasher.hash_one(self.key);
        let table = self.shared.shard_of(hash).read();
        if let Some((_, state)) = table.find(hash, |(stored, _)| stored.borrow() == self.key) {
            self.shared
                .policy
                .unreserve(state, self.ready_at, self.cost);
        }
    }
}

impl<K, P, C> KeyedLimiter<K, P, C>
where
    K: Hash + Eq + Send + Sync + 'static,
    P: Policy,
    C: Clock,
{
    /// Waits until one permit for `key` is available and takes it; see
    /// [`until_ready_n`](KeyedLimiter::until_ready_n).
    ///
    /// # Errors
    ///
    /// Never for a cost of one.
    pub async fn until_ready<Q>(&self, key: &Q) -> Result<(), RateLimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.until_ready_n(key, 1).await
    }

    /// Waits until `cost` permits for `key` are available and takes them.
    ///
    /// GCRA, the token bucket and both leaky buckets reserve, so waiters on
    /// one key are served first come, first served, and a waiter cancelled
    /// before its turn gives back exactly what it reserved if no later
    /// caller has taken permits of the key since. Window algorithms poll with the
    /// decision's `retry_after`, in no guaranteed order.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::CostTooLarge`] when `cost` exceeds the burst.
    pub async fn until_ready_n<Q>(&self, key: &Q, cost: u32) -> Result<(), RateLimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let burst = self.quota().burst();
        if cost > burst {
            return Err(RateLimitError::CostTooLarge { cost, burst });
        }
        let shared = &*self.shared;
        let now = shared.clock.now().as_nanos();
        if let Some(Some(ready_at)) =
            shared.with_state(key, now, |state| shared.policy.reserve(state, now, cost))
        {
            let mut reservation = Reservation {
                shared,
                key,
                cost,
                ready_at,
                used: false,
            };
            if ready_at > now {
                shared
                    .clock
                    .sleep_until(MonoTime::from_nanos(ready_at))
                    .await;
            }
            reservation.used = true;
            return Ok(());
        }

        loop {
            let decision = self.check_n(key, cost);
            if decision.allowed {
                return Ok(());
            }
            shared.clock.sleep(decision.retry_after).await;
        }
    }
}
