//! Helpers shared by the scheduler tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use pulse_core::clock::{ManualClock, WallTime};
use pulse_sched::{Scheduler, SchedulerOptions};

pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> WallTime {
    let secs = Utc
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .timestamp();
    WallTime::from_secs(secs as u64)
}

pub fn manual(clock: &ManualClock, options: SchedulerOptions) -> Scheduler {
    Scheduler::with_clock(Arc::new(clock.clone()), options).unwrap()
}

/// Lets the driver and the runs catch up until `done` holds, for at most
/// ten seconds of real time.
pub async fn settle(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "condition not reached in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Gives the runtime a moment to run whatever became ready.
pub async fn idle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// Advances the clock in steps of `step`, letting the driver run after each.
pub async fn advance(clock: &ManualClock, total: Duration, step: Duration) {
    let mut left = total;
    while !left.is_zero() {
        let now = step.min(left);
        clock.advance(now);
        left -= now;
        idle().await;
    }
}
