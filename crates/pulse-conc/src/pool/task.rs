//! The async worker pool: workers are tokio tasks that run queued futures
//! one at a time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Counters, JobHandle, PoolConfig, PoolStats, Queue, Shutdown};
use crate::error::Error;
use crate::util::{CatchUnwind, lock};

/// A queued job; it returns `true` when the job panicked.
type Job = Pin<Box<dyn Future<Output = bool> + Send>>;

/// A pool of tokio tasks that run submitted futures over a bounded queue.
///
/// Unlike `tokio::spawn`, the number of futures running at once is capped
/// at the worker count, and the number waiting at the queue capacity, so a
/// burst of a million submits uses a bounded amount of memory.
///
/// Dropping the pool closes it: workers run what is queued, then stop.
///
/// # Examples
///
/// ```
/// use pulse_conc::pool::{PoolConfig, Shutdown, WorkerPool};
///
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(async {
/// let pool = WorkerPool::new(PoolConfig::fixed(4).queue_capacity(100)).unwrap();
///
/// let handle = pool.submit(async { 6 * 7 }).await.unwrap();
/// assert_eq!(handle.await.unwrap(), 42);
///
/// // A panicking job is reported on its handle; the worker carries on.
/// let bad = pool.submit(async { panic!("bad input") }).await.unwrap();
/// assert!(bad.await.is_err());
/// assert_eq!(pool.submit(async { 1 }).await.unwrap().await.unwrap(), 1);
///
/// pool.shutdown(Shutdown::Drain).await;
/// assert!(pool.try_submit(async {}).is_err());
/// # });
/// ```
pub struct WorkerPool {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue<Job>>,
    config: PoolConfig,
    not_empty: Notify,
    not_full: Notify,
    all_stopped: Notify,
    cancel: CancellationToken,
    counters: Counters,
    runtime: Handle,
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.shared.config.name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl WorkerPool {
    /// Creates a pool on the current tokio runtime and starts its minimum
    /// number of workers.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero workers, a minimum above the
    /// maximum, a zero queue capacity, when no tokio runtime is running, or
    /// for an elastic pool on a runtime without the time driver.
    pub fn new(config: PoolConfig) -> Result<WorkerPool, Error> {
        config.check()?;
        let runtime = Handle::try_current().map_err(|_| {
            Error::config("runtime", "none", "create the pool inside a tokio runtime")
        })?;
        if config.min_workers < config.max_workers && !has_timer() {
            return Err(Error::config(
                "runtime",
                "without the time driver",
                "build the runtime with `enable_time()` (or `enable_all()`): elastic pools stop idle workers on a timer",
            ));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::new(config.queue_capacity)),
            config,
            not_empty: Notify::new(),
            not_full: Notify::new(),
            all_stopped: Notify::new(),
            cancel: CancellationToken::new(),
            counters: Counters::default(),
            runtime,
        });
        {
            let mut queue = lock(&shared.queue);
            for _ in 0..shared.config.min_workers {
                queue.workers += 1;
                start_worker(&shared);
            }
        }
        tracing::debug!(
            target: "pulse_conc",
            pool = %shared.config.name,
            min_workers = shared.config.min_workers,
            max_workers = shared.config.max_workers,
            queue_capacity = shared.config.queue_capacity,
            "worker pool started"
        );
        Ok(WorkerPool { shared })
    }

    /// Queues `job`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the pool is shutting down.
    pub async fn submit<F>(&self, job: F) -> Result<JobHandle<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (handle, mut job) = wrap(job);
        loop {
            let not_full = self.shared.not_full.notified();
            tokio::pin!(not_full);
            not_full.as_mut().enable();
            match self.shared.push(job) {
                Ok(()) => return Ok(handle),
                Err((returned, Error::Full { .. })) => job = returned,
                Err((_, err)) => return Err(self.shared.counters.reject(err)),
            }
            not_full.await;
        }
    }

    /// Queues `job` if there is room now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when the queue is full, [`Error::Closed`] once the
    /// pool is shutting down.
    pub fn try_submit<F>(&self, job: F) -> Result<JobHandle<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (handle, job) = wrap(job);
        match self.shared.push(job) {
            Ok(()) => Ok(handle),
            Err((_, err)) => Err(self.shared.counters.reject(err)),
        }
    }

    /// Returns the pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.shared.counters.snapshot(&lock(&self.shared.queue))
    }

    /// Stops accepting jobs, drains or cancels what is left, and waits until
    /// every worker has stopped. Calling it again only waits.
    pub async fn shutdown(&self, mode: Shutdown) {
        let shared = &self.shared;
        let dropped = {
            let mut queue = lock(&shared.queue);
            queue.closed = true;
            match mode {
                Shutdown::Drain => Vec::new(),
                Shutdown::Cancel => queue.jobs.drain(..).collect(),
            }
        };
        shared
            .counters
            .cancelled
            .fetch_add(dropped.len() as u64, Relaxed);
        drop(dropped);
        if mode == Shutdown::Cancel {
            shared.cancel.cancel();
        }
        shared.not_empty.notify_waiters();
        shared.not_full.notify_waiters();

        loop {
            let stopped = shared.all_stopped.notified();
            tokio::pin!(stopped);
            stopped.as_mut().enable();
            if lock(&shared.queue).workers == 0 {
                break;
            }
            stopped.await;
        }
        tracing::debug!(target: "pulse_conc", pool = %shared.config.name, ?mode, "worker pool stopped");
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.not_empty.notify_waiters();
        self.shared.not_full.notify_waiters();
    }
}

/// Returns whether the current runtime has the time driver. Tokio offers no
/// query for it; creating a timer without the driver panics, so the probe
/// catches that panic (the panic hook still prints it).
fn has_timer() -> bool {
    std::panic::catch_unwind(|| drop(tokio::time::sleep(std::time::Duration::ZERO))).is_ok()
}

/// Boxes `job` with the sender of its result.
fn wrap<F>(job: F) -> (JobHandle<F::Output>, Job)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (sender, handle) = JobHandle::new();
    let job = Box::pin(async move {
        let (result, panicked) = match CatchUnwind::new(job).await {
            Ok(output) => (Ok(output), false),
            Err(payload) => {
                let err = Error::from_panic(payload);
                tracing::warn!(target: "pulse_conc", error = %err, "worker pool job panicked");
                (Err(err), true)
            }
        };
        let _ = sender.send(result);
        panicked
    });
    (handle, job)
}

impl Shared {
    /// Queues a job, or returns it with the reason it was not queued.
    fn push(self: &Arc<Self>, job: Job) -> Result<(), (Job, Error)> {
        let mut queue = lock(&self.queue);
        if queue.closed {
            return Err((
                job,
                Error::Closed {
                    what: "worker pool",
                },
            ));
        }
        if queue.jobs.len() >= self.config.queue_capacity {
            return Err((
                job,
                Error::Full {
                    what: "worker pool queue",
                    capacity: self.config.queue_capacity,
                },
            ));
        }
        queue.jobs.push_back(job);
        if queue.wants_worker(self.config.max_workers) {
            queue.workers += 1;
            start_worker(self);
        }
        drop(queue);

        self.counters.submitted.fetch_add(1, Relaxed);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Takes the next job; `None` when the worker should stop.
    async fn next_job(&self) -> Option<Job> {
        loop {
            let not_empty = self.not_empty.notified();
            tokio::pin!(not_empty);
            not_empty.as_mut().enable();
            {
                let mut queue = lock(&self.queue);
                if let Some(job) = queue.jobs.pop_front() {
                    let more = !queue.jobs.is_empty();
                    drop(queue);

                    // One wake-up per push can be lost to a worker that was
                    // not waiting yet, so a worker that leaves jobs behind
                    // wakes the next one.
                    if more {
                        self.not_empty.notify_one();
                    }
                    self.not_full.notify_one();
                    return Some(job);
                }
                if queue.closed {
                    return self.stop_worker(queue);
                }
                queue.idle += 1;
            }

            // Only an elastic pool touches the timer, so a fixed pool also
            // runs on a runtime built without the time driver.
            let elastic = self.config.min_workers < self.config.max_workers;
            let idle_timeout = async {
                if elastic {
                    tokio::time::sleep(self.config.idle_timeout).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let timed_out = tokio::select! {
                () = &mut not_empty => false,
                () = idle_timeout => true,
            };
            let mut queue = lock(&self.queue);
            queue.idle -= 1;
            if timed_out && queue.jobs.is_empty() && queue.workers > self.config.min_workers {
                return self.stop_worker(queue);
            }
        }
    }

    fn stop_worker(&self, mut queue: std::sync::MutexGuard<'_, Queue<Job>>) -> Option<Job> {
        queue.workers -= 1;
        if queue.workers == 0 {
            self.all_stopped.notify_waiters();
        }
        None
    }
}

/// Keeps the worker count right when a worker task ends other than by
/// `next_job` returning `None`, such as when its runtime shuts down.
struct WorkerGuard {
    shared: Arc<Shared>,
    stopped: bool,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        if !self.stopped {
            tracing::debug!(
                target: "pulse_conc",
                pool = %self.shared.config.name,
                "worker pool worker dropped before shutdown"
            );
            let queue = lock(&self.shared.queue);
            self.shared.stop_worker(queue);
        }
    }
}

fn start_worker(shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    let runtime = shared.runtime.clone();
    runtime.spawn(async move {
        let mut guard = WorkerGuard {
            shared: Arc::clone(&shared),
            stopped: false,
        };
        run_worker(&shared).await;
        guard.stopped = true;
    });
}

async fn run_worker(shared: &Shared) {
    while let Some(job) = shared.next_job().await {
        shared.counters.running.fetch_add(1, Relaxed);
        let panicked = tokio::select! {
            biased;
            panicked = job => Some(panicked),
            () = shared.cancel.cancelled() => None,
        };
        shared.counters.running.fetch_sub(1, Relaxed);
        match panicked {
            Some(true) => {
                shared.counters.panicked.fetch_add(1, Relaxed);
                shared.counters.completed.fetch_add(1, Relaxed);
            }
            Some(false) => {
                shared.counters.completed.fetch_add(1, Relaxed);
            }
            None => {
                shared.counters.cancelled.fetch_add(1, Relaxed);
            }
        }
    }
}
