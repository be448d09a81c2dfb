//! A bulkhead: a limit on concurrent calls, with a bounded wait for a free
//! slot.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pulse_core::clock::{Clock, SystemClock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{CallError, Error};

/// Limits how many calls run at once; a call that finds no free slot waits
/// up to a maximum time in a bounded queue, then is rejected.
///
/// Clones share the limit. A slot is held by a [`BulkheadPermit`] and freed
/// when it is dropped, also when the call's future is dropped.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_conc::Bulkhead;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let bulkhead = Bulkhead::builder("reports")
///     .max_concurrent(2)
///     .max_wait(Duration::from_millis(50))
///     .build()
///     .unwrap();
///
/// let first = bulkhead.try_acquire().unwrap();
/// let _second = bulkhead.try_acquire().unwrap();
/// assert!(bulkhead.try_acquire().is_err(), "both slots are taken");
///
/// drop(first);
/// let answer = bulkhead.call(|| async { Ok::<_, std::io::Error>(42) }).await.unwrap();
/// assert_eq!(answer, 42);
/// # });
/// ```
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_wait: Duration,
    max_queue: usize,
    waiting: AtomicUsize,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.inner.name)
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("available", &self.available())
            .finish_non_exhaustive()
    }
}

/// A held slot of a [`Bulkhead`], freed on drop.
#[derive(Debug)]
pub struct BulkheadPermit {
    _permit: OwnedSemaphorePermit,
}

/// Builds a [`Bulkhead`].
///
/// The defaults follow resilience4j's semaphore bulkhead: 25 concurrent
/// calls and no wait. The wait queue has no length limit unless
/// [`max_queue`](BulkheadBuilder::max_queue) sets one.
pub struct BulkheadBuilder {
    name: Arc<str>,
    max_concurrent: usize,
    max_wait: Duration,
    max_queue: usize,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for BulkheadBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadBuilder")
            .field("name", &self.name)
            .field("max_concurrent", &self.max_concurrent)
            .field("max_wait", &self.max_wait)
            .field("max_queue", &self.max_queue)
            .finish_non_exhaustive()
    }
}

impl BulkheadBuilder {
    /// Sets how many calls may run at once (at least 1).
    pub fn max_concurrent(mut self, calls: usize) -> Self {
        self.max_concurrent = calls;
        self
    }

    /// Sets how long a call may wait for a free slot; zero rejects at once.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Sets how many calls may wait at once; more are rejected at once.
    pub fn max_queue(mut self, waiters: usize) -> Self {
        self.max_queue = waiters;
        self
    }

    /// Measures the wait on `clock`.
    pub fn clock<C: Clock>(mut self, clock: C) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the settings and creates the bulkhead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `max_concurrent` is zero or above
    /// tokio's semaphore limit.
    pub fn build(self) -> Result<Bulkhead, Error> {
        if self.max_concurrent == 0 || self.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(Error::config(
                "max_concurrent",
                self.max_concurrent,
                "allow at least 1 concurrent call",
            ));
        }
        Ok(Bulkhead {
            inner: Arc::new(Inner {
                name: self.name,
                slots: Arc::new(Semaphore::new(self.max_concurrent)),
                max_concurrent: self.max_concurrent,
                max_wait: self.max_wait,
                max_queue: self.max_queue,
                waiting: AtomicUsize::new(0),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())),
            }),
        })
    }
}

impl Bulkhead {
    /// Starts building a bulkhead named `name` (used in errors).
    pub fn builder(name: &str) -> BulkheadBuilder {
        BulkheadBuilder {
            name: Arc::from(name),
            max_concurrent: 25,
            max_wait: Duration::ZERO,
            max_queue: usize::MAX,
            clock: None,
        }
    }

    /// Returns the number of free slots.
    pub fn available(&self) -> usize {
        self.inner.slots.available_permits()
    }

    /// Returns the number of calls waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Takes a slot without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::BulkheadFull`] when every slot is taken.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, Error> {
        match Arc::clone(&self.inner.slots).try_acquire_owned() {
            Ok(permit) => Ok(BulkheadPermit { _permit: permit }),
            Err(_) => Err(self.full()),
        }
    }

    /// Takes a slot, waiting up to the maximum wait for one.
    ///
    /// # Errors
    ///
    /// [`Error::BulkheadFull`] when no slot freed up in time or the wait
    /// queue is full.
    pub async fn acquire(&self) -> Result<BulkheadPermit, Error> {
        let inner = &self.inner;
        if let Ok(permit) = self.try_acquire() {
            return Ok(permit);
        }
        if inner.max_wait.is_zero() {
            return Err(self.full());
        }
        if inner.waiting.fetch_add(1, Ordering::AcqRel) >= inner.max_queue {
            inner.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(self.full());
        }
        let _waiting = WaitingGuard(&inner.waiting);

        tokio::select! {
            biased;
            permit = Arc::clone(&inner.slots).acquire_owned() => match permit {
                Ok(permit) => Ok(BulkheadPermit { _permit: permit }),
                Err(_) => Err(self.full()),
            },
            () = inner.clock.sleep(inner.max_wait) => Err(self.full()),
        }
    }

    /// Runs `call` in a slot, waiting for one as [`acquire`](Bulkhead::acquire)
    /// does.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] with [`Error::BulkheadFull`], or the call's
    /// own error as [`CallError::Inner`].
    pub async fn call<F, Fut, T, E>(&self, call: F) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _permit = self.acquire().await?;
        call().await.map_err(CallError::Inner)
    }

    fn full(&self) -> Error {
        Error::BulkheadFull {
            name: Arc::clone(&self.inner.name),
            max_concurrent: self.inner.max_concurrent,
        }
    }
}

struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
