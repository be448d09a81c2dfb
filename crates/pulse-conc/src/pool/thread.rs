//! The blocking worker pool: workers are OS threads that run queued
//! closures one at a time.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{Counters, JobHandle, PoolConfig, PoolStats, Queue, Shutdown};
use crate::error::Error;
use crate::util::lock;

/// A queued closure; it returns `true` when the job panicked.
type Job = Box<dyn FnOnce() -> bool + Send>;

/// A pool of threads that run submitted blocking closures over a bounded
/// queue: the thread flavour of [`WorkerPool`](super::WorkerPool).
///
/// Handles can be awaited from async code or waited on from a thread, so
/// the pool also serves as a bounded home for blocking work of an async
/// service. Dropping the pool closes it: threads run what is queued, then
/// stop, without the drop waiting for them.
///
/// # Examples
///
/// ```
/// use pulse_conc::pool::{PoolConfig, Shutdown, ThreadPool};
///
/// let pool = ThreadPool::new(PoolConfig::fixed(2).queue_capacity(8)).unwrap();
/// let handles: Vec<_> = (0..4u64).map(|n| pool.submit(move || n * n).unwrap()).collect();
/// let squares: Vec<u64> = handles.into_iter().map(|h| h.blocking_wait().unwrap()).collect();
/// assert_eq!(squares, [0, 1, 4, 9]);
/// pool.shutdown(Shutdown::Drain);
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue<Job>>,
    config: PoolConfig,
    not_empty: Condvar,
    not_full: Condvar,
    all_stopped: Condvar,
    counters: Counters,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("name", &self.shared.config.name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl ThreadPool {
    /// Creates a pool and starts its minimum number of threads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero workers, a minimum above the
    /// maximum or a zero queue capacity; [`Error::Closed`] when the system
    /// refused to start a thread.
    pub fn new(config: PoolConfig) -> Result<ThreadPool, Error> {
        config.check()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::new(config.queue_capacity)),
            config,
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_stopped: Condvar::new(),
            counters: Counters::default(),
        });
        {
            let mut queue = lock(&shared.queue);
            for _ in 0..shared.config.min_workers {
                start_thread(&shared, &mut queue)?;
            }
        }
        Ok(ThreadPool { shared })
    }

    /// Queues `job`, blocking the thread while the queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the pool is shutting down.
    pub fn submit<F, T>(&self, job: F) -> Result<JobHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.push(job, true)
    }

    /// Queues `job` if there is room now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when the queue is full, [`Error::Closed`] once the
    /// pool is shutting down.
    pub fn try_submit<F, T>(&self, job: F) -> Result<JobHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.push(job, false)
    }

    fn push<F, T>(&self, job: F, wait: bool) -> Result<JobHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = &self.shared;
        let capacity = shared.config.queue_capacity;
        let mut queue = lock(&shared.queue);
        loop {
            if queue.closed {
                return Err(shared.counters.reject(Error::Closed {
                    what: "thread pool",
                }));
            }
            if queue.jobs.len() < capacity {
                break;
            }
            if !wait {
                return Err(shared.counters.reject(Error::Full {
                    what: "thread pool queue",
                    capacity,
                }));
            }
            queue = shared
                .not_full
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }

        let (handle, job) = wrap(job);
        queue.jobs.push_back(job);
        if queue.wants_worker(shared.config.max_workers) {
            // Queued jobs still run on the threads already there when a new
            // one cannot start.
            if let Err(err) = start_thread(shared, &mut queue) {
                tracing::warn!(target: "pulse_conc", error = %err, "thread pool could not grow");
            }
        }
        drop(queue);

        shared.counters.submitted.fetch_add(1, Relaxed);
        shared.not_empty.notify_one();
        Ok(handle)
    }

    /// Returns the pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.shared.counters.snapshot(&lock(&self.shared.queue))
    }

    /// Stops accepting jobs, drains or drops what is queued, and blocks
    /// until every thread has stopped. A closure already running is always
    /// waited for.
    pub fn shutdown(&self, mode: Shutdown) {
        let shared = &self.shared;
        let mut queue = lock(&shared.queue);
        queue.closed = true;
        if mode == Shutdown::Cancel {
            let dropped: Vec<Job> = queue.jobs.drain(..).collect();
            shared
                .counters
                .cancelled
                .fetch_add(dropped.len() as u64, Relaxed);
            drop(dropped);
        }
        shared.not_empty.notify_all();
        shared.not_full.notify_all();
        while queue.workers > 0 {
            queue = shared
                .all_stopped
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.not_empty.notify_all();
        self.shared.not_full.notify_all();
    }
}

fn wrap<F, T>(job: F) -> (JobHandle<T>, Job)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (sender, handle) = JobHandle::new();
    let job: Job = Box::new(move || {
        let (result, panicked) = match catch_unwind(AssertUnwindSafe(job)) {
            Ok(output) => (Ok(output), false),
            Err(payload) => {
                let err = Error::from_panic(payload);
                tracing::warn!(target: "pulse_conc", error = %err, "thread pool job panicked");
                (Err(err), true)
            }
        };
        let _ = sender.send(result);
        panicked
    });
    (handle, job)
}

fn start_thread(shared: &Arc<Shared>, queue: &mut MutexGuard<'_, Queue<Job>>) -> Result<(), Error> {
    let worker = Arc::clone(shared);
    let name = format!("{}-{}", shared.config.name, queue.workers);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || worker.run())
        .map_err(|err| {
            tracing::warn!(target: "pulse_conc", error = %err, "failed to start a pool thread");
            Error::Closed {
                what: "thread pool",
            }
        })?;
    queue.workers += 1;
    Ok(())
}

impl Shared {
    fn run(&self) {
        while let Some(job) = self.next_job() {
            self.counters.running.fetch_add(1, Relaxed);
            let panicked = job();
            self.counters.running.fetch_sub(1, Relaxed);
            if panicked {
                self.counters.panicked.fetch_add(1, Relaxed);
            }
            self.counters.completed.fetch_add(1, Relaxed);
        }
    }

    fn next_job(&self) -> Option<Job> {
        let elastic = self.config.min_workers < self.config.max_workers;
        let mut queue = lock(&self.queue);
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                drop(queue);
                self.not_full.notify_one();
                return Some(job);
            }
            if queue.closed {
                break;
            }
            queue.idle += 1;
            let timed_out = if elastic {
                let (guard, wait) = self
                    .not_empty
                    .wait_timeout(queue, self.config.idle_timeout)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                queue = guard;
                wait.timed_out()
            } else {
                queue = self
                    .not_empty
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                false
            };
            queue.idle -= 1;
            if timed_out && queue.jobs.is_empty() && queue.workers > self.config.min_workers {
                break;
            }
        }
        queue.workers -= 1;
        if queue.workers == 0 {
            self.all_stopped.notify_all();
        }
        None
    }
}
