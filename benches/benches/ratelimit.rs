//! pulse-ratelimit against governor, in the same criterion run.
//!
//! Run with `cargo bench -p gopulse-benches --bench ratelimit -- --warm-up-time 1 --measurement-time 3`.
//! The Redis case runs when a Redis server answers on 127.0.0.1:6379 (or
//! `REDIS_URL`).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter as GovernorLimiter};
use pulse_ratelimit::{Gcra, KeyedGcra, Quota};

/// One permit per nanosecond: every check is admitted, so each one writes.
const OPEN_RATE: u32 = 1_000_000_000;
/// Fifty per second: after the first burst nearly every check is rejected.
const SATURATED_RATE: u32 = 50;
const KEYS: u64 = 1000;

fn pulse_quota(rate: u32) -> Quota {
    Quota::per_second(i64::from(rate)).expect("valid quota")
}

fn governor_quota(rate: u32) -> GovernorQuota {
    GovernorQuota::per_second(NonZeroU32::new(rate).expect("non-zero rate"))
}

fn one_key_one_thread(c: &mut Criterion) {
    for (label, rate) in [("admitted", OPEN_RATE), ("rejected", SATURATED_RATE)] {
        let mut group = c.benchmark_group(format!("ratelimit/one_key_one_thread/{label}"));
        let pulse = Gcra::new(pulse_quota(rate));
        group.bench_function("pulse_gcra", |b| b.iter(|| black_box(pulse.check())));
        let governor = GovernorLimiter::direct(governor_quota(rate));
        group.bench_function("governor_direct", |b| b.iter(|| black_box(governor.check())));
        group.finish();
    }
}

/// Runs `check` on two threads at once, `iters` times each, and returns the
/// wall time, so that criterion reports time per pair of checks.
fn contended(iters: u64, check: &(dyn Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    check();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn two_threads_one_key(c: &mut Criterion) {
    for (label, rate) in [("admitted", OPEN_RATE), ("rejected", SATURATED_RATE)] {
        let mut group = c.benchmark_group(format!("ratelimit/two_threads_one_key/{label}"));
        group.throughput(Throughput::Elements(2));
        let pulse = Gcra::new(pulse_quota(rate));
        group.bench_function("pulse_gcra", |b| {
            b.iter_custom(|iters| {
                contended(iters, &|| {
                    black_box(pulse.check());
                })
            })
        });
        let governor = GovernorLimiter::direct(governor_quota(rate));
        group.bench_function("governor_direct", |b| {
            b.iter_custom(|iters| {
                contended(iters, &|| {
                    let _ = black_box(governor.check());
                })
            })
        });
        group.finish();
    }
}

fn keyed_1000_keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit/keyed_1000_keys");
    let pulse = KeyedGcra::<u64>::builder(pulse_quota(OPEN_RATE))
        .build()
        .expect("valid settings");
    let governor = GovernorLimiter::keyed(governor_quota(OPEN_RATE));
    for key in 0..KEYS {
        pulse.check(&key);
        let _ = governor.check_key(&key);
    }

    let mut next = 0u64;
    group.bench_function("pulse_keyed_gcra", |b| {
        b.iter(|| {
            next = (next + 1) % KEYS;
            black_box(pulse.check(&next))
        })
    });
    let mut next = 0u64;
    group.bench_function("governor_keyed", |b| {
        b.iter(|| {
            next = (next + 1) % KEYS;
            black_box(governor.check_key(&next))
        })
    });
    group.finish();
}

criterion_group!(benches, one_key_one_thread, two_threads_one_key, keyed_1000_keys);
criterion_main!(benches);
