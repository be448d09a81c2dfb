//! pulse-conc against its peers, in the same run:
//!
//! - circuit breaker closed-path call: pulse-conc (count-based window,
//!   slow-call detection off) against recloser;
//! - one million tiny tasks: the async worker pool against `tokio::spawn`
//!   with a `JoinSet`;
//! - single-flight over many keys: pulse-conc against one mutex around a
//!   map of `OnceCell`s.
//!
//! The peak heap of the million-task runs is measured once, outside the
//! timed loops, by a global allocator that counts only while a flag is set,
//! and printed.

#![allow(missing_docs, clippy::print_stdout)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use pulse_conc::SingleFlight;
use pulse_conc::breaker::{CircuitBreaker, SlidingWindow};
use pulse_conc::pool::{PoolConfig, Shutdown, WorkerPool};
use tokio::runtime::Runtime;
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        // SAFETY: the layout is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TASKS: u64 = 1_000_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn breaker_closed_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("conc/breaker_closed_call");

    let ours = CircuitBreaker::builder("bench")
        .sliding_window(SlidingWindow::CountBased(100))
        .build()
        .unwrap();
    group.bench_function("pulse_conc", |b| {
        b.iter(|| ours.call_sync(|| Ok::<_, io::Error>(black_box(1u64))))
    });

    let peer = recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .half_open_len(10)
        .open_wait(Duration::from_secs(30))
        .build();
    group.bench_function("recloser", |b| {
        b.iter(|| peer.call(|| Ok::<_, io::Error>(black_box(1u64))))
    });
    group.finish();
}

/// Submits `TASKS` tiny jobs and awaits every handle in submission order.
async fn pool_with_handles(pool: &WorkerPool) -> u64 {
    let mut handles = Vec::with_capacity(TASKS as usize);
    for n in 0..TASKS {
        handles.push(pool.submit(async move { n & 7 }).await.unwrap());
    }
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    sum
}

/// Submits `TASKS` tiny jobs whose results go to a counter, dropping the
/// handles, then waits for the queue to drain.
async fn pool_fire_and_forget(config: PoolConfig) -> u64 {
    let pool = WorkerPool::new(config).unwrap();
    let sum = Arc::new(AtomicU64::new(0));
    for n in 0..TASKS {
        let sum = Arc::clone(&sum);
        pool.submit(async move {
            sum.fetch_add(n & 7, Ordering::Relaxed);
        })
        .await
        .unwrap();
    }
    pool.shutdown(Shutdown::Drain).await;
    sum.load(Ordering::Relaxed)
}

async fn tokio_join_set() -> u64 {
    let mut set = JoinSet::new();
    for n in 0..TASKS {
        set.spawn(async move { n & 7 });
    }
    let mut sum = 0;
    while let Some(result) = set.join_next().await {
        sum += result.unwrap();
    }
    sum
}

fn pool_config() -> PoolConfig {
    PoolConfig::fixed(2).queue_capacity(1024)
}

fn pool_million_tasks(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("conc/pool_1m_tiny_tasks");
    group.sample_size(10);

    group.bench_function("pulse_conc_handles", |b| {
        b.iter(|| {
            rt.block_on(async {
                let pool = WorkerPool::new(pool_config()).unwrap();
                let sum = pool_with_handles(&pool).await;
                pool.shutdown(Shutdown::Drain).await;
                sum
            })
        })
    });
    group.bench_function("pulse_conc_no_handles", |b| {
        b.iter(|| rt.block_on(pool_fire_and_forget(pool_config())))
    });
    group.bench_function("tokio_spawn_joinset", |b| {
        b.iter(|| rt.block_on(tokio_join_set()))
    });
    group.finish();

    report_peak("pool with handles", || {
        rt.block_on(async {
            let pool = WorkerPool::new(pool_config()).unwrap();
            pool_with_handles(&pool).await
        })
    });
    report_peak("pool without handles", || {
        rt.block_on(pool_fire_and_forget(pool_config()))
    });
    report_peak("tokio::spawn + JoinSet", || rt.block_on(tokio_join_set()));
}

fn report_peak(label: &str, run: impl FnOnce() -> u64) {
    IN_USE.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let sum = run();
    COUNTING.store(false, Ordering::SeqCst);
    let peak = PEAK.load(Ordering::SeqCst);
    println!(
        "peak heap, 1M tiny tasks, {label}: {:.1} MiB (sum {sum})",
        peak as f64 / (1024.0 * 1024.0)
    );
}

/// The baseline: one mutex around a map from key to a cell that the first
/// caller fills, removed once filled.
#[derive(Default)]
struct MutexMapFlight {
    calls: Mutex<HashMap<u64, Arc<OnceCell<u64>>>>,
}

impl MutexMapFlight {
    async fn run<F, Fut>(&self, key: u64, load: F) -> u64
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = u64>,
    {
        let cell = {
            let mut calls = self.calls.lock().unwrap();
            Arc::clone(calls.entry(key).or_default())
        };
        let value = *cell.get_or_init(load).await;
        let mut calls = self.calls.lock().unwrap();
        if calls
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            calls.remove(&key);
        }
        value
    }
}

const FLIGHT_TASKS: u64 = 8;
const FLIGHT_CALLS: u64 = 2_000;
const FLIGHT_KEYS: u64 = 10_000;

fn single_flight_many_keys(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("conc/single_flight_16k_calls_10k_keys");

    // Each task calls keys spread over the key space. Loads finish after
    // one yield, so calls on one key overlap only now and then.
    group.bench_function("pulse_conc", |b| {
        let flight = Arc::new(SingleFlight::<u64, u64>::new());
        b.iter(|| {
            rt.block_on(async {
                let mut set = JoinSet::new();
                for task in 0..FLIGHT_TASKS {
                    let flight = Arc::clone(&flight);
                    set.spawn(async move {
                        let mut sum = 0;
                        for call in 0..FLIGHT_CALLS {
                            let key = (task * 7919 + call * 104_729) % FLIGHT_KEYS;
                            sum += flight
                                .run(key, || async move {
                                    tokio::task::yield_now().await;
                                    key
                                })
                                .await
                                .unwrap();
                        }
                        sum
                    });
                }
                set.join_all().await.into_iter().sum::<u64>()
            })
        })
    });

    group.bench_function("mutex_map", |b| {
        let flight = Arc::new(MutexMapFlight::default());
        b.iter(|| {
            rt.block_on(async {
                let mut set = JoinSet::new();
                for task in 0..FLIGHT_TASKS {
                    let flight = Arc::clone(&flight);
                    set.spawn(async move {
                        let mut sum = 0;
                        for call in 0..FLIGHT_CALLS {
                            let key = (task * 7919 + call * 104_729) % FLIGHT_KEYS;
                            sum += flight
                                .run(key, || async move {
                                    tokio::task::yield_now().await;
                                    key
                                })
                                .await;
                        }
                        sum
                    });
                }
                set.join_all().await.into_iter().sum::<u64>()
            })
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    breaker_closed_call,
    pool_million_tasks,
    single_flight_many_keys
);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
