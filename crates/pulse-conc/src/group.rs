//! A task group in the manner of Go's `errgroup`: tasks share a cancellation
//! token, and the first error cancels the rest and is returned.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, panic_message};
use crate::util::CatchUnwind;

/// How a task of a [`TaskGroup`] ended.
enum Outcome<E> {
    Done,
    Failed(E),
    Cancelled,
    Panicked(Box<dyn Any + Send>),
}

/// Why [`TaskGroup::wait`] failed.
#[derive(Debug, PartialEq, Eq)]
pub enum GroupError<E> {
    /// The first error a task returned.
    Task(E),
    /// A task panicked, and the group was built with
    /// [`panics_as_errors`](TaskGroup::panics_as_errors).
    Panicked(Error),
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Task(err) => err.fmt(f),
            GroupError::Panicked(err) => err.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for GroupError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GroupError::Task(err) => Some(err),
            GroupError::Panicked(err) => Some(err),
        }
    }
}

/// Runs tasks that share a cancellation token; the first error cancels the
/// others and is returned by [`wait`](TaskGroup::wait).
///
/// Cancelled tasks stop at their next await point: each task runs against
/// the token, so a task need not watch it (though it can, through the token
/// it is given, to stop a blocking loop or clean up). Dropping the group
/// aborts its tasks, so no task outlives it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_conc::TaskGroup;
///
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap().block_on(async {
/// let mut group = TaskGroup::new().limit(8).unwrap();
/// for id in 0..20u32 {
///     group
///         .spawn(move |_cancel| async move {
///             if id == 13 { Err(format!("order {id} failed")) } else { Ok(()) }
///         })
///         .await;
/// }
/// assert_eq!(group.wait().await.unwrap_err().to_string(), "order 13 failed");
/// # });
/// ```
pub struct TaskGroup<E> {
    tasks: JoinSet<Outcome<E>>,
    token: CancellationToken,
    limit: Option<(Arc<Semaphore>, usize)>,
    panics_as_errors: bool,
}

impl<E> fmt::Debug for TaskGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("tasks", &self.tasks.len())
            .field("cancelled", &self.token.is_cancelled())
            .field("limit", &self.limit.as_ref().map(|(_, limit)| limit))
            .finish()
    }
}

impl<E: Send + 'static> Default for TaskGroup<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Send + 'static> TaskGroup<E> {
    /// Creates a group with no concurrency limit and a fresh token.
    pub fn new() -> Self {
        Self::with_token(CancellationToken::new())
    }

    /// Creates a group whose token is `token`, so that cancelling `token`
    /// (or its parent) cancels the group.
    pub fn with_token(token: CancellationToken) -> Self {
        TaskGroup {
            tasks: JoinSet::new(),
            token,
            limit: None,
            panics_as_errors: false,
        }
    }

    /// Lets at most `limit` tasks run at once: [`spawn`](TaskGroup::spawn)
    /// waits for a free slot and [`try_spawn`](TaskGroup::try_spawn)
    /// refuses.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `limit` is zero.
    pub fn limit(mut self, limit: usize) -> Result<Self, Error> {
        if limit == 0 || limit > Semaphore::MAX_PERMITS {
            return Err(Error::config(
                "task group limit",
                limit,
                "allow at least 1 task at a time",
            ));
        }
        self.limit = Some((Arc::new(Semaphore::new(limit)), limit));
        Ok(self)
    }

    /// Makes a panicking task cancel the group and end [`wait`] with
    /// [`GroupError::Panicked`]. Without it, the panic is resumed in `wait`.
    ///
    /// [`wait`]: TaskGroup::wait
    pub fn panics_as_errors(mut self, enabled: bool) -> Self {
        self.panics_as_errors = enabled;
        self
    }

    /// Returns the group's cancellation token.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Cancels every task of the group.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Returns the number of tasks not yet collected by `wait`.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Returns whether the group has no task left to collect.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Starts `task` with a clone of the group's token, first waiting for a
    /// free slot when the group has a limit.
    pub async fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let permit = match &self.limit {
            Some((slots, _)) => {
                // The semaphore is never closed, so acquiring cannot fail.
                Arc::clone(slots).acquire_owned().await.ok()
            }
            None => None,
        };
        self.start(task, permit);
    }

    /// Starts `task` if the limit allows it now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when the group's limit of running tasks is reached.
    pub fn try_spawn<F, Fut>(&mut self, task: F) -> Result<(), Error>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let permit = match &self.limit {
            Some((slots, limit)) => match Arc::clone(slots).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return Err(Error::Full {
                        what: "task group",
                        capacity: *limit,
                    });
                }
            },
            None => None,
        };
        self.start(task, permit);
        Ok(())
    }

    fn start<F, Fut>(&mut self, task: F, permit: Option<OwnedSemaphorePermit>)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let token = self.token.clone();
        let future = task(token.clone());
        self.tasks.spawn(async move {
            let _permit = permit;
            let outcome = tokio::select! {
                biased;
                () = token.cancelled() => Outcome::Cancelled,
                result = CatchUnwind::new(future) => match result {
                    Ok(Ok(())) => Outcome::Done,
                    Ok(Err(err)) => Outcome::Failed(err),
                    Err(payload) => Outcome::Panicked(payload),
                },
            };

            // Cancelled here, inside the failing task, so that siblings wake
            // at once instead of when `wait` gets to this result.
            if matches!(outcome, Outcome::Failed(_) | Outcome::Panicked(_)) {
                token.cancel();
            }
            outcome
        });
    }

    /// Waits for every task and returns the first error, if any.
    ///
    /// # Errors
    ///
    /// [`GroupError::Task`] with the first error a task returned, or
    /// [`GroupError::Panicked`] for a panic when panics are errors.
    ///
    /// # Panics
    ///
    /// Resumes a task's panic unless the group was built with
    /// [`panics_as_errors`](TaskGroup::panics_as_errors).
    pub async fn wait(&mut self) -> Result<(), GroupError<E>> {
        let mut first: Option<GroupError<E>> = None;
        let mut panic: Option<Box<dyn Any + Send>> = None;
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = match joined {
                Ok(outcome) => outcome,
                Err(err) if err.is_panic() => Outcome::Panicked(err.into_panic()),
                Err(_) => Outcome::Cancelled,
            };
            match outcome {
                Outcome::Done | Outcome::Cancelled => {}
                Outcome::Failed(err) => {
                    first.get_or_insert(GroupError::Task(err));
                }
                Outcome::Panicked(payload) => {
                    let message = panic_message(payload.as_ref());
                    tracing::warn!(target: "pulse_conc", error = %message, "task group task panicked");
                    if self.panics_as_errors {
                        first.get_or_insert(GroupError::Panicked(Error::Panicked { message }));
                    } else if panic.is_none() {
                        panic = Some(payload);
                    }
                }
            }
        }
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
        match first {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}
