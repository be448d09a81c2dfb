//! ID generators against their peers, in one criterion run.
//!
//! - Snowflake with 22 sequence bits (so the sequence never binds) against a
//!   bare `AtomicU64::fetch_add`.
//! - The Twitter layout (12 sequence bits): throughput, to show it reaches
//!   4096 IDs per ms per worker.
//! - `MonotonicUuidV7` (monotonic across threads) against `Uuid::now_v7`.
//! - `MonotonicUlid` shared behind an `Arc` against `ulid::Generator` used
//!   through `&mut` on one thread.
//! - The segment allocator over the in-process source, IDs per second.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use pulse_core::clock::{Clock, CoarseClock, FastClock};
use pulse_id::{
    Layout, MemorySource, MonotonicUlid, MonotonicUuidV7, SegmentAllocator, SegmentConfig,
    Snowflake, SnowflakeBuilder,
};

fn snowflake(c: &mut Criterion) {
    let mut group = c.benchmark_group("id/snowflake");

    let counter = AtomicU64::new(0);
    group.bench_function("atomic_fetch_add", |b| {
        b.iter(|| black_box(counter.fetch_add(1, Ordering::Relaxed)))
    });

    let wide = Layout::builder()
        .timestamp_bits(41)
        .worker_bits(0)
        .sequence_bits(22)
        .build()
        .unwrap();
    let ids = Snowflake::builder(wide).build().unwrap();
    group.bench_function("snowflake_22_sequence_bits", |b| {
        b.iter(|| black_box(ids.next_id().unwrap()))
    });
    let exact = SnowflakeBuilder::new(wide, FastClock::new())
        .build()
        .unwrap();
    group.bench_function("snowflake_22_sequence_bits_fastclock", |b| {
        b.iter(|| black_box(exact.next_id().unwrap()))
    });
    let coarse = SnowflakeBuilder::new(wide, CoarseClock::shared())
        .build()
        .unwrap();
    group.bench_function("snowflake_22_sequence_bits_coarseclock", |b| {
        b.iter(|| black_box(coarse.next_id().unwrap()))
    });
    group.finish();

    // The Twitter layout binds at 4096 IDs per ms: its throughput shows
    // whether a worker reaches that rate.
    let mut group = c.benchmark_group("id/snowflake_twitter");
    group.throughput(Throughput::Elements(1));
    let twitter = Snowflake::builder(Layout::twitter()).build().unwrap();
    group.bench_function("twitter_layout", |b| {
        b.iter(|| black_box(twitter.next_id().unwrap()))
    });
    group.finish();
    report_ticks_filled("default", &twitter);
    let exact = SnowflakeBuilder::new(Layout::twitter(), FastClock::new())
        .build()
        .unwrap();
    report_ticks_filled("fastclock", &exact);
    let coarse = SnowflakeBuilder::new(Layout::twitter(), CoarseClock::shared())
        .build()
        .unwrap();
    report_ticks_filled("coarseclock", &coarse);
}

/// Calls the Twitter-layout generator for 500 ms and reports how many of
/// the ticks it issued in were filled to all 4096 sequence numbers. A tick
/// in which the thread was descheduled by a busy machine cannot fill.
/// Also reports the IDs issued per ms of real time, which a clock that
/// skips ticks would lower.
fn report_ticks_filled<C: Clock>(label: &str, ids: &Snowflake<C>) {
    let layout = *ids.layout();
    let started = std::time::Instant::now();
    let mut issued = 0u64;
    let (mut ticks, mut full, mut current_tick, mut in_tick) = (0u64, 0u64, u64::MAX, 0u64);
    while started.elapsed() < Duration::from_millis(500) {
        for _ in 0..1024 {
            let parts = layout.decode(ids.next_id().unwrap());
            if parts.tick != current_tick {
                ticks += 1;
                if in_tick == 4096 {
                    full += 1;
                }
                current_tick = parts.tick;
                in_tick = 0;
            }
            in_tick += 1;
        }
        issued += 1024;
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "id/snowflake_twitter/ticks_filled/{label}: {full} of {ticks} ticks issued all 4096 IDs ({:.1}%), {:.0} IDs per ms over {elapsed_ms:.0} ms",
        100.0 * full as f64 / ticks.max(1) as f64,
        issued as f64 / elapsed_ms
    );
}

fn uuid_v7(c: &mut Criterion) {
    let mut group = c.benchmark_group("id/uuid_v7");
    group.bench_function("uuid_now_v7", |b| {
        b.iter(|| black_box(uuid::Uuid::now_v7()))
    });
    let ids = MonotonicUuidV7::new();
    group.bench_function("pulse_monotonic_v7", |b| {
        b.iter(|| black_box(ids.next_uuid()))
    });
    group.finish();
}

fn ulid(c: &mut Criterion) {
    let mut group = c.benchmark_group("id/ulid");
    let mut peer = ulid::Generator::new();
    group.bench_function("ulid_generator_mut", |b| {
        b.iter(|| black_box(peer.generate().unwrap()))
    });
    let shared = Arc::new(MonotonicUlid::new());
    group.bench_function("pulse_monotonic_ulid_shared", |b| {
        b.iter(|| black_box(shared.next_ulid().unwrap()))
    });
    group.finish();
}

fn segment(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = SegmentConfig {
        initial_step: 100_000,
        min_step: 100_000,
        max_step: 100_000_000,
        target_duration: Duration::from_secs(1),
        ..SegmentConfig::default()
    };
    let allocator = runtime
        .block_on(SegmentAllocator::start(
            MemorySource::new(),
            "bench",
            config,
        ))
        .unwrap();

    let mut group = c.benchmark_group("id/segment");
    group.throughput(Throughput::Elements(1));
    group.bench_function("segment_next_id", |b| {
        b.iter(|| black_box(allocator.next_id().unwrap()))
    });
    group.finish();
    runtime.block_on(allocator.shutdown());
}

/// Runs every ID benchmark in one criterion run.
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    snowflake(&mut criterion);
    uuid_v7(&mut criterion);
    ulid(&mut criterion);
    segment(&mut criterion);
}

criterion_main!(benches);
