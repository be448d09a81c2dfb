//! A sharded table of per-key semaphores that exist only while a key is
//! held or awaited.
//!
//! Each key maps to a `tokio::sync::Semaphore`. An entry is inserted when the
//! first caller asks for the key and removed when the last guard or waiter
//! lets go, so memory follows the number of keys in use, not the number of
//! keys ever used.
//!
//! The first caller of a key inserts the entry with the permits it wants
//! already taken, so an uncontended lock and unlock touches no semaphore at
//! all. A semaphore whose last user held every permit is kept, still fully
//! taken, in a small per-shard free list and reused for the next new key, so
//! the warm path allocates nothing either.
//!
//! Invariant: every `Arc` of an entry's semaphore besides the table's own is
//! cloned while the shard lock is held, so a strong count of 2 seen under the
//! shard lock means the caller is the only user and may remove the entry.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// How many removed semaphores one shard keeps for reuse.
const SPARE_PER_SHARD: usize = 8;

pub(crate) struct Table<K> {
    shards: Box<[Mutex<Shard<K>>]>,
    hasher: hashbrown::DefaultHashBuilder,
    /// The permits of one entry.
    permits: u32,
}

struct Shard<K> {
    entries: HashTable<(K, Arc<Semaphore>)>,
    spare: Vec<Arc<Semaphore>>,
}

/// A claim on one entry: the caller holds or awaits its semaphore. Dropping
/// it removes the entry when no one else uses it.
pub(crate) struct Claim<K> {
    pub(crate) table: Arc<Table<K>>,
    pub(crate) hash: u64,
    pub(crate) semaphore: Option<Arc<Semaphore>>,
    /// Permits this claim took and gives back on drop.
    pub(crate) held: u32,
}

impl<K: Hash + Eq> Table<K> {
    pub(crate) fn new(permits: u32) -> Self {
        let shards =
            (std::thread::available_parallelism().map_or(4, usize::from) * 4).next_power_of_two();
        Table {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashTable::new(),
                        spare: Vec::new(),
                    })
                })
                .collect(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            permits,
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard<K>> {
        // The high bits pick the shard; hashbrown uses the low and top 7 bits
        // inside the shard's table.
        &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)]
    }

    /// Returns a claim on the entry of `key`. A new entry is inserted with
    /// `weight` permits already taken by the claim (`held == weight`); on an
    /// existing entry the claim holds nothing yet (`held == 0`).
    pub(crate) fn claim<Q>(self: &Arc<Self>, key: &Q, weight: u32) -> Claim<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let mut shard = self.shard(hash).lock();
        let Shard { entries, spare } = &mut *shard;
        let (semaphore, held) = match entries.entry(
            hash,
            |(k, _)| k.borrow() == key,
            |(k, _)| self.hasher.hash_one(k),
        ) {
            Entry::Occupied(occupied) => (occupied.get().1.clone(), 0),
            Entry::Vacant(vacant) => {
                // Spare semaphores have every permit taken; give back the
                // ones this claim does not take.
                let semaphore = spare.pop().unwrap_or_else(|| Arc::new(Semaphore::new(0)));
                let free = self.permits - weight;
                if free > 0 {
                    semaphore.add_permits(free as usize);
                }
                vacant.insert((key.to_owned(), semaphore.clone()));
                (semaphore, weight)
            }
        };
        drop(shard);
        Claim {
            table: self.clone(),
            hash,
            semaphore: Some(semaphore),
            held,
        }
    }

    /// Returns how many keys are held or awaited.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().entries.len())
            .sum()
    }
}

impl<K> Drop for Claim<K> {
    fn drop(&mut self) {
        let Some(semaphore) = self.semaphore.take() else {
            return;
        };
        let mut shard =
            self.table.shards[(self.hash >> 32) as usize & (self.table.shards.len() - 1)].lock();

        if Arc::strong_count(&semaphore) == 2 {
            // Only the table and this claim use the entry: remove it. When
            // this claim took every permit, the semaphore is in the state
            // that new entries start from, so keep it for reuse.
            if let Ok(entry) = shard
                .entries
                .find_entry(self.hash, |(_, s)| Arc::ptr_eq(s, &semaphore))
            {
                entry.remove();
            }
            if self.held == self.table.permits && shard.spare.len() < SPARE_PER_SHARD {
                shard.spare.push(semaphore);
            }
            return;
        }

        drop(shard);
        if self.held > 0 {
            semaphore.add_permits(self.held as usize);
        }
    }
}

impl<K> Claim<K> {
    pub(crate) fn semaphore(&self) -> &Semaphore {
        self.semaphore
            .as_deref()
            .expect("a live claim has its semaphore")
    }
}
