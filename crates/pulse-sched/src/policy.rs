//! Job policies: what happens when runs overlap, when slots were missed,
//! when a run fails or takes too long.

use std::sync::Arc;
use std::time::Duration;

use pulse_core::lock::DynLock;

/// What a job does when its next slot comes while a run is still going.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overlap {
    /// Start the new run beside the running one.
    Allow,
    /// Skip the new slot (counted as skipped).
    #[default]
    Skip,
    /// Keep one slot waiting and start it when the running one ends; later
    /// slots while one waits are skipped.
    QueueOne,
    /// Cancel the running run and start the new one.
    Replace,
}

/// What a job does with slots that passed while the scheduler could not run
/// them: downtime, a suspend, a forward step of the wall clock.
///
/// A slot is missed when the scheduler sees it more than the job's
/// [`misfire_grace`](JobOptions::misfire_grace) after its time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Misfire {
    /// Run none of the missed slots; wait for the next one.
    Skip,
    /// Run once now for the latest missed slot, skip the others.
    #[default]
    FireOnce,
    /// Run the latest `n` missed slots now, oldest first, and skip the
    /// rest.
    CatchUp(u32),
}

/// Retries of a failed run: up to `max_retries` more attempts, waiting
/// `base × factorⁿ` (capped) between them.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_sched::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(30));
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(5), Duration::from_millis(1600));
/// assert_eq!(backoff.delay(64), Duration::from_secs(30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backoff {
    base: Duration,
    factor: u32,
    cap: Duration,
}

impl Backoff {
    /// Doubles from `base` up to `cap`.
    pub fn exponential(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            factor: 2,
            cap,
        }
    }

    /// The same delay each time.
    pub fn fixed(delay: Duration) -> Self {
        Backoff {
            base: delay,
            factor: 1,
            cap: delay,
        }
    }

    /// Returns the delay after failure number `failure` (1-based); never
    /// more than the cap and never a panic.
    pub fn delay(&self, failure: u32) -> Duration {
        let exponent = failure.saturating_sub(1).min(63);
        let scale = (self.factor as u128).saturating_pow(exponent);
        let nanos = self.base.as_nanos().saturating_mul(scale);
        let capped = nanos.min(self.cap.as_nanos());
        Duration::from_nanos(u64::try_from(capped).unwrap_or(u64::MAX))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100), Duration::from_secs(30))
    }
}

/// What the scheduler does with a one-shot task whose time has passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PastDeadline {
    /// Run it at once.
    #[default]
    FireNow,
    /// Refuse it with [`SchedError::DeadlineInPast`](crate::SchedError::DeadlineInPast).
    Reject,
}

/// How [`Scheduler::shutdown`](crate::Scheduler::shutdown) treats runs that
/// are going.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownMode {
    /// Wait for running jobs and tasks to finish.
    #[default]
    Wait,
    /// Cancel them (their futures are dropped at the next await point).
    Cancel,
}

/// The policies of one recurring job.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_sched::{Backoff, JobOptions, Misfire, Overlap};
///
/// let options = JobOptions::default()
///     .overlap(Overlap::QueueOne)
///     .misfire(Misfire::CatchUp(3))
///     .starting_deadline(Duration::from_secs(30))
///     .jitter(Duration::from_millis(200))
///     .timeout(Duration::from_secs(10))
///     .retries(2, Backoff::fixed(Duration::from_secs(1)));
/// assert_eq!(options.overlap_policy(), Overlap::QueueOne);
/// ```
#[derive(Clone, Debug)]
pub struct JobOptions {
    pub(crate) overlap: Overlap,
    pub(crate) misfire: Misfire,
    pub(crate) misfire_grace: Duration,
    pub(crate) starting_deadline: Option<Duration>,
    pub(crate) jitter: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_retries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) single_run: Option<SingleRun>,
}

/// The lock that makes each slot run once in a fleet.
#[derive(Clone)]
pub(crate) struct SingleRun {
    pub(crate) lock: Arc<dyn DynLock>,
    pub(crate) prefix: String,
    pub(crate) min_hold: Duration,
}

impl std::fmt::Debug for SingleRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleRun")
            .field("prefix", &self.prefix)
            .field("min_hold", &self.min_hold)
            .finish()
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            overlap: Overlap::default(),
            misfire: Misfire::default(),
            misfire_grace: Duration::from_secs(1),
            starting_deadline: None,
            jitter: Duration::ZERO,
            timeout: None,
            max_retries: 0,
            backoff: Backoff::default(),
            single_run: None,
        }
    }
}

impl JobOptions {
    /// Sets the overlap policy ([`Overlap::Skip`] by default).
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// Returns the overlap policy.
    pub fn overlap_policy(&self) -> Overlap {
        self.overlap
    }

    /// Sets the misfire policy ([`Misfire::FireOnce`] by default).
    pub fn misfire(mut self, misfire: Misfire) -> Self {
        self.misfire = misfire;
        self
    }

    /// Sets how late a slot may be seen and still count as on time (1 s by
    /// default).
    pub fn misfire_grace(mut self, grace: Duration) -> Self {
        self.misfire_grace = grace;
        self
    }

    /// Skips a run that cannot start within `deadline` of its slot, as when
    /// it waited behind a long run or a lock. Off by default.
    pub fn starting_deadline(mut self, deadline: Duration) -> Self {
        self.starting_deadline = Some(deadline);
        self
    }

    /// Delays each run by a random time below `jitter`, to spread fleets.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Cancels an attempt that runs longer than `timeout`; it counts as a
    /// failure.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries a failed, panicked or timed-out attempt up to `max_retries`
    /// times, waiting by `backoff`.
    pub fn retries(mut self, max_retries: u32, backoff: Backoff) -> Self {
        self.max_retries = max_retries;
        self.backoff = backoff;
        self
    }

    /// Runs each slot once across every scheduler that shares `lock`.
    ///
    /// The slot key `pulse:sched:v1:<job>:<slot ms>` is taken with
    /// [`Lock::try_acquire`](pulse_core::lock::Lock::try_acquire) and held
    /// until the next slot (at least `min_hold`), never released early, so
    /// it is also the record that the slot ran. An instance that finds the
    /// key taken counts the slot as skipped.
    pub fn single_run(mut self, lock: Arc<dyn DynLock>, min_hold: Duration) -> Self {
        self.single_run = Some(SingleRun {
            lock,
            prefix: "pulse:sched:v1".to_owned(),
            min_hold,
        });
        self
    }
}
