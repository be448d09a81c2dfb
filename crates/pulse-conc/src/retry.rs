//! Retry with exponential backoff, full jitter, a maximum number of
//! attempts, and a retry budget shared across calls.
//!
//! A budget stops a retry storm: when a dependency fails for everyone, each
//! caller retrying several times multiplies the load on it. With a budget,
//! retries are limited to a fraction of first attempts over all callers that
//! share it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pulse_core::clock::{Clock, SystemClock};
use rand::Rng;

use crate::error::Error;

/// Exponential backoff: the delay after failure `n` is
/// `base × factor^(n-1)`, never above `cap`, optionally with full jitter.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_conc::retry::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(30)).unwrap();
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(5), Duration::from_millis(1600));
/// assert_eq!(backoff.delay(10_000), Duration::from_secs(30));
///
/// // A base above the cap is rejected.
/// assert!(Backoff::exponential(Duration::from_secs(2), Duration::from_secs(1)).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    base: Duration,
    factor: f64,
    cap: Duration,
    jitter: Jitter,
}

/// How much randomness a [`Backoff`] adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// The delay is exact.
    #[default]
    None,
    /// The delay is uniform between zero and the exponential value ("full
    /// jitter"), which spreads the retries of many callers the most.
    Full,
}

impl Backoff {
    /// Creates a backoff that starts at `base`, doubles after each failure
    /// and stops growing at `cap`, with no jitter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `base` is zero or above `cap`.
    pub fn exponential(base: Duration, cap: Duration) -> Result<Backoff, Error> {
        if base.is_zero() {
            return Err(Error::config(
                "backoff base",
                "0ns",
                "use a base delay above zero",
            ));
        }
        if base > cap {
            return Err(Error::config(
                "backoff base",
                format_args!("{base:?}"),
                "use a base no larger than the cap, or raise the cap",
            ));
        }
        Ok(Backoff {
            base,
            factor: 2.0,
            cap,
            jitter: Jitter::None,
        })
    }

    /// Sets the growth factor (at least 1; the default is 2).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `factor` is below 1 or not finite.
    pub fn factor(mut self, factor: f64) -> Result<Backoff, Error> {
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(Error::config(
                "backoff factor",
                factor,
                "use a finite factor of at least 1",
            ));
        }
        self.factor = factor;
        Ok(self)
    }

    /// Sets the jitter.
    pub fn jitter(mut self, jitter: Jitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// Returns the delay without jitter after failure number `failures`
    /// (1 for the first failure; 0 is read as 1). It is never zero, never
    /// above the cap, and never overflows.
    pub fn base_delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(i32::MAX as u32) as i32;
        let nanos = self.base.as_nanos() as f64 * self.factor.powi(exponent);
        let cap_nanos = self.cap.as_nanos() as f64;
        if !nanos.is_finite() || nanos >= cap_nanos {
            return self.cap;
        }

        // `nanos` lies between base and cap here, so the conversion fits.
        Duration::from_nanos(nanos as u64).max(self.base)
    }

    /// Returns the delay after failure number `failures`, with jitter
    /// applied. With full jitter the delay can be zero.
    pub fn delay(&self, failures: u32) -> Duration {
        let delay = self.base_delay(failures);
        match self.jitter {
            Jitter::None => delay,
            Jitter::Full => {
                let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(rand::rng().random_range(0..=nanos))
            }
        }
    }
}

/// A pool of retry tokens shared by every [`Retry`] that holds a clone.
///
/// It starts full with `max_tokens`. Each first attempt deposits
/// `retry_ratio` tokens (up to the maximum) and each retry takes one; a
/// retry that finds less than one token is not made. With a ratio of 0.1,
/// retries settle at one per ten calls once the reserve is spent.
///
/// # Examples
///
/// ```
/// use pulse_conc::retry::RetryBudget;
///
/// let budget = RetryBudget::new(0.5, 1).unwrap();
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw(), "the reserve of 1 is spent");
/// budget.deposit();
/// budget.deposit();
/// assert!(budget.try_withdraw(), "two calls at 0.5 earned one retry");
/// ```
#[derive(Clone, Debug)]
pub struct RetryBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    /// Tokens in thousandths.
    balance: AtomicU64,
    deposit: u64,
    max: u64,
}

const MILLI: u64 = 1000;

impl RetryBudget {
    /// Creates a full budget.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `retry_ratio` is negative, not finite
    /// or above 1000, or `max_tokens` is zero.
    pub fn new(retry_ratio: f64, max_tokens: u32) -> Result<RetryBudget, Error> {
        if !(retry_ratio.is_finite() && (0.0..=1000.0).contains(&retry_ratio)) {
            return Err(Error::config(
                "retry_ratio",
                retry_ratio,
                "use a ratio from 0 to 1000 retries per call",
            ));
        }
        if max_tokens == 0 {
            return Err(Error::config(
                "max_tokens",
                0,
                "allow at least 1 retry token",
            ));
        }
        let max = u64::from(max_tokens) * MILLI;
        Ok(RetryBudget {
            inner: Arc::new(BudgetInner {
                balance: AtomicU64::new(max),
                deposit: (retry_ratio * MILLI as f64).round() as u64,
                max,
            }),
        })
    }

    /// Adds one first attempt's share of tokens.
    pub fn deposit(&self) {
        let inner = &self.inner;
        let _ = inner
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                Some((balance + inner.deposit).min(inner.max))
            });
    }

    /// Takes one token for a retry; returns `false` when less than one is
    /// left.
    pub fn try_withdraw(&self) -> bool {
        self.inner
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                balance.checked_sub(MILLI)
            })
            .is_ok()
    }

    /// Returns the whole tokens left.
    pub fn tokens(&self) -> u64 {
        self.inner.balance.load(Ordering::Acquire) / MILLI
    }
}

/// Runs a call again after a failure, with backoff between attempts.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use pulse_conc::retry::{Backoff, Retry};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let backoff = Backoff::exponential(Duration::from_millis(1), Duration::from_millis(10)).unwrap();
/// let retry = Retry::new(3, backoff).unwrap();
///
/// let calls = AtomicU32::new(0);
/// let result = retry
///     .call(|attempt| {
///         calls.fetch_add(1, Ordering::SeqCst);
///         async move { if attempt < 3 { Err("busy") } else { Ok(attempt) } }
///     })
///     .await;
/// assert_eq!(result, Ok(3));
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # });
/// ```
#[derive(Clone)]
pub struct Retry {
    max_attempts: u32,
    backoff: Backoff,
    budget: Option<RetryBudget>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Retry {
    /// Creates a policy of at most `max_attempts` attempts in all (the first
    /// one included), sleeping on the system clock.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `max_attempts` is zero.
    pub fn new(max_attempts: u32, backoff: Backoff) -> Result<Retry, Error> {
        if max_attempts == 0 {
            return Err(Error::config(
                "max_attempts",
                0,
                "allow at least 1 attempt (1 means no retry)",
            ));
        }
        Ok(Retry {
            max_attempts,
            backoff,
            budget: None,
            clock: Arc::new(SystemClock::new()),
        })
    }

    /// Shares `budget` with every other policy that holds a clone of it.
    pub fn budget(mut self, budget: RetryBudget) -> Retry {
        self.budget = Some(budget);
        self
    }

    /// Sleeps between attempts on `clock` (a `ManualClock` in tests).
    pub fn clock<C: Clock>(mut self, clock: C) -> Retry {
        self.clock = Arc::new(clock);
        self
    }

    /// Returns the backoff.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// Calls `call` with the attempt number (from 1) until it succeeds, the
    /// attempts are used up or the budget is empty, and returns the last
    /// result.
    pub async fn call<F, Fut, T, E>(&self, call: F) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_if(call, |_| true).await
    }

    /// Like [`call`](Retry::call), but retries only errors for which
    /// `retry_if` returns `true`; any other error is returned at once.
    pub async fn call_if<F, Fut, T, E, P>(&self, mut call: F, retry_if: P) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: Fn(&E) -> bool,
    {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        let mut attempt = 1;
        loop {
            let err = match call(attempt).await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if attempt >= self.max_attempts || !retry_if(&err) {
                return Err(err);
            }
            if let Some(budget) = &self.budget {
                if !budget.try_withdraw() {
                    tracing::warn!(
                        target: "pulse_conc",
                        attempt,
                        "retry budget is empty; returning the error without retrying"
                    );
                    return Err(err);
                }
            }

            let delay = self.backoff.delay(attempt);
            tracing::debug!(target: "pulse_conc", attempt, ?delay, "retrying after a failed attempt");
            self.clock.sleep(delay).await;
            attempt += 1;
        }
    }
}
