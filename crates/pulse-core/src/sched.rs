//! The scheduling contracts: when a recurring job fires next
//! ([`Schedule`]), and where persistent delayed jobs wait ([`JobStore`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::BoxFuture;
use crate::clock::WallTime;
use crate::error::Result;

/// A recurring schedule: a cron expression in a time zone, a fixed interval,
/// or anything else that can say when it fires next.
///
/// # Contract for implementors
///
/// - [`next_after`](Schedule::next_after) returns a time strictly after
///   `after`, or `None` when the schedule never fires again.
/// - It is a pure function of its argument: the scheduler may call it again
///   with the same instant after a wall-clock step and expects the same
///   answer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::clock::WallTime;
/// use pulse_core::sched::Schedule;
///
/// /// Fires on every whole minute.
/// struct EveryMinute;
///
/// impl Schedule for EveryMinute {
///     fn next_after(&self, after: WallTime) -> Option<WallTime> {
///         Some(WallTime::from_secs((after.as_secs() / 60 + 1) * 60))
///     }
/// }
///
/// let next = EveryMinute.next_after(WallTime::from_secs(90)).unwrap();
/// assert_eq!(next, WallTime::from_secs(120));
/// ```
pub trait Schedule: Send + Sync {
    /// Returns the first fire time strictly after `after`.
    fn next_after(&self, after: WallTime) -> Option<WallTime>;
}

impl<S: Schedule + ?Sized> Schedule for Arc<S> {
    fn next_after(&self, after: WallTime) -> Option<WallTime> {
        (**self).next_after(after)
    }
}

impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn next_after(&self, after: WallTime) -> Option<WallTime> {
        (**self).next_after(after)
    }
}

/// A delayed job to store: a unique id, a payload and the time it is due.
///
/// The id makes the job unique: storing a second job with the id of one
/// that is still pending, running or dead-lettered changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// Unique id of the job within its store.
    pub id: String,
    /// Opaque payload handed to the handler.
    pub payload: bytes::Bytes,
    /// When the job is due (UTC).
    pub run_at: WallTime,
}

/// A job handed to one worker by [`JobStore::claim`].
///
/// The claim lasts until its lease ends; a job that is neither acked,
/// retried nor dead-lettered by then is handed out again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The job's id.
    pub id: String,
    /// The job's payload.
    pub payload: bytes::Bytes,
    /// The attempt this claim starts, from 1.
    pub attempt: u32,
    /// Proves this claim to the store; a stale claim's ack is refused.
    pub token: String,
}

/// A dead-lettered job, kept for inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadJob {
    /// The job's id.
    pub id: String,
    /// The job's payload.
    pub payload: bytes::Bytes,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure.
    pub error: String,
}

/// Storage for persistent delayed jobs, shared by any number of workers.
///
/// # Contract for implementors
///
/// - [`push`](JobStore::push) is idempotent by id: it returns `false` and
///   changes nothing when a job with that id exists (pending, claimed or
///   dead-lettered).
/// - [`claim`](JobStore::claim) hands each due job (`run_at <= now`) to one
///   caller at a time, increments its attempt count, and hands it out again
///   once `lease` has passed without a settle call. Two concurrent claims
///   never return the same job.
/// - [`ack`](JobStore::ack), [`retry`](JobStore::retry) and
///   [`dead_letter`](JobStore::dead_letter) settle a claim; with a token
///   that is no longer current they fail with
///   [`ErrorKind::NotOwner`](crate::error::ErrorKind::NotOwner) and change
///   nothing.
/// - Jobs survive a restart of the process that stored them, when the
///   backend is persistent.
/// - Times are passed in by the caller (from its clock), so tests can run
///   on a manual clock.
pub trait JobStore: Send + Sync {
    /// Stores a job; returns `false` when its id exists already.
    fn push(&self, job: NewJob) -> impl Future<Output = Result<bool>> + Send;

    /// Claims up to `max` jobs due at `now`, each for `lease`.
    fn claim(
        &self,
        now: WallTime,
        max: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<ClaimedJob>>> + Send;

    /// Removes a job whose handler succeeded.
    fn ack(&self, job: &ClaimedJob) -> impl Future<Output = Result<()>> + Send;

    /// Puts a failed job back, due again at `run_at`.
    fn retry(
        &self,
        job: &ClaimedJob,
        run_at: WallTime,
        error: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Moves a job that failed for the last time to the dead letters.
    fn dead_letter(&self, job: &ClaimedJob, error: &str)
    -> impl Future<Output = Result<()>> + Send;

    /// Removes a pending job; returns whether it was pending.
    fn cancel(&self, id: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Lists up to `max` dead-lettered jobs.
    fn dead_letters(&self, max: usize) -> impl Future<Output = Result<Vec<DeadJob>>> + Send;
}

/// The object-safe companion of [`JobStore`], implemented for every store;
/// `dyn DynJobStore` implements [`JobStore`] again.
pub trait DynJobStore: Send + Sync {
    /// Boxed form of [`JobStore::push`].
    fn push_boxed(&self, job: NewJob) -> BoxFuture<'_, Result<bool>>;
    /// Boxed form of [`JobStore::claim`].
    fn claim_boxed(
        &self,
        now: WallTime,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>>>;
    /// Boxed form of [`JobStore::ack`].
    fn ack_boxed<'a>(&'a self, job: &'a ClaimedJob) -> BoxFuture<'a, Result<()>>;
    /// Boxed form of [`JobStore::retry`].
    fn retry_boxed<'a>(
        &'a self,
        job: &'a ClaimedJob,
        run_at: WallTime,
        error: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// Boxed form of [`JobStore::dead_letter`].
    fn dead_letter_boxed<'a>(
        &'a self,
        job: &'a ClaimedJob,
        error: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// Boxed form of [`JobStore::cancel`].
    fn cancel_boxed<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// Boxed form of [`JobStore::dead_letters`].
    fn dead_letters_boxed(&self, max: usize) -> BoxFuture<'_, Result<Vec<DeadJob>>>;
}

impl<S: JobStore> DynJobStore for S {
    fn push_boxed(&self, job: NewJob) -> BoxFuture<'_, Result<bool>> {
        Box::pin(JobStore::push(self, job))
    }

    fn claim_boxed(
        &self,
        now: WallTime,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>>> {
        Box::pin(JobStore::claim(self, now, max, lease))
    }

    fn ack_boxed<'a>(&'a self, job: &'a ClaimedJob) -> BoxFuture<'a, Result<()>> {
        Box::pin(JobStore::ack(self, job))
    }

    fn retry_boxed<'a>(
        &'a self,
        job: &'a ClaimedJob,
        run_at: WallTime,
        error: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(JobStore::retry(self, job, run_at, error))
    }

    fn dead_letter_boxed<'a>(
        &'a self,
        job: &'a ClaimedJob,
        error: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(JobStore::dead_letter(self, job, error))
    }

    fn cancel_boxed<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(JobStore::cancel(self, id))
    }

    fn dead_letters_boxed(&self, max: usize) -> BoxFuture<'_, Result<Vec<DeadJob>>> {
        Box::pin(JobStore::dead_letters(self, max))
    }
}

impl JobStore for dyn DynJobStore + '_ {
    async fn push(&self, job: NewJob) -> Result<bool> {
        self.push_boxed(job).await
    }

    async fn claim(&self, now: WallTime, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        self.claim_boxed(now, max, lease).await
    }

    async fn ack(&self, job: &ClaimedJob) -> Result<()> {
        self.ack_boxed(job).await
    }

    async fn retry(&self, job: &ClaimedJob, run_at: WallTime, error: &str) -> Result<()> {
        self.retry_boxed(job, run_at, error).await
    }

    async fn dead_letter(&self, job: &ClaimedJob, error: &str) -> Result<()> {
        self.dead_letter_boxed(job, error).await
    }

    async fn cancel(&self, id: &str) -> Result<bool> {
        self.cancel_boxed(id).await
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadJob>> {
        self.dead_letters_boxed(max).await
    }
}

impl<S: JobStore + ?Sized> JobStore for Arc<S> {
    fn push(&self, job: NewJob) -> impl Future<Output = Result<bool>> + Send {
        (**self).push(job)
    }

    fn claim(
        &self,
        now: WallTime,
        max: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<ClaimedJob>>> + Send {
        (**self).claim(now, max, lease)
    }

    fn ack(&self, job: &ClaimedJob) -> impl Future<Output = Result<()>> + Send {
        (**self).ack(job)
    }

    fn retry(
        &self,
        job: &ClaimedJob,
        run_at: WallTime,
        error: &str,
    ) -> impl Future<Output = Result<()>> + Send {
        (**self).retry(job, run_at, error)
    }

    fn dead_letter(
        &self,
        job: &ClaimedJob,
        error: &str,
    ) -> impl Future<Output = Result<()>> + Send {
        (**self).dead_letter(job, error)
    }

    fn cancel(&self, id: &str) -> impl Future<Output = Result<bool>> + Send {
        (**self).cancel(id)
    }

    fn dead_letters(&self, max: usize) -> impl Future<Output = Result<Vec<DeadJob>>> + Send {
        (**self).dead_letters(max)
    }
}
