//! A time limit for a future (resilience4j's TimeLimiter).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pulse_core::clock::{Clock, SystemClock};

use crate::error::{CallError, Error};

/// Drops a call that runs longer than a limit.
///
/// The limit is measured on a [`Clock`], so a test can move it with a
/// `ManualClock`. Dropping the call's future is how it is cancelled, so work
/// it handed to another task or thread goes on.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_conc::{Error, TimeLimiter};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let limiter = TimeLimiter::new(Duration::from_millis(20)).unwrap();
/// assert_eq!(limiter.run(async { 7 }).await, Ok(7));
///
/// let slow = limiter.run(std::future::pending::<()>()).await;
/// assert_eq!(slow, Err(Error::TimedOut { after: Duration::from_millis(20) }));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct TimeLimiter {
    limit: Duration,
    clock: Arc<dyn Clock>,
}

impl TimeLimiter {
    /// Creates a limiter on the system clock.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `limit` is zero.
    pub fn new(limit: Duration) -> Result<TimeLimiter, Error> {
        if limit.is_zero() {
            return Err(Error::config("time limit", "0ns", "use a limit above zero"));
        }
        Ok(TimeLimiter {
            limit,
            clock: Arc::new(SystemClock::new()),
        })
    }

    /// Measures the limit on `clock`.
    pub fn clock<C: Clock>(mut self, clock: C) -> TimeLimiter {
        self.clock = Arc::new(clock);
        self
    }

    /// Returns the limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Runs `future` and returns its output, or [`Error::TimedOut`] once the
    /// limit has passed.
    pub async fn run<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        tokio::select! {
            biased;
            output = future => Ok(output),
            () = self.clock.sleep(self.limit) => Err(Error::TimedOut { after: self.limit }),
        }
    }

    /// Runs a fallible `future` and folds the time limit into its error.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] with [`Error::TimedOut`], or the call's own
    /// error as [`CallError::Inner`].
    pub async fn call<F, T, E>(&self, future: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        match self.run(future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(CallError::Inner(err)),
            Err(err) => Err(CallError::Rejected(err)),
        }
    }
}
