//! An async semaphore with weighted permits.

use std::sync::Arc;
use std::time::Duration;

use crate::error::LockError;

/// An async semaphore whose callers take any number of permits at once.
///
/// Requests are served in arrival order, so a large request is not starved
/// by a stream of small ones. A request for zero permits or for more than the
/// capacity is an error instead of a wait that never ends.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_lock::Semaphore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let memory = Semaphore::new(10);
/// let big = memory.acquire(8).await?;
/// assert!(memory.try_acquire(3)?.is_none(), "only 2 left");
/// assert!(memory.acquire_timeout(3, Duration::from_millis(5)).await?.is_none());
/// drop(big);
/// assert_eq!(memory.available(), 10);
/// assert!(memory.acquire(11).await.is_err(), "more than the capacity");
/// # Ok::<(), pulse_lock::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Semaphore {
    inner: Arc<tokio::sync::Semaphore>,
    capacity: u32,
}

/// Permits taken from a [`Semaphore`]; returned on drop. Owned, so it can
/// move into a spawned task.
#[derive(Debug)]
#[must_use = "the permits are returned when this is dropped"]
pub struct SemaphorePermit {
    permit: tokio::sync::OwnedSemaphorePermit,
}

impl Semaphore {
    /// Creates a semaphore with `capacity` permits.
    pub fn new(capacity: u32) -> Self {
        Semaphore {
            inner: Arc::new(tokio::sync::Semaphore::new(capacity as usize)),
            capacity,
        }
    }

    /// Returns the total number of permits.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Returns the permits free now.
    pub fn available(&self) -> usize {
        self.inner.available_permits()
    }

    /// Takes `permits`, waiting until they are free. Cancel-safe.
    pub async fn acquire(&self, permits: u32) -> Result<SemaphorePermit, LockError> {
        self.check(permits)?;
        let permit = self
            .inner
            .clone()
            .acquire_many_owned(permits)
            .await
            .expect("the semaphore is never closed");
        Ok(SemaphorePermit { permit })
    }

    /// Takes `permits` if they are free now, or returns `Ok(None)`.
    pub fn try_acquire(&self, permits: u32) -> Result<Option<SemaphorePermit>, LockError> {
        self.check(permits)?;
        Ok(self
            .inner
            .clone()
            .try_acquire_many_owned(permits)
            .ok()
            .map(|permit| SemaphorePermit { permit }))
    }

    /// Takes `permits`, waiting at most `timeout`; `Ok(None)` when they did
    /// not become free in time.
    pub async fn acquire_timeout(
        &self,
        permits: u32,
        timeout: Duration,
    ) -> Result<Option<SemaphorePermit>, LockError> {
        self.check(permits)?;
        tokio::time::timeout(timeout, self.acquire(permits))
            .await
            .ok()
            .transpose()
    }

    fn check(&self, permits: u32) -> Result<(), LockError> {
        if permits == 0 || permits > self.capacity {
            return Err(LockError::InvalidPermits {
                requested: permits,
                capacity: self.capacity,
            });
        }
        Ok(())
    }
}

impl SemaphorePermit {
    /// Returns how many permits this holds.
    pub fn permits(&self) -> u32 {
        self.permit.num_permits() as u32
    }
}
