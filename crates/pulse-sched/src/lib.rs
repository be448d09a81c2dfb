//! Delayed tasks and cron jobs that fire on time, at any scale, correctly
//! across time zones and DST changes, once per slot across a fleet, and
//! that survive restarts.
//!
//! # Which one do I want?
//!
//! | you need | use |
//! | --- | --- |
//! | run a closure once after a delay, millions of them | [`Scheduler::schedule_after`] |
//! | run a closure at a wall-clock time | [`Scheduler::schedule_at`] |
//! | a recurring job: cron, `@daily`, `@every 15m` | [`Scheduler::add`] with a [`Job`] and a [`Cron`] |
//! | a recurring job that runs once per slot in a fleet | [`JobOptions::single_run`] with any `pulse_core::lock::Lock` |
//! | delayed jobs with a payload that survive restarts | a [`store`] and a [`JobWorker`] |
//! | just the data structure | [`wheel::TimerWheel`] |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use pulse_sched::{Cron, Job, JobOptions, Misfire, Overlap, Scheduler, ShutdownMode};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let scheduler = Scheduler::new()?;
//!
//! // A one-shot task; its handle cancels it in O(1).
//! let reminder = scheduler.schedule_after(Duration::from_secs(30), || async {
//!     println!("follow up on order 42");
//! })?;
//! assert!(scheduler.cancel(&reminder));
//!
//! // A cron job in a time zone, with its policies.
//! let cron = Cron::builder("0 30 2 * * *").time_zone("America/New_York")?.build()?;
//! let job = Job::new("nightly-cleanup", cron, |ctx| async move {
//!     println!("cleaning up for slot {}", ctx.slot);
//!     Ok(())
//! })
//! .options(JobOptions::default().overlap(Overlap::Skip).misfire(Misfire::FireOnce));
//! let handle = scheduler.add(job)?;
//! assert!(handle.next_fire().is_some());
//!
//! scheduler.shutdown(ShutdownMode::Wait).await;
//! # Ok::<(), pulse_sched::SchedError>(())
//! # }).unwrap();
//! ```
//!
//! # How it works, and what it costs
//!
//! - **Timers.** One hierarchical timing wheel (six levels of 64 slots,
//!   1 ms ticks) on the monotonic clock of `pulse_core::clock`. Insert and
//!   cancel are O(1); a pending task costs about 50 bytes in the wheel's
//!   slab (50.3 B measured at 1M tasks) plus its closure, which is
//!   nothing for a closure that captures nothing.
//!   One driver task sleeps until the next deadline through the clock, so
//!   a `ManualClock` drives every test.
//! - **Recurring jobs** keep their slot in wall time (UTC) and arm the
//!   wheel for the monotonic time left. A timer that wakes before the wall
//!   clock reaches the slot sleeps again for the rest, so a run never
//!   starts early. The driver compares the wall clock with the monotonic
//!   one every second ([`SchedulerOptions::wall_check_every`]); after a
//!   step it re-arms every job. The next slot is always computed from the
//!   last slot, never from "now", so a step back never repeats a slot, and
//!   slots passed during a suspend follow the job's [`Misfire`] policy.
//! - **Cron** is parsed by croner; the mapping of local times to UTC is
//!   done here under the [`DstPolicy`].
//! - **Single run per slot**: the slot key is taken through the lock and
//!   never released, so it also records that the slot ran.
//!
//! # Features
//!
//! | feature | adds |
//! | --- | --- |
//! | `redis` | [`store::RedisJobStore`] |
//! | `postgres` | [`store::PgJobStore`] |
//! | `metrics` | counters and a histogram per job through the `metrics` facade |
//!
//! With `metrics`, each job reports `pulse_sched_job_fired_total`,
//! `pulse_sched_job_failed_total`, `pulse_sched_job_skipped_total` (label
//! `reason`) and the histogram `pulse_sched_job_late_seconds`, all labelled
//! `job`. [`JobHandle::stats`] gives the same counts without the feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cron;
mod error;
mod job;
mod policy;
mod scheduler;
pub mod store;
pub mod wheel;
mod worker;

pub use cron::{Cron, CronBuilder, DstPolicy};
pub use error::SchedError;
pub use job::{Job, JobContext, JobError, StatsSnapshot};
pub use policy::{Backoff, JobOptions, Misfire, Overlap, PastDeadline, ShutdownMode};
pub use scheduler::{JobHandle, Scheduler, SchedulerOptions, TaskHandle};
pub use worker::{JobWorker, WorkerOptions};
