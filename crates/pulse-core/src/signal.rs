//! A one-shot flag that tasks can wait on: the lost signal of a lease and the
//! stop signal of background work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A flag that is set once and stays set, with a future that completes when
/// it is set.
///
/// Clones share the flag. Waiting is cancel-safe and costs nothing once the
/// flag is set. Setting it never blocks, so it can be done from `Drop` or
/// from a synchronous thread.
///
/// # Examples
///
/// ```
/// use pulse_core::signal::Signal;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let lost = Signal::new();
/// let watcher = tokio::spawn({
///     let lost = lost.clone();
///     async move { lost.fired().await }
/// });
/// assert!(lost.fire());
/// assert!(!lost.fire(), "only the first call sets the flag");
/// watcher.await.unwrap();
/// assert!(lost.is_fired());
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct Signal {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    fired: AtomicBool,
    notify: Notify,
}

impl Signal {
    /// Creates a signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes every waiter. Returns `true` for the call that
    /// set it and `false` if it was already set.
    pub fn fire(&self) -> bool {
        let first = !self.inner.fired.swap(true, Ordering::SeqCst);
        if first {
            self.inner.notify.notify_waiters();
        }
        first
    }

    /// Returns whether the flag is set.
    #[inline]
    pub fn is_fired(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// Waits until the flag is set.
    pub async fn fired(&self) {
        loop {
            // Register interest before the check, so that a `fire` between
            // the check and the await still wakes this waiter.
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_fired() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fired_returns_at_once_when_set() {
        let signal = Signal::new();
        signal.fire();
        signal.fired().await;
    }

    #[tokio::test]
    async fn many_waiters_all_wake() {
        let signal = Signal::new();
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let signal = signal.clone();
                tokio::spawn(async move { signal.fired().await })
            })
            .collect();
        tokio::task::yield_now().await;
        signal.fire();
        for waiter in waiters {
            waiter.await.unwrap();
        }
    }
}
