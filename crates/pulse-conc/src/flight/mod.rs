//! Single-flight: concurrent calls for one key share one execution.
//!
//! The first caller of a key (the leader) runs its function; callers that
//! arrive while it runs wait and receive a clone of its result. Once the
//! result is handed out the key is forgotten, so the next call runs again.
//! [`SingleFlight::forget`] drops a key early: the running call finishes for
//! the callers it has, and the next caller starts a new one.
//!
//! A leader that panics or whose future is dropped does not fail the
//! waiters: one of them runs its own function instead and leads from there.
//! The panicking leader itself gets [`Error::Panicked`].
//!
//! [`SingleFlight`] is the async flavour, [`BlockingSingleFlight`] the one
//! for threads. [`LoadFlight`] is the async flavour with the error type of
//! the `pulse-core` [`SingleFlight`](pulse_core::flight::SingleFlight)
//! trait, which a cache takes to load each missing key once.

mod blocking;
mod registry;

pub use blocking::BlockingSingleFlight;

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use self::registry::Registry;
use crate::error::Error;
use crate::util::{CatchUnwind, lock};

/// Shares one execution among concurrent async calls for a key.
///
/// `T` is what the function returns and every waiter receives a clone of;
/// make it a `Result` with a cloneable error (or an `Arc` of one) to share
/// failures too.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use pulse_conc::SingleFlight;
///
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap().block_on(async {
/// let flight = Arc::new(SingleFlight::<String, u64>::new());
/// let loads = Arc::new(AtomicU32::new(0));
///
/// let mut callers = Vec::new();
/// for _ in 0..8 {
///     let (flight, loads) = (flight.clone(), loads.clone());
///     callers.push(tokio::spawn(async move {
///         flight
///             .run("user:7".to_owned(), || async move {
///                 loads.fetch_add(1, Ordering::SeqCst);
///                 tokio::time::sleep(std::time::Duration::from_millis(50)).await;
///                 7
///             })
///             .await
///     }));
/// }
/// for caller in callers {
///     assert_eq!(caller.await.unwrap(), Ok(7));
/// }
/// // All eight callers arrived while the first load ran (almost always).
/// assert!(loads.load(Ordering::SeqCst) <= 2);
/// # });
/// ```
pub struct SingleFlight<K, T> {
    calls: Registry<K, Call<T>>,
}

struct Call<T> {
    slot: Mutex<Slot<T>>,
    done: Notify,
}

enum Slot<T> {
    Running,
    Done(T),
    Abandoned,
}

impl<K, T> fmt::Debug for SingleFlight<K, T>
where
    K: Eq + Hash + Clone,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &self.calls.len())
            .finish()
    }
}

impl<K, T> Default for SingleFlight<K, T>
where
    K: Eq + Hash + Clone,
    T: Clone,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, T> SingleFlight<K, T>
where
    K: Eq + Hash + Clone,
    T: Clone,
{
    /// Creates an empty single-flight group.
    pub fn new() -> Self {
        SingleFlight {
            calls: Registry::new(),
        }
    }

    /// Runs `call` for `key`, unless a call for `key` is running, in which
    /// case it waits for that call's result.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`] when this caller led and its `call` panicked.
    /// Waiters never see another caller's panic.
    pub async fn run<F, Fut>(&self, key: K, call: F) -> Result<T, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        loop {
            let (flight, leader) = self.calls.join_or_lead(&key, || Call {
                slot: Mutex::new(Slot::Running),
                done: Notify::new(),
            });
            if leader {
                return self.lead(&key, &flight, call).await;
            }
            if let Some(value) = flight.wait().await {
                return Ok(value);
            }

            // The leader panicked or was dropped: try to lead this time.
            tracing::debug!(target: "pulse_conc", "single-flight leader gone; a waiter takes over");
        }
    }

    async fn lead<F, Fut>(&self, key: &K, flight: &Arc<Call<T>>, call: F) -> Result<T, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let mut guard = LeaderGuard {
            calls: &self.calls,
            key,
            flight,
            finished: false,
        };
        match CatchUnwind::new(call()).await {
            Ok(value) => {
                guard.finish(|| Slot::Done(value.clone()));
                Ok(value)
            }
            Err(payload) => {
                let err = Error::from_panic(payload);
                tracing::warn!(target: "pulse_conc", error = %err, "single-flight call panicked");
                guard.finish(|| Slot::Abandoned);
                Err(err)
            }
        }
    }

    /// Forgets `key`: the call running for it finishes for the callers it
    /// has, and the next caller starts a new one. Returns whether a call was
    /// running.
    pub fn forget(&self, key: &K) -> bool {
        self.calls.forget(key)
    }

    /// Returns the number of keys with a call running.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }
}

impl<T: Clone> Call<T> {
    /// Waits for the leader; `None` means it was abandoned.
    async fn wait(&self) -> Option<T> {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);

            // Registered before the check, so a result stored between the
            // check and the await still wakes this waiter.
            notified.as_mut().enable();
            match &*lock(&self.slot) {
                Slot::Running => {}
                Slot::Done(value) => return Some(value.clone()),
                Slot::Abandoned => return None,
            }
            notified.await;
        }
    }
}

/// Hands the result to the waiters, or marks the call abandoned when the
/// leader's future is dropped before it finished.
struct LeaderGuard<'a, K: Eq + Hash + Clone, T> {
    calls: &'a Registry<K, Call<T>>,
    key: &'a K,
    flight: &'a Arc<Call<T>>,
    finished: bool,
}

impl<K: Eq + Hash + Clone, T> LeaderGuard<'_, K, T> {
    /// Hands out the result; `slot` is only built when a waiter exists.
    fn finish(&mut self, slot: impl FnOnce() -> Slot<T>) {
        self.finished = true;
        self.calls.remove_if_same(self.key, self.flight);

        // With the key gone from the map no new waiter can join, so a
        // reference count of one (the leader's own) means nobody waits.
        if Arc::strong_count(self.flight) > 1 {
            *lock(&self.flight.slot) = slot();
            self.flight.done.notify_waiters();
        }
    }
}

impl<K: Eq + Hash + Clone, T> Drop for LeaderGuard<'_, K, T> {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(|| Slot::Abandoned);
        }
    }
}

/// A loader error shared by every caller of one flight: each caller gets a
/// [`pulse_core::Error`] with the same kind and message, whose source is
/// this value.
#[derive(Clone, Debug)]
pub struct SharedError(Arc<pulse_core::Error>);

impl SharedError {
    /// Wraps an error to share it.
    pub fn new(err: pulse_core::Error) -> Self {
        SharedError(Arc::new(err))
    }

    /// Returns the shared error.
    pub fn get(&self) -> &pulse_core::Error {
        &self.0
    }

    fn to_error(&self) -> pulse_core::Error {
        pulse_core::Error::with_source(self.0.kind(), self.0.message().to_owned(), self.clone())
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The single-flight group that a cache takes through the `pulse-core`
/// [`SingleFlight`](pulse_core::flight::SingleFlight) trait.
///
/// # Examples
///
/// ```
/// use pulse_conc::LoadFlight;
/// use pulse_core::flight::SingleFlight;
///
/// // A cache takes any implementation of the trait.
/// async fn load_user<S: SingleFlight<u32, String>>(flight: &S, id: u32) -> pulse_core::Result<String> {
///     flight.run(id, || async move { Ok(format!("user {id}")) }).await
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let flight: LoadFlight<u32, String> = LoadFlight::new();
/// assert_eq!(load_user(&flight, 1).await.unwrap(), "user 1");
/// # });
/// ```
pub type LoadFlight<K, V> = SingleFlight<K, Result<V, SharedError>>;

impl<K, V> pulse_core::flight::SingleFlight<K, V> for SingleFlight<K, Result<V, SharedError>>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    async fn run<F, Fut>(&self, key: K, load: F) -> pulse_core::Result<V>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = pulse_core::Result<V>> + Send,
    {
        let shared = SingleFlight::run(self, key, || async move {
            load().await.map_err(SharedError::new)
        })
        .await;
        match shared {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(err.to_error()),
            Err(err) => Err(err.into()),
        }
    }
}
