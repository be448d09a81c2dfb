//! Redis limiters against a real server: the behaviour vectors, the
//! conformance suite, several clients on one key, script reload after
//! `SCRIPT FLUSH`, and the failure modes when the connection is cut.
#![cfg(feature = "redis")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::AsyncCommands;
use deadpool_redis::{Config, Pool, Runtime};
use pulse_core::BoxFuture;
use pulse_core::clock::{Clock, ManualClock};
use pulse_core::error::{ErrorKind, Result};
use pulse_core::ratelimit::{AsyncRateLimiter, DynAsyncRateLimiter};
use pulse_ratelimit::redis::{FailureMode, RedisAlgorithm, RedisLimiter};
use pulse_ratelimit::{KeyedGcra, Quota};
use pulse_testkit::proxy::Proxy;
use pulse_testkit::redis_server::RedisServer;
use pulse_testkit::suites::ratelimit::{Bound, RateLimitBackend, Spec, run_all};

fn pool(url: &str) -> Pool {
    Config::from_url(url)
        .create_pool(Some(Runtime::Tokio1))
        .expect("valid Redis URL")
}

fn limiter(
    pool: Pool,
    prefix: &str,
    quota: Quota,
    algorithm: RedisAlgorithm,
    clock: Option<ManualClock>,
    failure: FailureMode,
) -> RedisLimiter {
    let mut builder = RedisLimiter::builder(quota, algorithm, failure)
        .pool(pool)
        .prefix(prefix)
        .timeout(Duration::from_secs(5));
    if let Some(clock) = clock {
        builder = builder.test_clock(Arc::new(clock) as Arc<dyn Clock>);
    }
    builder.build().expect("valid settings")
}

/// Capacity 2, one token per second, time passed to the script: drain at 0,
/// then 11 requests 0.9 s apart. Exactly the nine from 1.8 s to 9.0 s pass.
#[tokio::test]
async fn token_bucket_keeps_partial_refill() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let clock = ManualClock::new();
    let quota = Quota::per_second(1).unwrap().with_burst(2).unwrap();
    let prefix = pulse_testkit::unique_prefix("ratelimit");
    let bucket = limiter(
        pool(&url),
        &prefix,
        quota,
        RedisAlgorithm::TokenBucket,
        Some(clock.clone()),
        FailureMode::Error,
    );

    assert!(bucket.check_n("k", 2).await.unwrap().allowed);
    let mut admitted_at = Vec::new();
    for step in 1..=11u64 {
        clock.advance(Duration::from_millis(900));
        if bucket.check("k").await.unwrap().allowed {
            admitted_at.push(step * 900);
        }
    }
    assert_eq!(
        admitted_at,
        vec![1800, 2700, 3600, 4500, 5400, 6300, 7200, 8100, 9000]
    );
}

/// Limit 5 per 60 s: after every call, admitted or not, the counter key has
/// a TTL of at most the window, because the script that counts also sets it.
#[tokio::test]
async fn fixed_window_key_always_has_ttl() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("ratelimit");
    let pool = pool(&url);
    let quota = Quota::per_minute(5).unwrap();
    for clock in [None, Some(ManualClock::new())] {
        let window = limiter(
            pool.clone(),
            &prefix,
            quota,
            RedisAlgorithm::FixedWindow,
            clock.clone(),
            FailureMode::Error,
        );
        let key = if clock.is_some() {
            "test-clock"
        } else {
            "server-time"
        };
        let mut connection = pool.get().await.unwrap();
        for request in 0..8 {
            let decision = window.check(key).await.unwrap();
            assert_eq!(decision.allowed, request < 5, "request {request}");
            let ttl: i64 = connection.pttl(window.redis_key(key)).await.unwrap();
            assert!(ttl > 0, "request {request}: TTL {ttl} ms, expected one");
            // A test clock adds a 60 s margin to every TTL.
            let longest = if clock.is_some() { 120_000 } else { 60_000 };
            assert!(
                ttl <= longest,
                "request {request}: TTL {ttl} ms is longer than the window"
            );
            if let Some(clock) = &clock {
                clock.advance(Duration::from_secs(7));
            }
        }
    }
}

struct RedisBackend {
    url: String,
    algorithm: RedisAlgorithm,
    bound: Bound,
}

impl RateLimitBackend for RedisBackend {
    fn name(&self) -> &str {
        match self.algorithm {
            RedisAlgorithm::Gcra => "redis-gcra",
            RedisAlgorithm::TokenBucket => "redis-token-bucket",
            RedisAlgorithm::SlidingWindow => "redis-sliding-window",
            _ => "redis-fixed-window",
        }
    }

    fn bound(&self) -> Bound {
        self.bound
    }

    fn limiter(
        &self,
        spec: Spec,
        clock: ManualClock,
    ) -> BoxFuture<'_, Result<Arc<dyn DynAsyncRateLimiter<str>>>> {
        Box::pin(async move {
            let quota =
                Quota::new(i64::from(spec.rate), spec.period)?.with_burst(i64::from(spec.burst))?;
            let prefix = pulse_testkit::unique_prefix("ratelimit");
            let limiter = limiter(
                pool(&self.url),
                &prefix,
                quota,
                self.algorithm,
                Some(clock),
                FailureMode::Error,
            );
            Ok(Arc::new(limiter) as Arc<dyn DynAsyncRateLimiter<str>>)
        })
    }
}

async fn conforms(algorithm: RedisAlgorithm, bound: Bound) {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    run_all(&RedisBackend {
        url,
        algorithm,
        bound,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_conforms() {
    conforms(RedisAlgorithm::Gcra, Bound::Refill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_conforms() {
    conforms(RedisAlgorithm::TokenBucket, Bound::Refill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_conforms() {
    conforms(RedisAlgorithm::SlidingWindow, Bound::SlidingCounter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_conforms() {
    conforms(RedisAlgorithm::FixedWindow, Bound::FixedWindow).await;
}

/// Four clients, each with its own pool, hammer one key with the clock
/// frozen: together they get exactly the burst, for every algorithm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_clients_admit_exactly_burst() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let quota = Quota::per_second(10).unwrap().with_burst(30).unwrap();
    for algorithm in [
        RedisAlgorithm::Gcra,
        RedisAlgorithm::TokenBucket,
        RedisAlgorithm::SlidingWindow,
        RedisAlgorithm::FixedWindow,
    ] {
        let prefix = pulse_testkit::unique_prefix("ratelimit");
        let clock = ManualClock::new();
        clock.advance(Duration::from_millis(500));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let client = Arc::new(limiter(
                pool(&url),
                &prefix,
                quota,
                algorithm,
                Some(clock.clone()),
                FailureMode::Error,
            ));
            for _ in 0..4 {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let mut admitted = 0;
                    for _ in 0..10 {
                        if client.check("hot").await.unwrap().allowed {
                            admitted += 1;
                        }
                    }
                    admitted
                }));
            }
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        assert_eq!(
            total, 30,
            "{algorithm:?}: 16 callers on 4 clients got {total} permits"
        );
    }
}

/// After `SCRIPT FLUSH` the next decision reloads the script and succeeds.
/// Runs on a private server, because the flush would hit every other test.
#[tokio::test]
async fn script_reloaded_after_flush() {
    let server = RedisServer::start().expect("redis-server starts");
    let pool = pool(&server.url());
    let quota = Quota::per_second(5).unwrap();
    let gcra = limiter(
        pool.clone(),
        "flush",
        quota,
        RedisAlgorithm::Gcra,
        None,
        FailureMode::Error,
    );

    assert!(gcra.check("k").await.unwrap().allowed);
    let mut connection = pool.get().await.unwrap();
    let _: () = deadpool_redis::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut *connection)
        .await
        .unwrap();
    let decision = gcra
        .check("k")
        .await
        .expect("the script is loaded again after NOSCRIPT");
    assert!(decision.allowed);
    assert_eq!(decision.remaining, 3);
}

/// One decision is one `EVALSHA`: counted by the server's command stats.
#[tokio::test]
async fn one_evalsha_per_decision() {
    let server = RedisServer::start().expect("redis-server starts");
    let pool = pool(&server.url());
    let gcra = limiter(
        pool.clone(),
        "calls",
        Quota::per_second(100).unwrap(),
        RedisAlgorithm::Gcra,
        None,
        FailureMode::Error,
    );
    gcra.check("warm-up").await.unwrap();

    let mut connection = pool.get().await.unwrap();
    let _: () = deadpool_redis::redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut *connection)
        .await
        .unwrap();
    for key in 0..20 {
        gcra.check(&format!("k{key}")).await.unwrap();
    }
    let info: String = deadpool_redis::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut *connection)
        .await
        .unwrap();
    let calls = |command: &str| -> u64 {
        info.lines()
            .find(|line| line.starts_with(&format!("cmdstat_{command}:")))
            .and_then(|line| line.split("calls=").nth(1))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap())
    };
    assert_eq!(calls("evalsha"), 20, "{info}");
    assert_eq!(calls("eval"), 0, "{info}");
    assert_eq!(calls("script"), 0, "{info}");
}

async fn cut_limiter(proxy: SocketAddr, failure: FailureMode) -> RedisLimiter {
    let pool = pool(&format!("redis://{proxy}"));
    RedisLimiter::builder(Quota::per_second(5).unwrap(), RedisAlgorithm::Gcra, failure)
        .pool(pool)
        .prefix(pulse_testkit::unique_prefix("ratelimit"))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A connection cut by the proxy makes each limiter apply its failure mode:
/// admit, reject, decide locally, or return the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_applies_failure_mode() {
    let server = RedisServer::start().expect("redis-server starts");
    let proxy = Proxy::start(server.addr()).await.expect("proxy starts");

    let local = Arc::new(
        KeyedGcra::<String>::builder(Quota::per_second(1).unwrap())
            .build()
            .unwrap(),
    );
    let open = cut_limiter(proxy.addr(), FailureMode::FailOpen).await;
    let closed = cut_limiter(proxy.addr(), FailureMode::FailClosed).await;
    let fallback = cut_limiter(proxy.addr(), FailureMode::Fallback(local.clone())).await;
    let error = cut_limiter(proxy.addr(), FailureMode::Error).await;

    // While Redis is reachable, all four decide the same way.
    for limiter in [&open, &closed, &fallback, &error] {
        let decision = limiter.check("k").await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 4);
    }

    proxy.cut();
    for _ in 0..3 {
        assert!(open.check("k").await.unwrap().allowed, "fail open admits");
        let rejected = closed.check("k").await.unwrap();
        assert!(!rejected.allowed, "fail closed rejects");
        assert_eq!(rejected.retry_after, Duration::from_secs(1));
        let err = error.check("k").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    // The fallback is the local limiter: one per second for this key.
    assert!(fallback.check("k").await.unwrap().allowed);
    assert!(!fallback.check("k").await.unwrap().allowed);
    assert_eq!(local.len(), 1);

    proxy.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if error.check("k").await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the limiter did not reconnect after the proxy was restored"
    );
}
