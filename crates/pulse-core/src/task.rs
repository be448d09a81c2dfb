//! The background-work contract shared by every primitive.
//!
//! Idle expiry, watchdogs, segment prefetch, invalidation listeners, message
//! reclaim and timers all run in the background. They follow one set of
//! rules, which [`Background`] implements:
//!
//! - They run on the caller's tokio runtime (captured when the owner was
//!   created), or on a dedicated thread where the primitive is synchronous.
//! - They stop when their owner is shut down or dropped. No task outlives
//!   its owner.
//! - `shutdown().await` asks them to stop and waits until they have.
//!
//! `Drop` cannot await, so an owner that is dropped without `shutdown` sets
//! the stop signal and aborts its tokio tasks; threads see the signal and
//! exit on their next check.

use std::future::Future;
use std::sync::Mutex;
use std::thread;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind};
use crate::signal::Signal;

/// The background tasks of one owner (a cache, a lock client, a scheduler).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::task::Background;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let tasks = Background::new("example-cache");
/// tasks.spawn("expiry", |stop| async move {
///     loop {
///         tokio::select! {
///             _ = stop.fired() => break,
///             _ = tokio::time::sleep(Duration::from_millis(10)) => { /* evict */ }
///         }
///     }
/// })?;
/// tasks.shutdown().await;
/// # Ok::<(), pulse_core::error::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Background {
    owner: &'static str,
    stop: Signal,
    tasks: Mutex<Vec<Worker>>,
}

#[derive(Debug)]
enum Worker {
    Task(&'static str, JoinHandle<()>),
    Thread(&'static str, thread::JoinHandle<()>),
}

impl Background {
    /// Creates an empty set of tasks for the owner named `owner` (used in
    /// logs).
    pub fn new(owner: &'static str) -> Self {
        Background {
            owner,
            stop: Signal::new(),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Returns the signal that tells the tasks to stop.
    pub fn stop_signal(&self) -> Signal {
        self.stop.clone()
    }

    /// Spawns a task on the current tokio runtime. The closure receives the
    /// stop signal and must return once it fires.
    ///
    /// Returns an error of kind [`ErrorKind::Unavailable`] when called outside
    /// a tokio runtime.
    pub fn spawn<F, Fut>(&self, name: &'static str, task: F) -> Result<(), Error>
    where
        F: FnOnce(Signal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{}: background task `{name}` needs a tokio runtime; create the owner inside one",
                    self.owner
                ),
            )
        })?;
        self.spawn_on(&handle, name, task);
        Ok(())
    }

    /// Spawns a task on the given runtime.
    pub fn spawn_on<F, Fut>(&self, handle: &Handle, name: &'static str, task: F)
    where
        F: FnOnce(Signal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let join = handle.spawn(task(self.stop.clone()));
        tracing::debug!(target: "pulse_core", owner = self.owner, task = name, "background task started");
        self.lock_tasks().push(Worker::Task(name, join));
    }

    /// Spawns a dedicated thread for synchronous background work. The closure
    /// receives the stop signal and must return soon after it fires.
    pub fn spawn_thread<F>(&self, name: &'static str, work: F) -> Result<(), Error>
    where
        F: FnOnce(Signal) + Send + 'static,
    {
        let stop = self.stop.clone();
        let join = thread::Builder::new()
            .name(format!("{}-{name}", self.owner))
            .spawn(move || work(stop))
            .map_err(|err| {
                Error::with_source(
                    ErrorKind::Unavailable,
                    format!("{}: failed to start thread `{name}`", self.owner),
                    err,
                )
            })?;
        tracing::debug!(target: "pulse_core", owner = self.owner, task = name, "background thread started");
        self.lock_tasks().push(Worker::Thread(name, join));
        Ok(())
    }

    /// Tells every task to stop and waits until all have. A task that
    /// panicked is logged at `error` and does not stop the others.
    pub async fn shutdown(&self) {
        self.stop.fire();
        let workers = std::mem::take(&mut *self.lock_tasks());
        for worker in workers {
            match worker {
                Worker::Task(name, join) => {
                    if let Err(err) = join.await {
                        if err.is_panic() {
                            tracing::error!(target: "pulse_core", owner = self.owner, task = name, "background task panicked");
                        }
                    }
                }
                Worker::Thread(name, join) => {
                    let joined = tokio::task::spawn_blocking(move || join.join()).await;
                    if !matches!(joined, Ok(Ok(()))) {
                        tracing::error!(target: "pulse_core", owner = self.owner, task = name, "background thread panicked");
                    }
                }
            }
        }
        tracing::debug!(target: "pulse_core", owner = self.owner, "background tasks stopped");
    }

    /// Returns whether shutdown was requested.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_fired()
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.fire();
        for worker in self.lock_tasks().drain(..) {
            if let Worker::Task(_, join) = worker {
                join.abort();
            }
        }
    }
}

/// Runs `future` on `handle` without waiting for it, for the best-effort
/// clean-up that `Drop` does (releasing a lease, returning permits).
///
/// When the runtime has already shut down, tokio drops the future unrun and
/// the clean-up does not happen; callers document that the server-side
/// expiry covers that case.
pub fn spawn_detached<Fut>(handle: &Handle, future: Fut)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    drop(handle.spawn(future));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn shutdown_waits_for_tasks() {
        let tasks = Background::new("test");
        let stopped = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let stopped = stopped.clone();
            tasks
                .spawn("worker", move |stop| async move {
                    stop.fired().await;
                    tokio::task::yield_now().await;
                    stopped.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
        }
        tasks.shutdown().await;
        assert_eq!(stopped.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn threads_stop_on_shutdown() {
        let tasks = Background::new("test");
        tasks
            .spawn_thread("ticker", |stop| {
                while !stop.is_fired() {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            })
            .unwrap();
        tasks.shutdown().await;
    }

    #[tokio::test]
    async fn panicking_task_does_not_stop_shutdown() {
        let tasks = Background::new("test");
        tasks.spawn("boom", |_| async { panic!("boom") }).unwrap();
        tasks
            .spawn("quiet", |stop| async move { stop.fired().await })
            .unwrap();
        tasks.shutdown().await;
    }

    #[tokio::test]
    async fn drop_aborts_tasks() {
        let tasks = Background::new("test");
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        tasks
            .spawn("holder", move |_| async move {
                let _keep = sender;
                std::future::pending::<()>().await;
            })
            .unwrap();
        drop(tasks);
        assert!(
            receiver.await.is_err(),
            "the aborted task dropped its sender"
        );
    }

    #[test]
    fn spawn_outside_runtime_is_an_error() {
        let tasks = Background::new("test");
        let err = tasks.spawn("x", |_| async {}).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
}
