//! The scheduler on a manual clock: one-shot tasks, early wakes, wall-clock
//! steps, misfires, overlap, failures and shutdown.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{advance, idle, manual, settle, utc};
use pulse_core::clock::{Clock, ManualClock, WallTime};
use pulse_sched::{
    Backoff, Cron, Job, JobOptions, Misfire, Overlap, PastDeadline, SchedError, SchedulerOptions,
    ShutdownMode,
};

fn counter() -> Arc<AtomicU32> {
    Arc::new(AtomicU32::new(0))
}

#[tokio::test]
async fn one_shot_fires_at_its_time_and_cancel_is_exact() {
    let clock = ManualClock::new();
    let scheduler = manual(&clock, SchedulerOptions::default());
    let fired = counter();

    let f = fired.clone();
    let kept = scheduler
        .schedule_after(Duration::from_millis(1500), move || async move {
            f.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let f = fired.clone();
    let cancelled = scheduler
        .schedule_after(Duration::from_millis(1000), move || async move {
            f.fetch_add(100, Ordering::SeqCst);
        })
        .unwrap();
    assert!(scheduler.cancel(&cancelled));
    assert!(!scheduler.cancel(&cancelled));

    advance(
        &clock,
        Duration::from_millis(1499),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(fired.load(Ordering::SeqCst), 0, "fired early");
    assert!(scheduler.is_pending(&kept));
    assert!(scheduler.deadline(&kept).is_some());

    clock.advance(Duration::from_millis(1));
    settle(|| fired.load(Ordering::SeqCst) == 1).await;
    assert!(!scheduler.is_pending(&kept));
    scheduler.shutdown(ShutdownMode::Wait).await;
}

#[tokio::test]
async fn past_one_shot_fires_now_or_is_rejected() {
    let clock = ManualClock::new();
    let scheduler = manual(&clock, SchedulerOptions::default());
    let fired = counter();
    let f = fired.clone();
    let past = clock.wall().saturating_sub(Duration::from_secs(5));
    scheduler
        .schedule_at(past, move || async move {
            f.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    clock.advance(Duration::from_millis(1));
    settle(|| fired.load(Ordering::SeqCst) == 1).await;

    let strict = manual(
        &clock,
        SchedulerOptions::default().past_deadline(PastDeadline::Reject),
    );
    let err = strict.schedule_at(past, || async {}).unwrap_err();
    assert!(matches!(err, SchedError::DeadlineInPast { ago } if ago >= Duration::from_secs(5)));
}

/// The monotonic timer fires 1.1 s before a daily 09:50:00 slot (the wall
/// clock was stepped back after the timer was armed): the job runs once, at
/// 09:50:00, and next tomorrow.
#[tokio::test]
async fn early_wake_runs_once_at_the_slot() {
    let clock = ManualClock::with_wall(utc(2026, 5, 4, 9, 0, 0));
    // No periodic wall check, so the only thing that can catch the early
    // wake is the check at fire time.
    let options = SchedulerOptions::default().wall_check_every(Duration::from_secs(7 * 86_400));
    let scheduler = manual(&clock, options);
    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = runs.clone();
    let run_clock = clock.clone();
    let job = scheduler
        .add(Job::new(
            "daily",
            Cron::parse("0 50 9 * * *").unwrap(),
            move |ctx| {
                seen.lock().unwrap().push((ctx.slot, run_clock.wall()));
                async { Ok(()) }
            },
        ))
        .unwrap();
    idle().await;

    clock.step_wall_back(Duration::from_millis(1100));
    advance(
        &clock,
        Duration::from_secs(50 * 60),
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(
        clock.wall(),
        utc(2026, 5, 4, 9, 49, 58).saturating_add(Duration::from_millis(900))
    );
    assert!(runs.lock().unwrap().is_empty(), "ran before its slot");

    advance(
        &clock,
        Duration::from_millis(1100),
        Duration::from_millis(1100),
    )
    .await;
    settle(|| runs.lock().unwrap().len() == 1).await;
    let (slot, at) = runs.lock().unwrap()[0];
    assert_eq!(slot, utc(2026, 5, 4, 9, 50, 0));
    assert_eq!(at, utc(2026, 5, 4, 9, 50, 0));
    assert_eq!(job.next_fire(), Some(utc(2026, 5, 5, 9, 50, 0)));

    advance(&clock, Duration::from_secs(3600), Duration::from_secs(600)).await;
    assert_eq!(runs.lock().unwrap().len(), 1);
    scheduler.shutdown(ShutdownMode::Wait).await;
}

#[tokio::test]
async fn wall_step_back_never_runs_a_slot_twice() {
    let clock = ManualClock::with_wall(utc(2026, 5, 4, 9, 59, 0));
    let scheduler = manual(&clock, SchedulerOptions::default());
    let slots = Arc::new(Mutex::new(Vec::new()));
    let seen = slots.clone();
    scheduler
        .add(Job::new(
            "hourly",
            Cron::parse("@hourly").unwrap(),
            move |ctx| {
                seen.lock().unwrap().push(ctx.slot);
                async { Ok(()) }
            },
        ))
        .unwrap();
    idle().await;
    advance(&clock, Duration::from_secs(61), Duration::from_secs(1)).await;
    settle(|| slots.lock().unwrap().len() == 1).await;

    // NTP steps the wall clock back across the slot that just ran.
    clock.step_wall_back(Duration::from_secs(120));
    advance(&clock, Duration::from_secs(300), Duration::from_secs(1)).await;
    assert_eq!(*slots.lock().unwrap(), vec![utc(2026, 5, 4, 10, 0, 0)]);
    scheduler.shutdown(ShutdownMode::Wait).await;
}

async fn missed_slots(policy: Misfire) -> Vec<WallTime> {
    let clock = ManualClock::with_wall(utc(2026, 5, 4, 9, 30, 0));
    let scheduler = manual(&clock, SchedulerOptions::default());
    let slots = Arc::new(Mutex::new(Vec::new()));
    let seen = slots.clone();
    let job = scheduler
        .add(
            Job::new("hourly", Cron::parse("@hourly").unwrap(), move |ctx| {
                seen.lock().unwrap().push(ctx.slot);
                async { Ok(()) }
            })
            .options(
                JobOptions::default()
                    .misfire(policy)
                    .overlap(Overlap::Allow),
            ),
        )
        .unwrap();
    idle().await;

    // A suspend: the wall clock jumps 5 h while the monotonic one stood.
    clock.step_wall_forward(Duration::from_secs(5 * 3600));
    advance(&clock, Duration::from_secs(2), Duration::from_secs(1)).await;
    idle().await;
    assert_eq!(job.next_fire(), Some(utc(2026, 5, 4, 15, 0, 0)));
    let out = slots.lock().unwrap().clone();
    scheduler.shutdown(ShutdownMode::Wait).await;
    out
}

#[tokio::test]
async fn missed_slots_follow_the_misfire_policy() {
    assert!(missed_slots(Misfire::Skip).await.is_empty());
    assert_eq!(
        missed_slots(Misfire::FireOnce).await,
        vec![utc(2026, 5, 4, 14, 0, 0)]
    );
    assert_eq!(
        missed_slots(Misfire::CatchUp(2)).await,
        vec![utc(2026, 5, 4, 13, 0, 0), utc(2026, 5, 4, 14, 0, 0)]
    );
}

async fn overlap_runs(policy: Overlap) -> (u32, u32, pulse_sched::StatsSnapshot) {
    let clock = ManualClock::new();
    let scheduler = manual(&clock, SchedulerOptions::default());
    let started = counter();
    let finished = counter();
    let (s, f, c) = (started.clone(), finished.clone(), clock.clone());
    let job = scheduler
        .add(
            Job::new("slow", Cron::parse("@every 1s").unwrap(), move |_| {
                let (s, f, c) = (s.clone(), f.clone(), c.clone());
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    c.sleep(Duration::from_millis(2500)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .options(JobOptions::default().overlap(policy)),
        )
        .unwrap();
    idle().await;
    advance(&clock, Duration::from_secs(3), Duration::from_millis(250)).await;
    let result = (
        started.load(Ordering::SeqCst),
        finished.load(Ordering::SeqCst),
        job.stats(),
    );
    scheduler.shutdown(ShutdownMode::Cancel).await;
    result
}

#[tokio::test]
async fn overlap_policies() {
    // Slots at 1 s, 2 s and 3 s; each run takes 2.5 s.
    let (started, _, _) = overlap_runs(Overlap::Allow).await;
    assert_eq!(started, 3);

    let (started, _, stats) = overlap_runs(Overlap::Skip).await;
    assert_eq!(started, 1);
    assert_eq!(stats.skipped, 2);

    // The 2 s slot waits; the 3 s slot is skipped because one is queued.
    let (started, finished, stats) = overlap_runs(Overlap::QueueOne).await;
    assert_eq!((started, finished), (1, 0));
    assert_eq!(stats.skipped, 1);

    let (started, finished, _) = overlap_runs(Overlap::Replace).await;
    assert_eq!((started, finished), (3, 0));
}

#[tokio::test]
async fn queued_run_starts_when_the_running_one_ends() {
    let clock = ManualClock::new();
    let scheduler = manual(&clock, SchedulerOptions::default());
    let started = counter();
    let (s, c) = (started.clone(), clock.clone());
    scheduler
        .add(
            Job::new("slow", Cron::parse("@every 1s").unwrap(), move |_| {
                let (s, c) = (s.clone(), c.clone());
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    c.sleep(Duration::from_millis(1500)).await;
                    Ok(())
                }
            })
            .options(JobOptions::default().overlap(Overlap::QueueOne)),
        )
        .unwrap();
    idle().await;
    advance(
        &clock,
        Duration::from_millis(2750),
        Duration::from_millis(250),
    )
    .await;
    settle(|| started.load(Ordering::SeqCst) == 2).await;
    scheduler.shutdown(ShutdownMode::Cancel).await;
}

#[tokio::test]
async fn panics_and_errors_are_retried_then_reported_without_stopping_others() {
    let clock = ManualClock::new();
    let scheduler = manual(&clock, SchedulerOptions::default());
    let attempts = counter();
    let a = attempts.clone();
    let bad = scheduler
        .add(
            Job::new("bad", Cron::parse("@every 10s").unwrap(), move |ctx| {
                a.fetch_add(1, Ordering::SeqCst);
                async move {
                    if ctx.attempt == 1 {
                        panic!("first attempt panics");
                    }
                    Err("still failing".into())
                }
            })
            .options(JobOptions::default().retries(2, Backoff::fixed(Duration::from_millis(100)))),
        )
        .unwrap();
    let good_runs = counter();
    let g = good_runs.clone();
    let good = scheduler
        .add(Job::new(
            "good",
            Cron::parse("@every 10s").unwrap(),
            move |_| {
                g.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            },
        ))
        .unwrap();
    idle().await;

    advance(&clock, Duration::from_secs(21), Duration::from_millis(100)).await;
    settle(|| bad.stats().failed == 2).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        6,
        "1 attempt + 2 retries per slot"
    );
    assert_eq!(bad.stats().retried, 4);
    assert_eq!(good.stats().succeeded, 2);
    assert_eq!(good_runs.load(Ordering::SeqCst), 2);
    scheduler.shutdown(ShutdownMode::Wait).await;
}

#[tokio::test]
async fn timeout_and_starting_deadline() {
    let clock = ManualClock::new();
    let scheduler = manual(&clock, SchedulerOptions::default());
    let c = clock.clone();
    let slow = scheduler
        .add(
            Job::new("slow", Cron::parse("@every 10s").unwrap(), move |_| {
                let c = c.clone();
                async move {
                    c.sleep(Duration::from_secs(60)).await;
                    Ok(())
                }
            })
            .options(
                JobOptions::default()
                    .timeout(Duration::from_secs(2))
                    .overlap(Overlap::Allow),
            ),
        )
        .unwrap();
    idle().await;
    advance(&clock, Duration::from_secs(13), Duration::from_millis(500)).await;
    settle(|| slow.stats().failed == 1).await;

    // A jitter longer than the starting deadline makes the run miss it.
    let late = scheduler
        .add(
            Job::new("late", Cron::parse("@every 10s").unwrap(), |_| async {
                Ok(())
            })
            .options(
                JobOptions::default()
                    .jitter(Duration::from_secs(5))
                    .starting_deadline(Duration::from_nanos(1)),
            ),
        )
        .unwrap();
    idle().await;
    // Slots at 20, 30, 40 and 50 s; the last jitter ends by 55 s.
    advance(&clock, Duration::from_secs(45), Duration::from_millis(500)).await;
    let stats = late.stats();
    assert_eq!(stats.fired + stats.skipped, 4);
    scheduler.shutdown(ShutdownMode::Cancel).await;
}

#[tokio::test]
async fn shutdown_waits_or_cancels() {
    for mode in [ShutdownMode::Wait, ShutdownMode::Cancel] {
        let clock = ManualClock::new();
        let scheduler = manual(&clock, SchedulerOptions::default());
        let finished = counter();
        let f = finished.clone();
        let c = clock.clone();
        scheduler
            .schedule_after(Duration::from_millis(10), move || async move {
                c.sleep(Duration::from_secs(1)).await;
                f.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        advance(&clock, Duration::from_millis(10), Duration::from_millis(10)).await;
        settle(|| scheduler.running() == 1).await;

        let stopping = tokio::spawn({
            let scheduler = scheduler.clone();
            async move { scheduler.shutdown(mode).await }
        });
        idle().await;
        if mode == ShutdownMode::Wait {
            assert!(!stopping.is_finished());
            clock.advance(Duration::from_secs(1));
        }
        stopping.await.unwrap();
        let want = if mode == ShutdownMode::Wait { 1 } else { 0 };
        assert_eq!(finished.load(Ordering::SeqCst), want);
        assert!(matches!(
            scheduler.schedule_after(Duration::ZERO, || async {}),
            Err(SchedError::Closed)
        ));
    }
}

#[tokio::test]
async fn removed_job_stops_firing() {
    let clock = ManualClock::new();
    let scheduler = manual(&clock, SchedulerOptions::default());
    let runs = counter();
    let r = runs.clone();
    let job = scheduler
        .add(Job::new(
            "tick",
            Cron::parse("@every 1s").unwrap(),
            move |_| {
                r.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            },
        ))
        .unwrap();
    idle().await;
    advance(&clock, Duration::from_secs(2), Duration::from_millis(500)).await;
    settle(|| runs.load(Ordering::SeqCst) == 2).await;
    assert!(job.remove());
    advance(&clock, Duration::from_secs(3), Duration::from_millis(500)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
