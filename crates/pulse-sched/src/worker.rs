//! The worker that runs persistent delayed jobs from a [`JobStore`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use pulse_core::BoxFuture;
use pulse_core::clock::{Clock, SystemClock};
use pulse_core::sched::{ClaimedJob, DynJobStore, JobStore};
use pulse_core::signal::Signal;
use pulse_core::task::Background;
use tokio::sync::Semaphore;

use crate::error::SchedError;
use crate::job::{JobError, panic_message};
use crate::policy::Backoff;

type Handler = Arc<dyn Fn(ClaimedJob) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// Settings of a [`JobWorker`].
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    poll_every: Duration,
    lease: Duration,
    max_attempts: u32,
    backoff: Backoff,
    concurrency: usize,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            poll_every: Duration::from_millis(200),
            lease: Duration::from_secs(60),
            max_attempts: 5,
            backoff: Backoff::default(),
            concurrency: 16,
        }
    }
}

impl WorkerOptions {
    /// Sets how long the worker waits between polls when no job was due
    /// (200 ms by default).
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll_every = every.max(Duration::from_millis(1));
        self
    }

    /// Sets how long a claimed job stays with this worker before another
    /// may take it (60 s by default). Make it longer than the slowest
    /// handler.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the attempts before a job is dead-lettered (5 by default, at
    /// least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the wait before a failed job is due again.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets how many handlers run at once (16 by default, at least 1).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }
}

/// Runs the handler for every due job of a store: acknowledges it when the
/// handler succeeds, retries it with backoff when it fails, and
/// dead-letters it after the last attempt.
///
/// Any number of workers, in any number of processes, may share a store;
/// the store hands each due job to one of them.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use bytes::Bytes;
/// use pulse_core::sched::{JobStore, NewJob};
/// use pulse_core::clock::{Clock, SystemClock};
/// use pulse_sched::store::MemoryJobStore;
/// use pulse_sched::{JobWorker, WorkerOptions};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let store = Arc::new(MemoryJobStore::new());
/// let (done, handled) = tokio::sync::mpsc::unbounded_channel();
/// let worker = JobWorker::start(
///     store.clone(),
///     WorkerOptions::default().poll_every(Duration::from_millis(5)),
///     move |job| {
///         let done = done.clone();
///         async move { done.send(job.payload).map_err(|e| e.to_string().into()) }
///     },
/// )?;
///
/// let now = SystemClock::new().wall();
/// store.push(NewJob { id: "welcome-mail-7".into(), payload: Bytes::from_static(b"7"), run_at: now }).await?;
/// # let mut handled = handled;
/// assert_eq!(handled.recv().await.unwrap(), Bytes::from_static(b"7"));
/// worker.shutdown().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct JobWorker {
    background: Background,
}

impl JobWorker {
    /// Starts a worker on the system clock.
    ///
    /// # Errors
    ///
    /// [`SchedError::Closed`] outside a tokio runtime.
    pub fn start<S, F, Fut>(
        store: S,
        options: WorkerOptions,
        handler: F,
    ) -> Result<JobWorker, SchedError>
    where
        S: JobStore + 'static,
        F: Fn(ClaimedJob) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        Self::start_with_clock(store, Arc::new(SystemClock::new()), options, handler)
    }

    /// Starts a worker on `clock` (a `ManualClock` in tests).
    ///
    /// # Errors
    ///
    /// [`SchedError::Closed`] outside a tokio runtime.
    pub fn start_with_clock<S, F, Fut>(
        store: S,
        clock: Arc<dyn Clock>,
        options: WorkerOptions,
        handler: F,
    ) -> Result<JobWorker, SchedError>
    where
        S: JobStore + 'static,
        F: Fn(ClaimedJob) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let store: Arc<dyn DynJobStore> = Arc::new(store);
        let handler: Handler = Arc::new(move |job| Box::pin(handler(job)));
        let background = Background::new("pulse_sched_worker");
        background
            .spawn("poller", move |stop| {
                poll(store, clock, options, handler, stop)
            })
            .map_err(|_| SchedError::Closed)?;
        tracing::debug!(target: "pulse_sched", "job worker started");
        Ok(JobWorker { background })
    }

    /// Stops polling and waits for the handlers that are running. Jobs they
    /// do not settle are handed out again when their lease ends.
    pub async fn shutdown(&self) {
        self.background.shutdown().await;
        tracing::debug!(target: "pulse_sched", "job worker stopped");
    }
}

async fn poll(
    store: Arc<dyn DynJobStore>,
    clock: Arc<dyn Clock>,
    options: WorkerOptions,
    handler: Handler,
    stop: Signal,
) {
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let free = permits.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match store.claim(clock.wall(), free, options.lease).await {
                Ok(jobs) => jobs,
                Err(err) => {
                    tracing::warn!(target: "pulse_sched", error = %err, "claiming jobs failed; retrying at the next poll");
                    Vec::new()
                }
            }
        };
        let idle = claimed.is_empty();
        for job in claimed {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            let (store, clock, handler, options) = (
                store.clone(),
                clock.clone(),
                handler.clone(),
                options.clone(),
            );
            running.spawn(async move {
                let _permit = permit;
                handle(&*store, &*clock, &handler, &options, job).await;
            });
        }
        if idle {
            tokio::select! {
                _ = stop.fired() => break,
                _ = clock.sleep(options.poll_every) => {}
            }
        } else if stop.is_fired() {
            break;
        }
    }
    while running.join_next().await.is_some() {}
}

async fn handle(
    store: &dyn DynJobStore,
    clock: &dyn Clock,
    handler: &Handler,
    options: &WorkerOptions,
    job: ClaimedJob,
) {
    let outcome = AssertUnwindSafe(handler(job.clone())).catch_unwind().await;
    let error = match outcome {
        Ok(Ok(())) => {
            if let Err(err) = store.ack(&job).await {
                tracing::warn!(target: "pulse_sched", job = %job.id, error = %err, "ack failed; the job may run again");
            }
            return;
        }
        Ok(Err(err)) => err.to_string(),
        Err(panic) => format!("panicked: {}", panic_message(&*panic)),
    };

    let settled = if job.attempt >= options.max_attempts {
        tracing::warn!(target: "pulse_sched", job = %job.id, attempt = job.attempt, error = %error, "job dead-lettered");
        store.dead_letter(&job, &error).await
    } else {
        let delay = options.backoff.delay(job.attempt);
        tracing::info!(target: "pulse_sched", job = %job.id, attempt = job.attempt, error = %error, retry_in = ?delay, "job failed; retrying");
        store
            .retry(&job, clock.wall().saturating_add(delay), &error)
            .await
    };
    if let Err(err) = settled {
        tracing::warn!(target: "pulse_sched", job = %job.id, error = %err, "settling a failed job failed; it is handed out again after its lease");
    }
}
