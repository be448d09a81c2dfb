//! pulse-sched against tokio-util's `DelayQueue` (scheduling delayed tasks)
//! and tokio-cron-scheduler (adding cron jobs), in the same run.
//!
//! Memory is counted by a global allocator that tracks the bytes in use;
//! lateness is measured once on the system clock and printed.

#![allow(missing_docs, clippy::print_stdout)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use pulse_sched::wheel::TimerWheel;
use pulse_sched::{Cron, Job, Scheduler, ShutdownMode};

struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = IN_USE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                - layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TASKS: usize = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Bytes held and peak bytes while `fill` builds something, relative to the
/// start.
fn measure_memory<T>(fill: impl FnOnce() -> T) -> (usize, usize, T) {
    let base = IN_USE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let value = fill();
    let held = IN_USE.load(Ordering::SeqCst).saturating_sub(base);
    let peak = PEAK.load(Ordering::SeqCst).saturating_sub(base);
    (held, peak, value)
}

fn delay(index: usize) -> Duration {
    // Spread over ten minutes, starting ten seconds out: every level of
    // both wheels is used, and nothing fires while the loop inserts, so
    // the scheduler's driver does not compete with the insert loop.
    Duration::from_millis(10_000 + (index as u64 * 7919) % 600_000)
}

fn schedule_million(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let mut group = c.benchmark_group("sched/schedule_1M");
    group.sample_size(10);

    group.bench_function("pulse_sched::Scheduler::schedule_after", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let scheduler = Scheduler::new().unwrap();
                let start = Instant::now();
                for index in 0..TASKS {
                    black_box(scheduler.schedule_after(delay(index), || async {}).unwrap());
                }
                total += start.elapsed();
                rt.block_on(scheduler.shutdown(ShutdownMode::Cancel));
            }
            total
        })
    });

    group.bench_function("pulse_sched::TimerWheel::insert", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut wheel = TimerWheel::new();
                let start = Instant::now();
                for index in 0..TASKS {
                    black_box(wheel.insert(delay(index).as_millis() as u64, index));
                }
                total += start.elapsed();
            }
            total
        })
    });

    group.bench_function("tokio_util::DelayQueue::insert", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut queue = tokio_util::time::DelayQueue::new();
                let start = Instant::now();
                for index in 0..TASKS {
                    black_box(queue.insert(index, delay(index)));
                }
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();

    // Memory, once each.
    let (held, peak, scheduler) = measure_memory(|| {
        let scheduler = Scheduler::new().unwrap();
        for index in 0..TASKS {
            scheduler.schedule_after(delay(index), || async {}).unwrap();
        }
        scheduler
    });
    println!(
        "memory/schedule_1M pulse_sched::Scheduler: held {held} B ({:.1} B/task), peak {peak} B",
        held as f64 / TASKS as f64
    );
    rt.block_on(scheduler.shutdown(ShutdownMode::Cancel));
    drop(scheduler);

    let (held, peak, queue) = measure_memory(|| {
        let mut queue = tokio_util::time::DelayQueue::new();
        for index in 0..TASKS {
            queue.insert(index, delay(index));
        }
        queue
    });
    println!(
        "memory/schedule_1M tokio_util::DelayQueue<usize>: held {held} B ({:.1} B/task), peak {peak} B",
        held as f64 / TASKS as f64
    );
    drop(queue);
}

fn cancel(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched/cancel");
    for size in [1_000usize, 1_000_000] {
        let mut wheel = TimerWheel::new();
        let mut keys: Vec<_> = (0..size)
            .map(|i| wheel.insert(delay(i).as_millis() as u64, i))
            .collect();
        let mut next = 0usize;
        group.bench_function(
            format!("pulse_sched::TimerWheel cancel+insert, {size} pending"),
            |b| {
                b.iter(|| {
                    let slot = next % size;
                    next = next.wrapping_add(7919);
                    let value = wheel.cancel(keys[slot]).unwrap();
                    keys[slot] = wheel.insert(delay(slot).as_millis() as u64, value);
                })
            },
        );

        let mut queue = tokio_util::time::DelayQueue::new();
        let rt = runtime();
        let _guard = rt.enter();
        let mut keys: Vec<_> = (0..size).map(|i| queue.insert(i, delay(i))).collect();
        let mut next = 0usize;
        group.bench_function(
            format!("tokio_util::DelayQueue remove+insert, {size} pending"),
            |b| {
                b.iter(|| {
                    let slot = next % size;
                    next = next.wrapping_add(7919);
                    let expired = queue.remove(&keys[slot]);
                    keys[slot] = queue.insert(expired.into_inner(), delay(slot));
                })
            },
        );
    }
    group.finish();
}

fn cron_add(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("sched/cron_add");
    let cron = Cron::parse("0 0 * * * *").unwrap();

    group.bench_function("pulse_sched add pre-parsed", |b| {
        b.iter_custom(|iters| {
            let _guard = rt.enter();
            let scheduler = Scheduler::new().unwrap();
            let start = Instant::now();
            for _ in 0..iters {
                black_box(
                    scheduler
                        .add(Job::new("hourly", cron.clone(), |_| async { Ok(()) }))
                        .unwrap(),
                );
            }
            let took = start.elapsed();
            rt.block_on(scheduler.shutdown(ShutdownMode::Cancel));
            took
        })
    });

    group.bench_function("pulse_sched parse + add", |b| {
        b.iter_custom(|iters| {
            let _guard = rt.enter();
            let scheduler = Scheduler::new().unwrap();
            let start = Instant::now();
            for _ in 0..iters {
                let cron = Cron::parse(black_box("0 0 * * * *")).unwrap();
                black_box(
                    scheduler
                        .add(Job::new("hourly", cron, |_| async { Ok(()) }))
                        .unwrap(),
                );
            }
            let took = start.elapsed();
            rt.block_on(scheduler.shutdown(ShutdownMode::Cancel));
            took
        })
    });

    group.bench_function("tokio_cron_scheduler add (job built outside)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let scheduler = tokio_cron_scheduler::JobScheduler::new().await.unwrap();
                let jobs: Vec<_> = (0..iters)
                    .map(|_| {
                        tokio_cron_scheduler::Job::new_async("0 0 * * * *", |_, _| {
                            Box::pin(async {})
                        })
                        .unwrap()
                    })
                    .collect();
                let start = Instant::now();
                for job in jobs {
                    black_box(scheduler.add(job).await.unwrap());
                }
                start.elapsed()
            })
        })
    });

    group.bench_function("tokio_cron_scheduler parse + add", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let scheduler = tokio_cron_scheduler::JobScheduler::new().await.unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    let job =
                        tokio_cron_scheduler::Job::new_async(black_box("0 0 * * * *"), |_, _| {
                            Box::pin(async {})
                        })
                        .unwrap();
                    black_box(scheduler.add(job).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// Schedules 2000 tasks 1–500 ms out on the system clock and reports how
/// late they ran.
fn lateness() {
    let rt = runtime();
    let late = rt.block_on(async {
        let scheduler = Scheduler::new().unwrap();
        let samples = Arc::new(std::sync::Mutex::new(Vec::with_capacity(2000)));
        for index in 0..2000u64 {
            let wait = Duration::from_micros(1_000 + (index * 7919) % 499_000);
            let due = Instant::now() + wait;
            let samples = samples.clone();
            scheduler
                .schedule_after(wait, move || async move {
                    samples
                        .lock()
                        .unwrap()
                        .push(Instant::now().saturating_duration_since(due));
                })
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        scheduler.shutdown(ShutdownMode::Wait).await;
        let mut late = samples.lock().unwrap().clone();
        late.sort();
        late
    });
    let pick = |q: f64| late[((late.len() as f64 - 1.0) * q) as usize];
    println!(
        "lateness/2000 tasks pulse_sched::Scheduler: n={} p50={:?} p99={:?} max={:?}",
        late.len(),
        pick(0.5),
        pick(0.99),
        late.last().unwrap()
    );
}

criterion_group!(benches, schedule_million, cancel, cron_add);

fn main() {
    lateness();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
