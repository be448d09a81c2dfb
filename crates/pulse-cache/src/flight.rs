//! The default single-flight used by the loading calls.
//!
//! Any [`SingleFlight`] can be passed to a cache instead, such as the one
//! from `pulse-conc`. This one is small and has the property the cache
//! needs most. When the caller running a load is cancelled (its future
//! dropped) or its loader panics, the next waiting caller runs its own
//! loader, so one dropped request never wedges a key.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;
use pulse_core::error::{Error, Result};
use pulse_core::flight::SingleFlight;
use tokio::sync::Notify;

/// Runs one load per key at a time; concurrent callers share its result.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use pulse_cache::Flight;
/// use pulse_core::flight::SingleFlight;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let flight = Arc::new(Flight::<String, u64>::new());
/// let runs = Arc::new(AtomicUsize::new(0));
/// let calls = (0..8).map(|_| {
///     let (flight, runs) = (flight.clone(), runs.clone());
///     tokio::spawn(async move {
///         flight.run("answer".to_owned(), || async move {
///             runs.fetch_add(1, Ordering::SeqCst);
///             tokio::time::sleep(std::time::Duration::from_millis(20)).await;
///             Ok(42)
///         }).await
///     })
/// }).collect::<Vec<_>>();
/// for call in calls {
///     assert_eq!(call.await.unwrap().unwrap(), 42);
/// }
/// assert_eq!(runs.load(Ordering::SeqCst), 1);
/// # });
/// ```
pub struct Flight<K, V> {
    calls: Mutex<HashMap<K, Arc<Call<V>>>>,
}

struct Call<V> {
    state: Mutex<State<V>>,
    changed: Notify,
}

enum State<V> {
    Running,
    Done(std::result::Result<V, Error>),
    /// The running caller went away without a result.
    Abandoned,
}

impl<K, V> Flight<K, V> {
    /// Creates an empty flight table.
    pub fn new() -> Self {
        Flight {
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the number of keys being loaded now.
    pub fn in_flight(&self) -> usize {
        self.calls.lock().len()
    }
}

impl<K, V> Default for Flight<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> std::fmt::Debug for Flight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// Copies an error for a waiter. The source stays with the caller that ran
/// the load; waiters get its kind and message.
fn share_error(err: &Error) -> Error {
    Error::new(err.kind(), err.message().to_owned())
}

/// Marks the call abandoned if the running caller leaves without a result.
struct Leader<'a, K: Eq + Hash, V> {
    flight: &'a Flight<K, V>,
    key: &'a K,
    call: &'a Arc<Call<V>>,
    finished: bool,
}

impl<K: Eq + Hash, V> Leader<'_, K, V> {
    fn settle(&mut self, state: State<V>) {
        self.finished = true;
        {
            let mut calls = self.flight.calls.lock();
            if calls
                .get(self.key)
                .is_some_and(|current| Arc::ptr_eq(current, self.call))
            {
                calls.remove(self.key);
            }
        }
        *self.call.state.lock() = state;
        self.call.changed.notify_waiters();
    }
}

impl<K: Eq + Hash, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if !self.finished {
            self.settle(State::Abandoned);
        }
    }
}

impl<K, V> SingleFlight<K, V> for Flight<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    async fn run<F, Fut>(&self, key: K, load: F) -> Result<V>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<V>> + Send,
    {
        let mut load = Some(load);
        loop {
            let (call, leading) = {
                let mut calls = self.calls.lock();
                match calls.get(&key) {
                    Some(call) => (call.clone(), false),
                    None => {
                        let call = Arc::new(Call {
                            state: Mutex::new(State::Running),
                            changed: Notify::new(),
                        });
                        calls.insert(key.clone(), call.clone());
                        (call, true)
                    }
                }
            };

            if leading {
                let mut leader = Leader {
                    flight: self,
                    key: &key,
                    call: &call,
                    finished: false,
                };
                let Some(load) = load.take() else {
                    unreachable!("a caller leads at most once")
                };
                let result = load().await;
                let shared = match &result {
                    Ok(value) => Ok(value.clone()),
                    Err(err) => Err(share_error(err)),
                };
                leader.settle(State::Done(shared));
                return result;
            }

            if let Some(result) = wait(&call).await {
                return result;
            }
            // The leader went away: loop and try to lead.
        }
    }
}

/// Waits for a call to settle. Returns `None` when it was abandoned.
async fn wait<V: Clone>(call: &Call<V>) -> Option<Result<V>> {
    loop {
        // Register before reading the state, so a settle in between still
        // wakes this waiter.
        let changed = call.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match &*call.state.lock() {
            State::Running => {}
            State::Done(Ok(value)) => return Some(Ok(value.clone())),
            State::Done(Err(err)) => return Some(Err(share_error(err))),
            State::Abandoned => return None,
        }
        changed.await;
    }
}
