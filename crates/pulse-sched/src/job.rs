//! Recurring jobs: the definition, the context a run gets, its counters,
//! and one run from lock to report.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use pulse_core::BoxFuture;
use pulse_core::clock::{Clock, WallTime};
use pulse_core::lock::Lock;
use pulse_core::sched::Schedule;

use crate::policy::JobOptions;

/// The error a job handler returns.
pub type JobError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub(crate) type Handler =
    Arc<dyn Fn(JobContext) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// The context that each run of a recurring job receives.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The job's name.
    pub name: Arc<str>,
    /// The scheduled slot (UTC) this run is for.
    pub slot: WallTime,
    /// The attempt, starting at 1.
    pub attempt: u32,
    /// The fencing token of the slot lock, when the job runs once per
    /// fleet and the lock issues tokens.
    pub fencing_token: Option<u64>,
}

/// A recurring job: a name, a [`Schedule`], policies and a handler.
///
/// # Examples
///
/// ```
/// use pulse_sched::{Cron, Job, JobOptions, Overlap};
///
/// let job = Job::new("nightly-report", Cron::parse("@daily")?, |ctx| async move {
///     println!("report for slot {}", ctx.slot);
///     Ok(())
/// })
/// .options(JobOptions::default().overlap(Overlap::Skip));
/// assert_eq!(job.name(), "nightly-report");
/// # Ok::<(), pulse_sched::SchedError>(())
/// ```
pub struct Job {
    pub(crate) name: Arc<str>,
    pub(crate) schedule: Arc<dyn Schedule>,
    pub(crate) handler: Handler,
    pub(crate) options: JobOptions,
}

impl Job {
    /// Creates a job with the default [`JobOptions`].
    pub fn new<S, F, Fut>(name: &str, schedule: S, handler: F) -> Job
    where
        S: Schedule + 'static,
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        Job {
            name: Arc::from(name),
            schedule: Arc::new(schedule),
            handler: Arc::new(move |ctx| Box::pin(handler(ctx))),
            options: JobOptions::default(),
        }
    }

    /// Sets the policies.
    pub fn options(mut self, options: JobOptions) -> Job {
        self.options = options;
        self
    }

    /// Returns the name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish()
    }
}

/// Counters of one job, readable at any time through
/// [`JobHandle::stats`](crate::JobHandle::stats).
#[derive(Debug, Default)]
pub(crate) struct JobStats {
    pub(crate) fired: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) max_late_nanos: AtomicU64,
}

/// A copy of a job's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Runs started (after the overlap, deadline and lock checks).
    pub fired: u64,
    /// Runs whose handler succeeded, possibly after retries.
    pub succeeded: u64,
    /// Runs that failed on every attempt (errors, panics, timeouts).
    pub failed: u64,
    /// Slots not run: overlap, misfire, starting deadline, or another
    /// instance held the slot.
    pub skipped: u64,
    /// Attempts retried after a failure.
    pub retried: u64,
    /// The largest lateness seen between a slot and the start of its run.
    pub max_late: Duration,
}

impl JobStats {
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            fired: self.fired.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            max_late: Duration::from_nanos(self.max_late_nanos.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn skip(&self, name: &str, slot: WallTime, reason: &'static str) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "pulse_sched", job = name, slot = slot.as_millis(), reason, "slot skipped");
        #[cfg(feature = "metrics")]
        metrics::counter!("pulse_sched_job_skipped_total", "job" => name.to_owned(), "reason" => reason)
            .increment(1);
    }
}

/// Everything one run needs, taken from the job when the slot came.
pub(crate) struct RunPlan {
    pub(crate) name: Arc<str>,
    pub(crate) slot: WallTime,
    pub(crate) next_slot: Option<WallTime>,
    pub(crate) handler: Handler,
    pub(crate) options: JobOptions,
    pub(crate) stats: Arc<JobStats>,
}

/// Runs one slot: jitter, deadline check, slot lock, attempts with retries,
/// report. Panics and timeouts count as failed attempts.
pub(crate) async fn run_slot(plan: RunPlan, clock: Arc<dyn Clock>) {
    let RunPlan {
        name,
        slot,
        next_slot,
        handler,
        options,
        stats,
    } = plan;

    if !options.jitter.is_zero() {
        let nanos = rand::random_range(0..options.jitter.as_nanos().max(1) as u64);
        clock.sleep(Duration::from_nanos(nanos)).await;
    }

    let late = clock.wall().saturating_duration_since(slot);
    if options
        .starting_deadline
        .is_some_and(|deadline| late > deadline)
    {
        stats.skip(&name, slot, "starting deadline passed");
        return;
    }

    // The slot lock is never released: it expires when the slot ends, so
    // that it also records that the slot ran.
    let mut lease = None;
    if let Some(single) = &options.single_run {
        let key = format!("{}:{}:{}", single.prefix, name, slot.as_millis());
        let period = next_slot
            .map(|next| next.saturating_duration_since(slot))
            .unwrap_or(single.min_hold);
        let hold = period.max(single.min_hold);
        match single.lock.try_acquire(&key, hold).await {
            Ok(Some(held)) => lease = Some(held),
            Ok(None) => {
                stats.skip(&name, slot, "another instance holds the slot");
                return;
            }
            Err(err) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "pulse_sched", job = &*name, slot = slot.as_millis(), error = %err, "slot lock failed; slot not run");
                return;
            }
        }
    }

    stats.fired.fetch_add(1, Ordering::Relaxed);
    stats.max_late_nanos.fetch_max(
        late.as_nanos().min(u64::MAX as u128) as u64,
        Ordering::Relaxed,
    );
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("pulse_sched_job_fired_total", "job" => name.to_string()).increment(1);
        metrics::histogram!("pulse_sched_job_late_seconds", "job" => name.to_string())
            .record(late.as_secs_f64());
    }

    let fencing_token = lease.as_ref().and_then(|l| l.fencing_token());
    let mut attempt = 1;
    loop {
        let ctx = JobContext {
            name: name.clone(),
            slot,
            attempt,
            fencing_token,
        };
        let outcome = attempt_once(&handler, ctx, options.timeout, &clock).await;
        match outcome {
            Ok(()) => {
                stats.succeeded.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(reason) if attempt <= options.max_retries => {
                let delay = options.backoff.delay(attempt);
                tracing::info!(target: "pulse_sched", job = &*name, slot = slot.as_millis(), attempt, error = %reason, retry_in = ?delay, "job attempt failed; retrying");
                stats.retried.fetch_add(1, Ordering::Relaxed);
                clock.sleep(delay).await;
                attempt += 1;
            }
            Err(reason) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "pulse_sched", job = &*name, slot = slot.as_millis(), attempt, error = %reason, "job failed");
                #[cfg(feature = "metrics")]
                metrics::counter!("pulse_sched_job_failed_total", "job" => name.to_string())
                    .increment(1);
                break;
            }
        }
    }

    if let Some(mut lease) = lease {
        lease.disarm();
    }
}

async fn attempt_once(
    handler: &Handler,
    ctx: JobContext,
    timeout: Option<Duration>,
    clock: &Arc<dyn Clock>,
) -> Result<(), String> {
    let run = AssertUnwindSafe(handler(ctx)).catch_unwind();
    let result = match timeout {
        None => run.await,
        Some(limit) => {
            tokio::select! {
                result = run => result,
                _ = clock.sleep(limit) => return Err(format!("timed out after {limit:?}")),
            }
        }
    };
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(panic) => Err(format!("panicked: {}", panic_message(&panic))),
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-text panic".to_owned()
    }
}
