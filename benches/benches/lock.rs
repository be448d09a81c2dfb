//! pulse-lock against its peers, in the same criterion run.
//!
//! Run with `cargo bench -p gopulse-benches --bench lock -- --warm-up-time 1 --measurement-time 3`.
//!
//! - `lock/redis_acquire_release`: one uncontended acquire and release on a
//!   private `redis-server` that this bench starts: pulse-lock's `RedisLock`;
//!   a replay of the commands rslock 0.10 sends to one server (rslock itself
//!   needs redis >= 1.8, which needs Rust 1.88, above this workspace's
//!   1.85); and a raw baseline of `SET NX PX` plus `DEL` (two commands, no
//!   owner check on release).
//! - `lock/keyed_mutex`: lock and unlock over 1000 keys on one thread:
//!   pulse-lock's `KeyedMutex`, and a `tokio::sync::Mutex` per key looked up
//!   in a `DashMap` (a sharded map) that keeps every key forever.
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dashmap::DashMap;
use pulse_core::lock::Lock;
use pulse_lock::{KeyedMutex, LeaseOptions, RedisLock};
use pulse_testkit::redis_server::RedisServer;
use redis::AsyncCommands;

const KEYS: u64 = 1000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The unlock script of rslock 0.10, as published.
const RSLOCK_UNLOCK_SCRIPT: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
else
  return 0
end
"#;

fn connection(rt: &tokio::runtime::Runtime, url: &str) -> redis::aio::MultiplexedConnection {
    rt.block_on(async {
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    })
}

fn redis_acquire_release(c: &mut Criterion) {
    let server = match RedisServer::start() {
        Ok(server) => server,
        Err(err) => {
            eprintln!("SKIPPED lock/redis_acquire_release: no redis-server: {err}");
            return;
        }
    };
    let url = server.url();
    let rt = runtime();
    let ttl = Duration::from_secs(10);
    let mut group = c.benchmark_group("lock/redis_acquire_release");

    let pulse = RedisLock::connect(&url, LeaseOptions::new()).expect("valid URL");
    group.bench_function("pulse_redis_lock", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let lease = pulse
                        .try_acquire("bench", ttl)
                        .await
                        .unwrap()
                        .expect("uncontended");
                    pulse.release(black_box(lease)).await.unwrap();
                }
                start.elapsed()
            })
        })
    });

    // rslock 0.10 needs redis >= 1.8 (Rust 1.88), so it cannot join this
    // workspace; this replays what its `lock` and `unlock` send to one
    // server: 20 random bytes as the value, `SET NX PX`, then its unlock
    // script through `Script::invoke_async` (EVALSHA).
    let unlock = redis::Script::new(RSLOCK_UNLOCK_SCRIPT);
    let mut replay = connection(&rt, &url);
    group.bench_function("rslock_protocol", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let value: [u8; 20] = rand::random();
                    let taken: Option<String> = redis::cmd("SET")
                        .arg("bench-rslock")
                        .arg(&value[..])
                        .arg("NX")
                        .arg("PX")
                        .arg(10_000)
                        .query_async(&mut replay)
                        .await
                        .unwrap();
                    assert!(taken.is_some());
                    let released: i32 = unlock
                        .key("bench-rslock")
                        .arg(&value[..])
                        .invoke_async(&mut replay)
                        .await
                        .unwrap();
                    assert_eq!(released, 1);
                }
                start.elapsed()
            })
        })
    });

    let mut raw = connection(&rt, &url);
    group.bench_function("raw_set_nx_del", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let taken: Option<String> = redis::cmd("SET")
                        .arg("bench-raw")
                        .arg("owner")
                        .arg("NX")
                        .arg("PX")
                        .arg(10_000)
                        .query_async(&mut raw)
                        .await
                        .unwrap();
                    assert!(taken.is_some());
                    let _: i64 = raw.del("bench-raw").await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    drop(server);
}

fn keyed_mutex(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("lock/keyed_mutex");

    let pulse: KeyedMutex<u64> = KeyedMutex::new();
    group.bench_function("pulse_keyed_mutex", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let guard = pulse.lock(&(i % KEYS)).await;
                    drop(black_box(guard));
                }
                start.elapsed()
            })
        })
    });

    let peer: DashMap<u64, Arc<tokio::sync::Mutex<()>>> = DashMap::new();
    for key in 0..KEYS {
        peer.insert(key, Arc::default());
    }
    group.bench_function("dashmap_tokio_mutex", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let mutex = peer.entry(i % KEYS).or_default().clone();
                    let guard = mutex.lock_owned().await;
                    drop(black_box(guard));
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, redis_acquire_release, keyed_mutex);
criterion_main!(benches);
