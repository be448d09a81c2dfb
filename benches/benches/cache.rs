//! pulse-cache against quick_cache and moka: a local hit, a near-cache hit,
//! and the hit ratio under a Zipf 0.9 workload with capacity at 1% of keys.
//!
//! The hit ratios are printed to stderr before the timings.
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use criterion::{Criterion, criterion_group, criterion_main};
use pulse_cache::{LocalCache, NearCache};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const KEYS: u64 = 10_000;

fn local_hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_local_hit");

    let quick: quick_cache::sync::Cache<u64, u64> =
        quick_cache::sync::Cache::new(KEYS as usize * 2);
    let moka: moka::sync::Cache<u64, u64> = moka::sync::Cache::builder()
        .max_capacity(KEYS * 2)
        .time_to_live(Duration::from_secs(3600))
        .build();
    let pulse = LocalCache::<u64, u64>::builder()
        .max_entries(KEYS * 2)
        .ttl(Duration::from_secs(3600))
        .build()
        .expect("valid cache");
    for k in 0..KEYS {
        quick.insert(k, k);
        moka.insert(k, k);
        pulse.insert(k, k).expect("fits");
    }

    let mut i = 0u64;
    group.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(quick.get(&i))
        })
    });
    group.bench_function("pulse_local_ttl", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(pulse.get(&i))
        })
    });
    group.bench_function("moka_ttl", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(moka.get(&i))
        })
    });
    group.finish();
}

/// Polls a future that is expected to be ready at once (a cache hit).
#[inline(always)]
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a hit must not wait"),
    }
}

fn near_hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_near_hit");
    let keys: Vec<String> = (0..KEYS).map(|k| format!("user:{k}")).collect();
    let local = LocalCache::<String, u64>::builder()
        .max_entries(KEYS * 2)
        .ttl(Duration::from_secs(3600))
        .build()
        .expect("valid cache");
    // The remote tier does not matter for a hit. An in-process store keeps
    // the bench free of a server, and of a runtime too, because it has no
    // invalidation stream to listen to.
    let remote = LocalCache::<String, Bytes>::builder()
        .max_entries(KEYS * 2)
        .build()
        .expect("valid cache");
    let near = NearCache::<u64, _>::builder(remote)
        .max_entries(KEYS * 2)
        .local_ttl(Duration::from_secs(3600))
        .build()
        .expect("valid near cache");
    for (k, key) in keys.iter().enumerate() {
        local.insert(key.clone(), k as u64).expect("fits");
        ready(near.set(key, &(k as u64))).expect("stored");
        ready(near.get(key)).expect("loaded");
    }
    assert!(
        near.get_local(&keys[1]).is_some(),
        "the near cache holds its copies"
    );

    let mut i = 0usize;
    group.bench_function("pulse_local_string_key", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(local.get(keys[i].as_str()))
        })
    });
    group.bench_function("pulse_near_get", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(ready(near.get(&keys[i])).ok())
        })
    });
    group.bench_function("pulse_near_get_local", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(near.get_local(&keys[i]))
        })
    });
    group.finish();
}

/// Draws ranks 0..n with probability proportional to 1 / (rank + 1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for rank in 0..n {
            sum += 1.0 / ((rank + 1) as f64).powf(s);
            cdf.push(sum);
        }
        for p in &mut cdf {
            *p /= sum;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut SmallRng) -> u64 {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&p| p < u) as u64
    }
}

fn zipf_hit_ratio() {
    const N: usize = 100_000;
    const OPS: usize = 1_000_000;
    let capacity = (N / 100) as u64;
    let zipf = Zipf::new(N, 0.9);
    let trace: Vec<u64> = {
        let mut rng = SmallRng::seed_from_u64(7);
        (0..OPS).map(|_| zipf.sample(&mut rng)).collect()
    };

    let quick: quick_cache::sync::Cache<u64, u64> =
        quick_cache::sync::Cache::new(capacity as usize);
    let moka: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(capacity);
    let pulse = LocalCache::<u64, u64>::builder()
        .max_entries(capacity)
        .build()
        .expect("valid cache");

    let (mut quick_hits, mut moka_hits, mut pulse_hits) = (0usize, 0usize, 0usize);
    for &key in &trace {
        if quick.get(&key).is_some() {
            quick_hits += 1;
        } else {
            quick.insert(key, key);
        }
        if moka.get(&key).is_some() {
            moka_hits += 1;
        } else {
            moka.insert(key, key);
            // moka admits and evicts in batches; keep its bookkeeping current
            // as a real service's steady traffic would.
            moka.run_pending_tasks();
        }
        if pulse.get(&key).is_some() {
            pulse_hits += 1;
        } else {
            pulse.insert(key, key).expect("fits");
        }
    }
    let ratio = |hits: usize| hits as f64 / OPS as f64;
    eprintln!(
        "zipf 0.9, {N} keys, capacity {capacity}: hit ratio pulse-cache {:.4}, quick_cache {:.4}, moka {:.4}",
        ratio(pulse_hits),
        ratio(quick_hits),
        ratio(moka_hits)
    );
}

fn hit_ratio(_c: &mut Criterion) {
    zipf_hit_ratio();
}

criterion_group!(benches, hit_ratio, local_hit, near_hit);
criterion_main!(benches);
