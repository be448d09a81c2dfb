//! Timing-wheel scheduler with DST-correct cron and distributed single runs.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cron;
mod error;

pub use cron::{Cron, CronBuilder, DstPolicy};
pub use error::SchedError;
