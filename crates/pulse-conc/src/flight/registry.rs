//! The map of calls in flight, split into shards so that callers of
//! different keys rarely contend for one mutex.

use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};

use hashbrown::{DefaultHashBuilder, HashMap};

use crate::util::lock;

type Shard<K, C> = Mutex<HashMap<K, Arc<C>, DefaultHashBuilder>>;

pub(crate) struct Registry<K, C> {
    shards: Box<[Shard<K, C>]>,
    /// Picks the shard. foldhash, randomly seeded per registry: fast, with
    /// some resistance to chosen keys.
    hasher: DefaultHashBuilder,
}

impl<K: Eq + Hash + Clone, C> Registry<K, C> {
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, usize::from);
        let count = (cores * 4).next_power_of_two();
        let hasher = DefaultHashBuilder::default();
        Registry {
            shards: (0..count)
                .map(|_| Mutex::new(HashMap::with_hasher(hasher)))
                .collect(),
            hasher,
        }
    }

    fn shard(&self, key: &K) -> &Shard<K, C> {
        let hash = self.hasher.hash_one(key) as usize;
        &self.shards[hash & (self.shards.len() - 1)]
    }

    /// Returns the call running for `key` and `false`, or registers a new
    /// one made by `start` and returns it with `true`.
    pub(crate) fn join_or_lead(&self, key: &K, start: impl FnOnce() -> C) -> (Arc<C>, bool) {
        let mut calls = lock(self.shard(key));
        if let Some(call) = calls.get(key) {
            return (Arc::clone(call), false);
        }
        let call = Arc::new(start());
        calls.insert(key.clone(), Arc::clone(&call));
        (call, true)
    }

    /// Removes `key` if it still maps to `call`; a key that was forgotten
    /// and started again keeps its newer call.
    pub(crate) fn remove_if_same(&self, key: &K, call: &Arc<C>) {
        let mut calls = lock(self.shard(key));
        if calls
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, call))
        {
            calls.remove(key);
        }
    }

    pub(crate) fn forget(&self, key: &K) -> bool {
        lock(self.shard(key)).remove(key).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }
}
