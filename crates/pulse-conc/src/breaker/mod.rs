//! A circuit breaker: stops calling a failing dependency for a while, then
//! lets a few trial calls decide whether it has recovered.
//!
//! # States
//!
//! - **Closed**: calls run, and their outcomes fill a sliding window
//!   (the last N calls, or the calls of the last N seconds). Once the window contains the minimum number of calls and the failure rate or the slow-call
//!   rate reaches its threshold, or a run of consecutive failures reaches its
//!   count, the breaker opens.
//! - **Open**: calls are rejected with [`Error::CircuitOpen`] until the open
//!   wait has passed; the first call after that moves the breaker to
//!   half-open.
//! - **Half-open**: a limited number of trial calls run and the rest are
//!   rejected. The breaker opens again as soon as the trials' failures reach
//!   a threshold, and closes when all trials finished below it.
//! - **Forced open** and **disabled**: set by hand; every call is rejected,
//!   or every call runs and nothing is recorded.
//!
//! # Cost
//!
//! In the closed state, asking for a permit is one atomic load; recording a
//! success with a count-based window and slow-call detection off is one
//! atomic read-modify-write and a few loads (one more write when the outcome
//! it replaces in the window differs), with no clock read. Nothing on that
//! path allocates or locks. State changes take a mutex, so that they are applied
//! and reported one at a time.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use pulse_conc::breaker::{CircuitBreaker, State};
//! use pulse_core::clock::ManualClock;
//!
//! let clock = ManualClock::new();
//! let breaker = CircuitBreaker::builder("inventory")
//!     .consecutive_failures(2)
//!     .wait_in_open(Duration::from_secs(30))
//!     .half_open_trials(1)
//!     .clock(clock.clone())
//!     .build()
//!     .unwrap();
//!
//! let fail = || Err::<(), _>(std::io::Error::other("connection refused"));
//! assert!(breaker.call_sync(fail).is_err());
//! assert!(breaker.call_sync(fail).is_err());
//! assert_eq!(breaker.state(), State::Open);
//!
//! // Rejected without running while open.
//! let err = breaker.call_sync(|| Ok::<_, std::io::Error>(1)).unwrap_err();
//! assert!(err.is_rejected());
//!
//! // After the open wait, one trial call succeeds and closes the circuit.
//! clock.advance(Duration::from_secs(30));
//! assert_eq!(breaker.call_sync(|| Ok::<_, std::io::Error>(1)).unwrap(), 1);
//! assert_eq!(breaker.state(), State::Closed);
//! ```

mod config;
mod window;

pub use config::{CircuitBreakerBuilder, SlidingWindow};

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::clock::{Clock, MonoTime};

use self::config::Config;
use self::window::{FAILED, RECORDED, SLOW, Totals, Window};
use crate::error::{CallError, Error};

/// The state of a [`CircuitBreaker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls run and are recorded.
    Closed,
    /// Calls are rejected until the open wait has passed.
    Open,
    /// A limited number of trial calls run.
    HalfOpen,
    /// Opened by hand: every call is rejected until the breaker is closed or
    /// disabled by hand.
    ForcedOpen,
    /// Disabled by hand: every call runs and nothing is recorded.
    Disabled,
}

impl State {
    #[inline]
    fn from_bits(bits: u64) -> State {
        match bits & STATE_MASK {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }

    fn bits(self) -> u64 {
        self as u64
    }

    fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
            State::ForcedOpen => "forced-open",
            State::Disabled => "disabled",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The failure rate reached its threshold.
    FailureRate,
    /// The slow-call rate reached its threshold.
    SlowCallRate,
    /// The configured number of consecutive failures was reached.
    ConsecutiveFailures,
    /// The open wait passed.
    OpenWaitPassed,
    /// All trial calls finished below the thresholds.
    TrialsPassed,
    /// A method such as [`CircuitBreaker::force_open`] was called.
    Manual,
}

/// A state change, passed to the listener set with
/// [`CircuitBreakerBuilder::on_state_change`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StateChange {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The reason for the change.
    pub reason: Reason,
    /// The failure rate in percent over the window (or the trials) that
    /// caused the change, when a rate caused it.
    pub failure_rate: Option<f64>,
}

/// A count of recent outcomes, from [`CircuitBreaker::metrics`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// The current state.
    pub state: State,
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow_calls: u64,
    /// Calls rejected since the breaker was created.
    pub rejected: u64,
}

const STATE_MASK: u64 = 0b111;
const GENERATION_STEP: u64 = 0b1000;

/// A circuit breaker. Clones share one state.
///
/// Build one with [`CircuitBreaker::builder`]; see the
/// [module documentation](self) for the states and costs.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

struct Shared {
    name: Arc<str>,
    /// The state in the low 3 bits and a generation above them, bumped on
    /// every change, so that a permit from an older state records nothing.
    word: AtomicU64,
    window: Window,
    consecutive: AtomicU32,
    opened_at: AtomicU64,
    trial_permits: AtomicU32,
    trial_calls: AtomicU32,
    trial_failures: AtomicU32,
    trial_slow: AtomicU32,
    rejected: AtomicU64,
    config: Config,
    clock: Arc<dyn Clock>,
    transitions: Mutex<()>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// The right to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Report the outcome with [`record_success`](Permit::record_success),
/// [`record_failure`](Permit::record_failure) or
/// [`record_error`](Permit::record_error). A permit dropped without a
/// record counts as nothing and returns its trial slot when half-open.
#[must_use = "a permit records nothing unless its outcome is reported"]
pub struct Permit<'a> {
    shared: &'a Shared,
    word: u64,
    started: MonoTime,
    reported: bool,
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("state", &State::from_bits(self.word))
            .finish_non_exhaustive()
    }
}

impl Permit<'_> {
    /// Records that the call succeeded.
    #[inline]
    pub fn record_success(mut self) {
        self.reported = true;
        self.shared.on_result(self.word, self.started, false);
    }

    /// Records that the call failed.
    pub fn record_failure(mut self) {
        self.reported = true;
        self.shared.on_result(self.word, self.started, true);
    }

    /// Records an error, as a failure unless the breaker's failure predicate
    /// returns `false` for it.
    pub fn record_error(self, err: &(dyn std::error::Error + 'static)) {
        let failed = match &self.shared.config.is_failure {
            Some(is_failure) => is_failure(err),
            None => true,
        };
        if failed {
            self.record_failure();
        } else {
            self.record_success();
        }
    }
}

/// A permit that owns a handle to its breaker, for futures that must be
/// `'static` (the tower layer).
#[cfg(feature = "tower")]
pub(crate) struct OwnedPermit {
    breaker: CircuitBreaker,
    word: u64,
    started: MonoTime,
    reported: bool,
}

#[cfg(feature = "tower")]
impl OwnedPermit {
    pub(crate) fn record_error(mut self, err: &(dyn std::error::Error + 'static)) {
        self.reported = true;
        let failed = match &self.breaker.shared.config.is_failure {
            Some(is_failure) => is_failure(err),
            None => true,
        };
        self.breaker
            .shared
            .on_result(self.word, self.started, failed);
    }

    pub(crate) fn record_success(mut self) {
        self.reported = true;
        self.breaker
            .shared
            .on_result(self.word, self.started, false);
    }
}

#[cfg(feature = "tower")]
impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.shared.release(self.word);
        }
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.reported {
            self.shared.release(self.word);
        }
    }
}

impl CircuitBreaker {
    /// Starts building a breaker named `name` (used in errors, logs and
    /// events).
    pub fn builder(name: &str) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new(name)
    }

    pub(crate) fn from_config(name: Arc<str>, config: Config, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            shared: Arc::new(Shared {
                name,
                word: AtomicU64::new(State::Closed.bits()),
                window: Window::new(config.window),
                consecutive: AtomicU32::new(0),
                opened_at: AtomicU64::new(0),
                trial_permits: AtomicU32::new(0),
                trial_calls: AtomicU32::new(0),
                trial_failures: AtomicU32::new(0),
                trial_slow: AtomicU32::new(0),
                rejected: AtomicU64::new(0),
                config,
                clock,
                transitions: Mutex::new(()),
            }),
        }
    }

    /// Returns the breaker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Returns the current state. An open breaker whose wait has passed
    /// still reads as open until the next call moves it to half-open.
    pub fn state(&self) -> State {
        State::from_bits(self.shared.word.load(Ordering::Acquire))
    }

    /// Returns the outcomes in the current window.
    pub fn metrics(&self) -> Metrics {
        let shared = &self.shared;
        let now = if shared.window.needs_time() {
            shared.clock.now()
        } else {
            MonoTime::ZERO
        };
        let totals = shared.window.totals(now);
        Metrics {
            state: self.state(),
            calls: totals.calls,
            failures: totals.failures,
            slow_calls: totals.slow,
            rejected: shared.rejected.load(Ordering::Relaxed),
        }
    }

    /// Asks for the right to make one call.
    ///
    /// # Errors
    ///
    /// [`Error::CircuitOpen`] when the breaker is open or forced open, or
    /// half-open with every trial call taken.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Error> {
        self.shared.try_acquire()
    }

    #[cfg(feature = "tower")]
    pub(crate) fn try_acquire_owned(&self) -> Result<OwnedPermit, Error> {
        let mut permit = self.shared.try_acquire()?;
        permit.reported = true;
        Ok(OwnedPermit {
            breaker: self.clone(),
            word: permit.word,
            started: permit.started,
            reported: false,
        })
    }

    /// Runs `call` if the breaker lets it through and records its outcome.
    ///
    /// A future dropped before it finishes records nothing.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] with [`Error::CircuitOpen`] when the call was
    /// not run, [`CallError::Inner`] with the call's own error otherwise.
    pub async fn call<F, Fut, T, E>(&self, call: F) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::error::Error + 'static,
    {
        let permit = self.try_acquire()?;
        let result = call().await;
        record(permit, &result);
        result.map_err(CallError::Inner)
    }

    /// Runs the blocking `call` if the breaker lets it through and records
    /// its outcome.
    ///
    /// # Errors
    ///
    /// As [`call`](CircuitBreaker::call).
    #[inline]
    pub fn call_sync<F, T, E>(&self, call: F) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: std::error::Error + 'static,
    {
        let permit = self.try_acquire()?;
        let result = call();
        record(permit, &result);
        result.map_err(CallError::Inner)
    }

    /// Opens the breaker until [`close`](CircuitBreaker::close) or
    /// [`disable`](CircuitBreaker::disable) is called.
    pub fn force_open(&self) {
        self.shared.set_by_hand(State::ForcedOpen);
    }

    /// Lets every call through without recording anything, until
    /// [`close`](CircuitBreaker::close) is called.
    pub fn disable(&self) {
        self.shared.set_by_hand(State::Disabled);
    }

    /// Closes the breaker with an empty window, from any state.
    pub fn close(&self) {
        self.shared.set_by_hand(State::Closed);
    }
}

#[inline]
fn record<T, E: std::error::Error + 'static>(permit: Permit<'_>, result: &Result<T, E>) {
    match result {
        Ok(_) => permit.record_success(),
        Err(err) => permit.record_error(err),
    }
}

impl Shared {
    #[inline]
    fn try_acquire(&self) -> Result<Permit<'_>, Error> {
        let word = self.word.load(Ordering::Acquire);
        match State::from_bits(word) {
            State::Closed => Ok(self.permit(word)),
            State::Disabled => Ok(Permit {
                shared: self,
                word,
                started: MonoTime::ZERO,
                reported: false,
            }),
            _ => self.try_acquire_slow(word),
        }
    }

    #[inline]
    fn permit(&self, word: u64) -> Permit<'_> {
        let started = if self.config.slow_call_duration.is_some() {
            self.clock.now()
        } else {
            MonoTime::ZERO
        };
        Permit {
            shared: self,
            word,
            started,
            reported: false,
        }
    }

    #[cold]
    fn try_acquire_slow(&self, mut word: u64) -> Result<Permit<'_>, Error> {
        loop {
            match State::from_bits(word) {
                State::Closed | State::Disabled => return self.try_acquire(),
                State::ForcedOpen => return Err(self.reject(None)),
                State::Open => {
                    let opened_at = MonoTime::from_nanos(self.opened_at.load(Ordering::Acquire));
                    let ready_at = opened_at.saturating_add(self.config.wait_in_open);
                    let now = self.clock.now();
                    if now < ready_at {
                        return Err(self.reject(Some(ready_at - now)));
                    }
                    self.transition(word, State::HalfOpen, Reason::OpenWaitPassed, None);
                }
                State::HalfOpen => {
                    let taken = self
                        .trial_permits
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                            left.checked_sub(1)
                        })
                        .is_ok();
                    if !taken {
                        return Err(self.reject(None));
                    }

                    // The permits may belong to a later half-open period than
                    // the one read; such a permit goes back and the state is
                    // read again.
                    if self.word.load(Ordering::Acquire) == word {
                        return Ok(self.permit(word));
                    }
                    self.trial_permits.fetch_add(1, Ordering::AcqRel);
                }
            }
            word = self.word.load(Ordering::Acquire);
        }
    }

    fn reject(&self, retry_after: Option<Duration>) -> Error {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Error::CircuitOpen {
            name: Arc::clone(&self.name),
            retry_after,
        }
    }

    /// Returns an unused trial slot.
    #[inline]
    fn release(&self, word: u64) {
        if State::from_bits(word) == State::HalfOpen && self.word.load(Ordering::Acquire) == word {
            self.trial_permits.fetch_add(1, Ordering::AcqRel);
        }
    }

    #[inline]
    fn on_result(&self, word: u64, started: MonoTime, failed: bool) {
        let config = &self.config;
        let mut outcome = RECORDED;
        if failed {
            outcome |= FAILED;
        }
        let mut now = MonoTime::ZERO;
        if let Some(slow_after) = config.slow_call_duration {
            now = self.clock.now();
            if now.saturating_duration_since(started) >= slow_after {
                outcome |= SLOW;
            }
        }

        match State::from_bits(word) {
            State::Closed => self.on_closed_result(word, outcome, now),
            State::HalfOpen => self.on_trial_result(word, outcome),
            _ => {}
        }
    }

    #[inline]
    fn on_closed_result(&self, word: u64, outcome: u8, mut now: MonoTime) {
        let config = &self.config;
        let failed = outcome & FAILED != 0;
        if let Some(limit) = config.consecutive_failures {
            if failed {
                let run = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
                if run >= limit {
                    self.transition(word, State::Open, Reason::ConsecutiveFailures, None);
                    return;
                }
            } else if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
        }

        if self.window.needs_time() && now == MonoTime::ZERO {
            now = self.clock.now();
        }
        let totals = self.window.record(outcome, now);

        // A success that was not slow can only lower both rates.
        if outcome == RECORDED || totals.calls < u64::from(config.minimum_calls) {
            return;
        }
        if let Some((reason, rate)) = self.tripped(totals) {
            self.transition(word, State::Open, reason, Some(rate));
        }
    }

    /// Returns the threshold that `totals` reaches, with the failure rate.
    fn tripped(&self, totals: Totals) -> Option<(Reason, f64)> {
        let config = &self.config;
        let rate = percent(totals.failures, totals.calls);
        if totals.failures * 100_000 >= config.failure_rate_milli * totals.calls {
            return Some((Reason::FailureRate, rate));
        }
        if config.slow_call_duration.is_some()
            && totals.slow * 100_000 >= config.slow_rate_milli * totals.calls
        {
            return Some((Reason::SlowCallRate, rate));
        }
        None
    }

    fn on_trial_result(&self, word: u64, outcome: u8) {
        if self.word.load(Ordering::Acquire) != word {
            return;
        }
        let trials = u64::from(self.config.half_open_trials);
        let calls = u64::from(self.trial_calls.fetch_add(1, Ordering::AcqRel)) + 1;
        let failures = if outcome & FAILED != 0 {
            self.trial_failures.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.trial_failures.load(Ordering::Acquire)
        };
        let slow = if outcome & SLOW != 0 {
            self.trial_slow.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.trial_slow.load(Ordering::Acquire)
        };

        // Measured against all trials, so the circuit opens as soon as the
        // remaining trials could no longer bring the rate under the
        // threshold.
        let over_trials = Totals {
            calls: trials,
            failures: u64::from(failures),
            slow: u64::from(slow),
        };
        let consecutive_hit = self
            .config
            .consecutive_failures
            .is_some_and(|limit| failures >= limit);
        if consecutive_hit {
            self.transition(word, State::Open, Reason::ConsecutiveFailures, None);
        } else if let Some((reason, rate)) = self.tripped(over_trials) {
            self.transition(word, State::Open, reason, Some(rate));
        } else if calls >= trials {
            let rate = percent(u64::from(failures), calls);
            self.transition(word, State::Closed, Reason::TrialsPassed, Some(rate));
        }
    }

    fn set_by_hand(&self, to: State) {
        self.transition_from(None, to, Reason::Manual, None);
    }

    /// Moves from the state in `expected` to `to`, unless another thread
    /// changed the state first.
    fn transition(&self, expected: u64, to: State, reason: Reason, rate: Option<f64>) {
        self.transition_from(Some(expected), to, reason, rate);
    }

    #[cold]
    fn transition_from(
        &self,
        expected: Option<u64>,
        to: State,
        reason: Reason,
        failure_rate: Option<f64>,
    ) {
        let guard = self
            .transitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.word.load(Ordering::Acquire);
        if expected.is_some_and(|expected| expected != current) {
            return;
        }
        let from = State::from_bits(current);

        // The new state's data is ready before the state word says so.
        match to {
            State::Open | State::ForcedOpen => {
                self.opened_at
                    .store(self.clock.now().as_nanos(), Ordering::Release);
            }
            State::HalfOpen => {
                self.trial_calls.store(0, Ordering::Release);
                self.trial_failures.store(0, Ordering::Release);
                self.trial_slow.store(0, Ordering::Release);
                self.trial_permits
                    .store(self.config.half_open_trials, Ordering::Release);
            }
            State::Closed => {
                self.window.reset();
                self.consecutive.store(0, Ordering::Release);
            }
            State::Disabled => {}
        }
        let generation = (current & !STATE_MASK).wrapping_add(GENERATION_STEP);
        self.word.store(generation | to.bits(), Ordering::Release);
        drop(guard);

        self.report(StateChange {
            name: Arc::clone(&self.name),
            from,
            to,
            reason,
            failure_rate,
        });
    }

    fn report(&self, change: StateChange) {
        if matches!(change.to, State::Open | State::ForcedOpen) {
            tracing::warn!(
                target: "pulse_conc",
                breaker = %change.name,
                from = %change.from,
                to = %change.to,
                reason = ?change.reason,
                failure_rate = ?change.failure_rate,
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                target: "pulse_conc",
                breaker = %change.name,
                from = %change.from,
                to = %change.to,
                reason = ?change.reason,
                "circuit breaker changed state"
            );
        }
        if let Some(listener) = &self.config.listener {
            listener(&change);
        }
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
