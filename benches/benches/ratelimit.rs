//! pulse-ratelimit against governor, in the same criterion run.
//!
//! Run with `cargo bench -p gopulse-benches --bench ratelimit -- --warm-up-time 1 --measurement-time 3`.
//! The Redis case runs when a Redis server listens on 127.0.0.1:6379 (or
//! `REDIS_URL`).
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter as GovernorLimiter};
use pulse_core::clock::FastClock;
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
        let exact = Gcra::with_clock(pulse_quota(rate), FastClock::new());
        group.bench_function("pulse_gcra_fastclock", |b| {
            b.iter(|| black_box(exact.check()))
        });
        let governor = GovernorLimiter::direct(governor_quota(rate));
        group.bench_function("governor_direct", |b| {
            b.iter(|| black_box(governor.check()))
        });
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
        let exact = Gcra::with_clock(pulse_quota(rate), FastClock::new());
        group.bench_function("pulse_gcra_fastclock", |b| {
            b.iter_custom(|iters| {
                contended(iters, &|| {
                    black_box(exact.check());
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
    let exact = KeyedGcra::<u64>::builder(pulse_quota(OPEN_RATE))
        .clock(FastClock::new())
        .build()
        .expect("valid settings");
    let governor = GovernorLimiter::keyed(governor_quota(OPEN_RATE));
    for key in 0..KEYS {
        pulse.check(&key);
        exact.check(&key);
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
    group.bench_function("pulse_keyed_gcra_fastclock", |b| {
        b.iter(|| {
            next = (next + 1) % KEYS;
            black_box(exact.check(&next))
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

/// One Redis GCRA decision against one bare `EVALSHA` of a script that
/// returns at once, over the same pool: the cost above the round trip.
fn redis_gcra(c: &mut Criterion) {
    use deadpool_redis::redis::Script;
    use pulse_ratelimit::AsyncRateLimiter;
    use pulse_ratelimit::redis::{FailureMode, RedisAlgorithm, RedisLimiter};

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pool = deadpool_redis::Config::from_url(url.as_str())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .expect("valid Redis URL");
    if runtime.block_on(pool.get()).is_err() {
        eprintln!("SKIPPED ratelimit/redis_gcra: no Redis at {url}");
        return;
    }

    let prefix = format!("bench-ratelimit-{}", std::process::id());
    let limiter = RedisLimiter::builder(
        pulse_quota(OPEN_RATE),
        RedisAlgorithm::Gcra,
        FailureMode::Error,
    )
    .pool(pool.clone())
    .prefix(prefix)
    .build()
    .expect("valid settings");
    let bare = Script::new("return {1, 0, 0, 0}");

    let mut group = c.benchmark_group("ratelimit/redis_gcra");
    group.bench_function("pulse_redis_gcra", |b| {
        b.iter(|| {
            runtime.block_on(async { black_box(limiter.check("bench").await.expect("decision")) })
        })
    });
    group.bench_function("bare_evalsha", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut connection = pool.get().await.expect("connection");
                let reply: Vec<i64> = bare
                    .key("bench")
                    .invoke_async(&mut *connection)
                    .await
                    .expect("reply");
                black_box(reply)
            })
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    one_key_one_thread,
    two_threads_one_key,
    keyed_1000_keys,
    redis_gcra
);
criterion_main!(benches);
