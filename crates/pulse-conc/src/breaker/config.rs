//! Settings of a circuit breaker and their checks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pulse_core::clock::{Clock, FastClock};

use super::{CircuitBreaker, StateChange};
use crate::error::Error;

/// How the breaker remembers recent calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` calls, whenever they happened.
    CountBased(u32),
    /// The calls of the last `n` seconds, in one-second buckets.
    TimeBased(u32),
}

/// The largest time-based window: a bucket's second is stored in 20 bits.
const MAX_WINDOW_SECONDS: u32 = 1 << 19;

pub(crate) type FailurePredicate =
    Arc<dyn Fn(&(dyn std::error::Error + 'static)) -> bool + Send + Sync>;
pub(crate) type Listener = Arc<dyn Fn(&StateChange) + Send + Sync>;

/// Checked settings, with rates kept in thousandths of a percent so that the
/// hot path compares integers.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) window: SlidingWindow,
    pub(crate) minimum_calls: u32,
    pub(crate) failure_rate_milli: u64,
    pub(crate) slow_rate_milli: u64,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) wait_in_open: Duration,
    pub(crate) half_open_trials: u32,
    pub(crate) is_failure: Option<FailurePredicate>,
    pub(crate) listener: Option<Listener>,
}

/// Builds a [`CircuitBreaker`]; every setting is checked by
/// [`build`](CircuitBreakerBuilder::build).
///
/// The defaults follow resilience4j: a count-based window of 100 calls, at
/// least 100 calls before the rate counts, a 50% failure-rate threshold,
/// slow-call detection off, 60 s open, 10 trial calls when half-open.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_conc::breaker::{CircuitBreaker, SlidingWindow};
///
/// let breaker = CircuitBreaker::builder("payments")
///     .sliding_window(SlidingWindow::TimeBased(30))
///     .minimum_calls(20)
///     .failure_rate_threshold(25.0)
///     .slow_calls(Duration::from_secs(2), 80.0)
///     .wait_in_open(Duration::from_secs(10))
///     .half_open_trials(3)
///     .build()
///     .unwrap();
/// assert_eq!(breaker.name(), "payments");
///
/// let err = CircuitBreaker::builder("bad").failure_rate_threshold(120.0).build().unwrap_err();
/// assert!(err.to_string().contains("failure_rate_threshold"));
/// ```
pub struct CircuitBreakerBuilder {
    name: Arc<str>,
    window: SlidingWindow,
    minimum_calls: u32,
    failure_rate: f64,
    slow_rate: f64,
    slow_call_duration: Option<Duration>,
    consecutive_failures: Option<u32>,
    wait_in_open: Duration,
    half_open_trials: u32,
    is_failure: Option<FailurePredicate>,
    listener: Option<Listener>,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("name", &self.name)
            .field("window", &self.window)
            .field("minimum_calls", &self.minimum_calls)
            .field("failure_rate", &self.failure_rate)
            .finish_non_exhaustive()
    }
}

impl CircuitBreakerBuilder {
    pub(crate) fn new(name: &str) -> Self {
        CircuitBreakerBuilder {
            name: Arc::from(name),
            window: SlidingWindow::CountBased(100),
            minimum_calls: 100,
            failure_rate: 50.0,
            slow_rate: 100.0,
            slow_call_duration: None,
            consecutive_failures: None,
            wait_in_open: Duration::from_secs(60),
            half_open_trials: 10,
            is_failure: None,
            listener: None,
            clock: None,
        }
    }

    /// Sets the window over which failure and slow-call rates are computed.
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// Sets how many calls the window must hold before a rate can open the
    /// circuit. A count-based window smaller than this uses its own size.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// Sets the failure rate, in percent (above 0, at most 100), at or above
    /// which the circuit opens.
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.failure_rate = percent;
        self
    }

    /// Turns on slow-call detection: a call that takes `duration` or longer
    /// is slow, and the circuit opens when slow calls reach `percent` of the
    /// window. Timing each call reads the clock twice.
    pub fn slow_calls(mut self, duration: Duration, percent: f64) -> Self {
        self.slow_call_duration = Some(duration);
        self.slow_rate = percent;
        self
    }

    /// Also opens the circuit after `count` failures in a row, whatever the
    /// window rates are (the rule of Go's gobreaker).
    pub fn consecutive_failures(mut self, count: u32) -> Self {
        self.consecutive_failures = Some(count);
        self
    }

    /// Sets how long the circuit stays open before trial calls are let
    /// through.
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.wait_in_open = wait;
        self
    }

    /// Sets how many trial calls run when half-open (at least 1). The
    /// circuit closes once they all finish below the thresholds, and opens
    /// again as soon as their failures reach a threshold.
    pub fn half_open_trials(mut self, trials: u32) -> Self {
        self.half_open_trials = trials;
        self
    }

    /// Sets which errors count as failures. Errors for which `predicate`
    /// returns `false` count as successes. By default every error counts.
    pub fn failure_predicate<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&(dyn std::error::Error + 'static)) -> bool + Send + Sync + 'static,
    {
        self.is_failure = Some(Arc::new(predicate));
        self
    }

    /// Sets a function called after every state change, outside the
    /// breaker's internal lock.
    pub fn on_state_change<L>(mut self, listener: L) -> Self
    where
        L: Fn(&StateChange) + Send + Sync + 'static,
    {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Sets the clock for the open wait, slow calls and time-based windows.
    /// The default is a [`FastClock`]; tests pass a `ManualClock`.
    pub fn clock<C: Clock>(mut self, clock: C) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the settings and creates the breaker, closed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a rate outside (0, 100], a zero window,
    /// zero minimum calls, zero trial calls or a zero consecutive-failure
    /// count.
    pub fn build(self) -> Result<CircuitBreaker, Error> {
        let window_size = match self.window {
            SlidingWindow::CountBased(0) => {
                return Err(Error::config(
                    "sliding_window",
                    "CountBased(0)",
                    "use a window of at least 1 call",
                ));
            }
            SlidingWindow::TimeBased(seconds) if seconds == 0 || seconds > MAX_WINDOW_SECONDS => {
                return Err(Error::config(
                    "sliding_window",
                    format_args!("TimeBased({seconds})"),
                    "use a window of 1 to 524288 seconds",
                ));
            }
            SlidingWindow::CountBased(size) => Some(size),
            SlidingWindow::TimeBased(_) => None,
        };
        if self.minimum_calls == 0 {
            return Err(Error::config("minimum_calls", 0, "use at least 1 call"));
        }
        let failure_rate_milli = rate_milli("failure_rate_threshold", self.failure_rate)?;
        let slow_rate_milli = rate_milli("slow_call_rate_threshold", self.slow_rate)?;
        if self.half_open_trials == 0 {
            return Err(Error::config(
                "half_open_trials",
                0,
                "allow at least 1 trial call when half-open",
            ));
        }
        if self.consecutive_failures == Some(0) {
            return Err(Error::config(
                "consecutive_failures",
                0,
                "use at least 1 failure, or leave the rule off",
            ));
        }

        // A count-based window can never hold more calls than its size.
        let minimum_calls = match window_size {
            Some(size) => self.minimum_calls.min(size),
            None => self.minimum_calls,
        };
        let config = Config {
            window: self.window,
            minimum_calls,
            failure_rate_milli,
            slow_rate_milli,
            slow_call_duration: self.slow_call_duration,
            consecutive_failures: self.consecutive_failures,
            wait_in_open: self.wait_in_open,
            half_open_trials: self.half_open_trials,
            is_failure: self.is_failure,
            listener: self.listener,
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(FastClock::new()));
        Ok(CircuitBreaker::from_config(self.name, config, clock))
    }
}

/// Converts a percentage in (0, 100] to thousandths of a percent.
fn rate_milli(field: &'static str, percent: f64) -> Result<u64, Error> {
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(Error::config(
            field,
            percent,
            "use a percentage above 0 and at most 100",
        ));
    }
    Ok((percent * 1000.0).round() as u64)
}
