//! Timing-wheel scheduler with DST-correct cron and distributed single runs.
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
