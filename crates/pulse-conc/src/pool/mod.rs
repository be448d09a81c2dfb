//! Worker pools: a fixed or elastic number of workers over a bounded queue.
//!
//! [`WorkerPool`] runs futures on tokio tasks; [`ThreadPool`] runs blocking
//! closures on its own threads. Both take the same [`PoolConfig`], return a
//! [`JobHandle`] per job, survive panicking jobs (the handle reports
//! [`Error::Panicked`](crate::Error::Panicked)), and shut down by draining
//! the queue or by cancelling what is left.
//!
//! Backpressure: `submit` waits while the queue is full, `try_submit`
//! returns [`Error::Full`](crate::Error::Full) at once. Memory is bounded by
//! the queue capacity plus one job per worker.

mod task;
mod thread;

pub use task::WorkerPool;
pub use thread::ThreadPool;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Error;

/// Sizes of a pool, checked when the pool is created.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_conc::pool::PoolConfig;
///
/// let fixed = PoolConfig::fixed(4).queue_capacity(1024);
/// let elastic = PoolConfig::elastic(1, 16).idle_timeout(Duration::from_secs(30));
/// # let _ = (fixed, elastic);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    pub(crate) min_workers: usize,
    pub(crate) max_workers: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) name: String,
}

impl PoolConfig {
    /// Creates the configuration of a pool of exactly `workers` workers,
    /// started at once.
    pub fn fixed(workers: usize) -> Self {
        Self::elastic(workers, workers)
    }
    /// Creates the configuration of a pool that keeps `min` workers and
    /// starts more, up to `max`, while
    /// jobs wait and no worker is idle. A worker above `min` stops after the
    /// idle timeout (default 60 s).
    pub fn elastic(min: usize, max: usize) -> Self {
        PoolConfig {
            min_workers: min,
            max_workers: max,
            queue_capacity: 1024,
            idle_timeout: Duration::from_secs(60),
            name: "pool".to_owned(),
        }
    }

    /// Sets how many jobs may wait for a worker (default 1024).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Sets how long a worker above the minimum waits for a job before it
    /// stops.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the name used in logs and as the thread name prefix.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.max_workers == 0 {
            return Err(Error::config("pool size", 0, "use at least 1 worker"));
        }
        if self.min_workers > self.max_workers {
            return Err(Error::config(
                "min workers",
                self.min_workers,
                "use a minimum no larger than the maximum",
            ));
        }
        if self.queue_capacity == 0 {
            return Err(Error::config(
                "queue capacity",
                0,
                "use a queue of at least 1 job",
            ));
        }
        Ok(())
    }
}

/// The handling of unfinished jobs at shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Run every queued job, then stop.
    Drain,
    /// Drop queued jobs (their handles report
    /// [`Error::Cancelled`](crate::Error::Cancelled)) and stop running
    /// futures at their next await point. A thread pool cannot stop a
    /// closure that already runs, so it waits for it.
    Cancel,
}

/// Counters of a pool, from `stats()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Workers alive.
    pub workers: usize,
    /// Jobs waiting in the queue.
    pub queued: usize,
    /// Jobs running now.
    pub running: usize,
    /// Jobs accepted since the pool started.
    pub submitted: u64,
    /// Jobs that finished, panicked ones included. The count moves just
    /// after the job's handle receives its result.
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs dropped by a cancelling shutdown.
    pub cancelled: u64,
    /// Submits rejected because the queue was full or the pool shut down.
    pub rejected: u64,
}

/// The result of one job: await it, or call
/// [`blocking_wait`](JobHandle::blocking_wait) from a thread.
///
/// Dropping the handle does not cancel the job.
pub struct JobHandle<T> {
    receiver: oneshot::Receiver<Result<T, Error>>,
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle").finish_non_exhaustive()
    }
}

impl<T> JobHandle<T> {
    pub(crate) fn new() -> (oneshot::Sender<Result<T, Error>>, JobHandle<T>) {
        let (sender, receiver) = oneshot::channel();
        (sender, JobHandle { receiver })
    }

    /// Blocks the thread until the job finished.
    ///
    /// # Errors
    ///
    /// As awaiting the handle.
    ///
    /// # Panics
    ///
    /// When called on a tokio runtime thread; await the handle there.
    pub fn blocking_wait(self) -> Result<T, Error> {
        self.receiver
            .blocking_recv()
            .unwrap_or(Err(Error::Cancelled))
    }
}

impl<T> Future for JobHandle<T> {
    /// The job's output, [`Error::Panicked`](crate::Error::Panicked), or
    /// [`Error::Cancelled`](crate::Error::Cancelled) when a shutdown dropped
    /// it.
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|received| received.unwrap_or(Err(Error::Cancelled)))
    }
}

/// The queue and worker counts, behind the pool's mutex.
pub(crate) struct Queue<J> {
    pub(crate) jobs: VecDeque<J>,
    pub(crate) closed: bool,
    pub(crate) workers: usize,
    pub(crate) idle: usize,
}

impl<J> Queue<J> {
    pub(crate) fn new(capacity: usize) -> Self {
        Queue {
            // Preallocated up to a modest size; a huge capacity grows as used.
            jobs: VecDeque::with_capacity(capacity.min(4096)),
            closed: false,
            workers: 0,
            idle: 0,
        }
    }

    /// Returns whether a new worker should start for a job just queued.
    pub(crate) fn wants_worker(&self, max_workers: usize) -> bool {
        self.idle == 0 && self.workers < max_workers
    }
}

/// Counters updated without the queue's mutex.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) running: AtomicUsize,
    pub(crate) submitted: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot<J>(&self, queue: &Queue<J>) -> PoolStats {
        PoolStats {
            workers: queue.workers,
            queued: queue.jobs.len(),
            running: self.running.load(Relaxed),
            submitted: self.submitted.load(Relaxed),
            completed: self.completed.load(Relaxed),
            panicked: self.panicked.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
        }
    }

    pub(crate) fn reject(&self, err: Error) -> Error {
        self.rejected.fetch_add(1, Relaxed);
        err
    }
}
