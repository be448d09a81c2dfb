//! Single-flight for threads: waiters block on a condition variable.

use std::fmt;
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};

use super::Slot;
use super::registry::Registry;
use crate::error::Error;
use crate::util::lock;

/// Shares one execution among concurrent blocking calls for a key; the
/// thread flavour of [`SingleFlight`](super::SingleFlight), with the same
/// rules.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use pulse_conc::BlockingSingleFlight;
///
/// let flight = Arc::new(BlockingSingleFlight::<u32, String>::new());
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let flight = flight.clone();
///         std::thread::spawn(move || flight.run(1, || "config".to_owned()))
///     })
///     .collect();
/// for thread in threads {
///     assert_eq!(thread.join().unwrap().unwrap(), "config");
/// }
/// ```
pub struct BlockingSingleFlight<K, T> {
    calls: Registry<K, Call<T>>,
}

struct Call<T> {
    slot: Mutex<Slot<T>>,
    done: Condvar,
}

impl<K: Eq + Hash + Clone, T> fmt::Debug for BlockingSingleFlight<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingSingleFlight")
            .field("in_flight", &self.calls.len())
            .finish()
    }
}

impl<K: Eq + Hash + Clone, T: Clone> Default for BlockingSingleFlight<K, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash + Clone, T: Clone> BlockingSingleFlight<K, T> {
    /// Creates an empty single-flight group.
    pub fn new() -> Self {
        BlockingSingleFlight {
            calls: Registry::new(),
        }
    }

    /// Runs `call` for `key` on this thread, unless a call for `key` is
    /// running, in which case it blocks until that call's result is ready.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`] when this caller led and its `call` panicked.
    pub fn run<F>(&self, key: K, call: F) -> Result<T, Error>
    where
        F: FnOnce() -> T,
    {
        loop {
            let (flight, leader) = self.calls.join_or_lead(&key, || Call {
                slot: Mutex::new(Slot::Running),
                done: Condvar::new(),
            });
            if leader {
                return self.lead(&key, &flight, call);
            }
            if let Some(value) = flight.wait() {
                return Ok(value);
            }
            tracing::debug!(target: "pulse_conc", "single-flight leader gone; a waiter takes over");
        }
    }

    fn lead<F>(&self, key: &K, flight: &Arc<Call<T>>, call: F) -> Result<T, Error>
    where
        F: FnOnce() -> T,
    {
        let outcome = catch_unwind(AssertUnwindSafe(call));
        self.calls.remove_if_same(key, flight);
        let (slot, result) = match outcome {
            Ok(value) => (Slot::Done(value.clone()), Ok(value)),
            Err(payload) => {
                let err = Error::from_panic(payload);
                tracing::warn!(target: "pulse_conc", error = %err, "single-flight call panicked");
                (Slot::Abandoned, Err(err))
            }
        };
        if Arc::strong_count(flight) > 1 {
            *lock(&flight.slot) = slot;
            flight.done.notify_all();
        }
        result
    }

    /// Forgets `key`; see [`SingleFlight::forget`](super::SingleFlight::forget).
    pub fn forget(&self, key: &K) -> bool {
        self.calls.forget(key)
    }

    /// Returns the number of keys with a call running.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }
}

impl<T: Clone> Call<T> {
    fn wait(&self) -> Option<T> {
        let mut slot = lock(&self.slot);
        loop {
            match &*slot {
                Slot::Running => {
                    slot = self
                        .done
                        .wait(slot)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                Slot::Done(value) => return Some(value.clone()),
                Slot::Abandoned => return None,
            }
        }
    }
}
