//! The single-flight contract: concurrent calls for one key share one
//! execution.
//!
//! A cache asks for this role to load each missing key once; `pulse-conc`
//! provides the implementation, and a user can pass their own.
//!
//! # Contract for implementors
//!
//! - While a call for a key is running, other calls for the same key wait
//!   for its result instead of running their own function.
//! - When the running call is cancelled (its future dropped) or its function
//!   panics, a waiting caller runs its own function instead; waiters never
//!   hang and never all fail because of one caller.
//! - Once the result is handed out the key is forgotten: the next call runs
//!   again.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use crate::error::Result;

/// Runs one function per key at a time and shares its result.
pub trait SingleFlight<K, V>: Send + Sync
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `load` for `key` unless a call for `key` is already running, in
    /// which case it waits for that call's result.
    fn run<F, Fut>(&self, key: K, load: F) -> impl Future<Output = Result<V>> + Send
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<V>> + Send;
}

impl<K, V, S> SingleFlight<K, V> for Arc<S>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: SingleFlight<K, V> + ?Sized,
{
    fn run<F, Fut>(&self, key: K, load: F) -> impl Future<Output = Result<V>> + Send
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<V>> + Send,
    {
        (**self).run(key, load)
    }
}
