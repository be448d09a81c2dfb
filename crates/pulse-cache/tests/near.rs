//! Two near-cache instances on a real Redis: coherence after writes, no
//! value served after its invalidation, no racing fetch kept, a flush after
//! a cut connection, and staleness measured.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_cache::NearCache;
use pulse_cache::redis::{InvalidationMode, RedisStore};
use pulse_core::cache::{CacheStore, Invalidations};
use tokio::sync::Notify;

const MODES: [InvalidationMode; 2] = [InvalidationMode::Tracking, InvalidationMode::PubSub];

async fn instance(url: &str, prefix: &str, mode: InvalidationMode) -> NearCache<u64, RedisStore> {
    let near = NearCache::<u64, _>::builder(common::store(url, prefix, mode))
        .max_entries(1000)
        .build()
        .unwrap();
    assert!(
        near.wait_coherent(Duration::from_secs(10)).await,
        "{mode:?}: stream not live"
    );
    near
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// After each write on one instance the other serves the new value within a
/// bounded delay, and once it served it, never an older one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_instance_converges_never_regresses() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    for mode in MODES {
        let prefix = pulse_testkit::unique_prefix("cache");
        let writer = instance(&url, &prefix, mode).await;
        let reader = instance(&url, &prefix, mode).await;

        let mut delays = Vec::new();
        for version in 1..=100u64 {
            writer.set("counter", &version).await.unwrap();
            let written = Instant::now();
            loop {
                let seen = reader.get("counter").await.unwrap().unwrap_or(0);
                assert!(
                    seen <= version,
                    "{mode:?}: read {seen} before it was written"
                );
                if seen == version {
                    delays.push(written.elapsed());
                    break;
                }
                assert!(
                    written.elapsed() < Duration::from_secs(5),
                    "{mode:?}: version {version} not served within 5 s (still {seen})"
                );
                tokio::task::yield_now().await;
            }
            // Having served `version`, the reader must never serve less.
            for _ in 0..3 {
                assert_eq!(reader.get("counter").await.unwrap(), Some(version));
            }
        }
        delays.sort();
        eprintln!(
            "staleness {mode:?}: p50 {:?}, p99 {:?}, max {:?} over {} writes",
            percentile(&delays, 0.50),
            percentile(&delays, 0.99),
            delays[delays.len() - 1],
            delays.len()
        );
        writer.store().shutdown().await;
        reader.store().shutdown().await;
    }
}

/// A store whose reads can be held after they returned from Redis, to race
/// them against an invalidation.
struct HeldStore {
    inner: RedisStore,
    hold: AtomicBool,
    read_done: Notify,
    release: Notify,
}

impl CacheStore for HeldStore {
    async fn get(&self, key: &str) -> pulse_core::Result<Option<Bytes>> {
        Ok(self.get_with_ttl(key).await?.map(|(value, _)| value))
    }

    async fn get_with_ttl(
        &self,
        key: &str,
    ) -> pulse_core::Result<Option<(Bytes, Option<Duration>)>> {
        let value = self.inner.get_with_ttl(key).await?;
        if self.hold.swap(false, Ordering::SeqCst) {
            self.read_done.notify_one();
            self.release.notified().await;
        }
        Ok(value)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> pulse_core::Result<()> {
        self.inner.set(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> pulse_core::Result<bool> {
        self.inner.delete(key).await
    }

    fn invalidations(&self) -> Option<Invalidations> {
        self.inner.invalidations()
    }
}

/// A fetch that read the old value, then lost the race to an invalidation,
/// leaves nothing cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_fetch_not_kept() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    for mode in MODES {
        let prefix = pulse_testkit::unique_prefix("cache");
        let writer = instance(&url, &prefix, mode).await;
        let held = Arc::new(HeldStore {
            inner: common::store(&url, &prefix, mode),
            hold: AtomicBool::new(false),
            read_done: Notify::new(),
            release: Notify::new(),
        });
        let reader = NearCache::<u64, _>::builder(held.clone()).build().unwrap();
        assert!(reader.wait_coherent(Duration::from_secs(10)).await);

        writer.set("k", &1).await.unwrap();
        writer.set("probe", &1).await.unwrap();
        // The reader keeps a copy of the probe, so it can tell when it has processed
        // later invalidations (they arrive in order on one connection). The
        // invalidations of the writes above may still be on their way and
        // drop the first copy, so read until one stays.
        let deadline = Instant::now() + Duration::from_secs(5);
        while reader.get_local("probe").is_none() {
            assert!(
                Instant::now() < deadline,
                "{mode:?}: the probe is never kept"
            );
            assert_eq!(reader.get("probe").await.unwrap(), Some(1));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        held.hold.store(true, Ordering::SeqCst);
        let fetch = tokio::spawn({
            let reader = reader.clone();
            async move { reader.get("k").await }
        });
        held.read_done.notified().await;

        // The fetch read 1. Now 2 is written and its invalidation processed.
        writer.set("k", &2).await.unwrap();
        writer.set("probe", &2).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while reader.get_local("probe").is_some() {
            assert!(
                Instant::now() < deadline,
                "{mode:?}: probe invalidation never processed"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }

        held.release.notify_one();
        assert_eq!(
            fetch.await.unwrap().unwrap(),
            Some(1),
            "the raced fetch returns what it read"
        );
        assert_eq!(
            reader.get_local("k"),
            None,
            "{mode:?}: the raced value was kept"
        );
        assert_eq!(reader.get("k").await.unwrap(), Some(2));
        writer.store().shutdown().await;
        held.inner.shutdown().await;
    }
}

/// Cutting the listener's connection flushes the local tier and stops
/// caching until the stream is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_flushes_local_tier() {
    let Some(_) = pulse_testkit::services::redis_url() else {
        return;
    };
    let server = match pulse_testkit::redis_server::RedisServer::start() {
        Ok(server) => server,
        Err(err) if !pulse_testkit::services::ci_mode() => {
            eprintln!("SKIPPED cut_connection_flushes_local_tier: {err}");
            return;
        }
        Err(err) => panic!("cannot start a private redis-server: {err}"),
    };
    for mode in MODES {
        let proxy = pulse_testkit::proxy::Proxy::start(server.addr())
            .await
            .unwrap();
        let prefix = pulse_testkit::unique_prefix("cache");
        let direct = instance(&server.url(), &prefix, mode).await;
        let proxied = instance(&format!("redis://{}", proxy.addr()), &prefix, mode).await;

        direct.set("k", &1).await.unwrap();

        // The write's own invalidation can arrive after the first read and
        // drop the copy it cached, so read until a copy stays.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert_eq!(proxied.get("k").await.unwrap(), Some(1));
            tokio::time::sleep(Duration::from_millis(20)).await;
            if proxied.get_local("k") == Some(1) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{mode:?}: the value was never cached locally"
            );
        }

        proxy.cut();
        let deadline = Instant::now() + Duration::from_secs(10);
        while proxied.is_coherent() {
            assert!(
                Instant::now() < deadline,
                "{mode:?}: the cut was never noticed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            proxied.local_entry_count(),
            0,
            "{mode:?}: local tier not flushed"
        );

        // Missed while cut: the write must not be hidden by an old copy.
        direct.set("k", &2).await.unwrap();
        proxy.restore();
        assert!(
            proxied.wait_coherent(Duration::from_secs(15)).await,
            "{mode:?}: never reconnected"
        );
        assert_eq!(proxied.get("k").await.unwrap(), Some(2));
        direct.store().shutdown().await;
        proxied.store().shutdown().await;
    }
}
