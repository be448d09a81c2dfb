//! The Redis lease, Redlock and semaphore against real servers: the shared
//! Redis for the suite, private servers for restarts and kills.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use pulse_core::clock::SystemClock;
use pulse_core::error::ErrorKind;
use pulse_core::lock::Lock;
use pulse_lock::{LeaseOptions, LockError, RedisLock, RedisSemaphore, Redlock};
use pulse_testkit::redis_server::RedisServer;
use pulse_testkit::suites::lock::{LockSetup, run_all};
use redis::AsyncCommands;

fn options(namespace: &str) -> LeaseOptions {
    LeaseOptions::new()
        .namespace(namespace)
        .drift_margin(Duration::from_millis(20))
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn owner_key(namespace: &str, key: &str) -> String {
    format!("pulse:lock:v1:{namespace}:{{{key}}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lock_passes_suite() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("lock");
    let lock = RedisLock::connect(&url, options(&namespace)).unwrap();
    let setup = LockSetup::new(
        "redis",
        Arc::new(lock),
        Arc::new(SystemClock::new()),
        "suite",
    );
    let report = run_all(&setup).await;
    assert!(report.skipped.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lock_from_pool_passes_suite() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("lock");
    let pool = deadpool_redis::Config::from_url(url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let lock = RedisLock::from_pool(pool, options(&namespace));
    let mut setup = LockSetup::new(
        "redis-pool",
        Arc::new(lock),
        Arc::new(SystemClock::new()),
        "suite",
    );
    setup.acquisitions_per_task = 100;
    run_all(&setup).await;
}

#[tokio::test]
async fn stalled_holder_cannot_refresh() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("lock");
    let locks = RedisLock::connect(&url, options(&namespace)).unwrap();
    let stalled = locks
        .try_acquire("job", Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();

    // The holder stalls past its 1 s TTL; another client takes and releases.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let other = locks
        .try_acquire("job", Duration::from_secs(1))
        .await
        .unwrap()
        .expect("the TTL ran out");
    locks.release(other).await.unwrap();

    tokio::time::timeout(Duration::from_secs(10), stalled.lost().fired())
        .await
        .expect("the stalled holder's lost signal fired");
    let err = locks
        .extend(&stalled, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner);
    let mut conn = raw(&url).await;
    let owner: Option<String> = conn.get(owner_key(&namespace, "job")).await.unwrap();
    assert_eq!(owner, None, "the stalled holder never took the lock back");
}

#[tokio::test]
async fn late_release_leaves_new_holder() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("lock");
    let locks = RedisLock::connect(&url, options(&namespace)).unwrap();
    let stalled = locks
        .try_acquire("job", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holder = locks
        .try_acquire("job", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();

    let err = locks.release(stalled).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner);

    let mut conn = raw(&url).await;
    let key = owner_key(&namespace, "job");
    let owner: Option<String> = conn.get(&key).await.unwrap();
    assert_eq!(owner.as_deref(), Some(holder.owner()));
    let ttl: i64 = conn.pttl(&key).await.unwrap();
    assert!(ttl > 25_000, "the new holder's TTL was touched: {ttl} ms");
    locks.release(holder).await.unwrap();
}

#[tokio::test]
async fn watchdog_renews_until_drop() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("lock");
    let locks = RedisLock::connect(&url, options(&namespace).watchdog(true)).unwrap();
    let lease = locks
        .try_acquire("job", Duration::from_millis(1500))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(!lease.lost().is_fired(), "the watchdog kept the lease");
    assert!(
        locks
            .try_acquire("job", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none()
    );

    drop(lease);
    let next = locks
        .acquire("job", Duration::from_secs(1), Duration::from_secs(5))
        .await
        .expect("the dropped lease was released in the background");
    locks.release(next).await.unwrap();
}

#[tokio::test]
async fn waiter_wakes_on_release() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("lock");
    let locks = RedisLock::connect(&url, options(&namespace)).unwrap();
    let held = locks
        .try_acquire("job", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move {
            locks
                .acquire("job", Duration::from_secs(5), Duration::from_secs(20))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    locks.release(held).await.unwrap();
    // The holder's TTL is 30 s, so only the release message can wake the
    // waiter within the wait.
    let lease = waiter.await.unwrap().expect("waiter was not woken");
    locks.release(lease).await.unwrap();
}

#[tokio::test]
async fn tokens_increase_across_restart() {
    let mut server = RedisServer::start().unwrap();
    let locks = RedisLock::connect(&server.url(), options("restart")).unwrap();
    let mut last = 0;
    for round in 0..3 {
        for _ in 0..5 {
            let lease = locks
                .try_acquire("job", Duration::from_secs(5))
                .await
                .unwrap()
                .unwrap();
            let token = lease.fencing_token().unwrap();
            assert!(token > last, "round {round}: token {token} after {last}");
            last = token;
            locks.release(lease).await.unwrap();
        }
        server.restart().unwrap();
        // The first call after a restart may fail on the dead connection.
        let _ = locks.try_acquire("warm-up", Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn killed_server_fires_lost() {
    let mut server = RedisServer::start().unwrap();
    let locks = RedisLock::connect(&server.url(), options("kill").watchdog(true)).unwrap();
    let lease = locks
        .try_acquire("job", Duration::from_millis(900))
        .await
        .unwrap()
        .unwrap();
    server.kill();
    tokio::time::timeout(Duration::from_secs(10), lease.lost().fired())
        .await
        .expect("lost signal did not fire after the server died");
    let err = locks
        .extend(&lease, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner);
}

#[tokio::test]
async fn restart_mid_hold_fails_extend() {
    let mut server = RedisServer::start().unwrap();
    let locks = RedisLock::connect(&server.url(), options("restart-hold")).unwrap();
    let lease = locks
        .try_acquire("job", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    server.restart().unwrap();
    let _ = locks.extend(&lease, Duration::from_secs(30)).await; // reconnects
    let err = locks
        .extend(&lease, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner, "{err}");
    assert!(
        lease.lost().is_fired(),
        "the failed extension fired the lost signal"
    );
}

#[tokio::test]
async fn acquire_release_are_two_round_trips() {
    let server = RedisServer::start().unwrap();
    let locks = RedisLock::connect(&server.url(), options("trips")).unwrap();
    let warm = locks
        .try_acquire("warm", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    locks.release(warm).await.unwrap();

    let mut conn = raw(&server.url()).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..10 {
        let lease = locks
            .try_acquire("job", Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        locks.release(lease).await.unwrap();
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let calls = |command: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap())
    };
    assert_eq!(calls("evalsha"), 20, "{info}");
    assert_eq!(calls("eval"), 0, "{info}");
    assert_eq!(calls("ping"), 0, "{info}");
}

#[tokio::test]
async fn semaphore_limits_and_expires() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("lock");
    let semaphore = RedisSemaphore::connect(&url, "exports", 3, options(&namespace)).unwrap();
    let ttl = Duration::from_secs(10);
    let mut permits = Vec::new();
    for _ in 0..3 {
        permits.push(
            semaphore
                .try_acquire(ttl)
                .await
                .unwrap()
                .expect("a permit is free"),
        );
    }
    assert!(
        semaphore.try_acquire(ttl).await.unwrap().is_none(),
        "all 3 permits are held"
    );
    semaphore.extend(&permits[0], ttl).await.unwrap();
    semaphore.release(permits.pop().unwrap()).await.unwrap();
    let again = semaphore
        .try_acquire(ttl)
        .await
        .unwrap()
        .expect("a released permit is free");

    // A permit with a short TTL comes back by itself, and its late release
    // changes nothing.
    semaphore.release(again).await.unwrap();
    let short = semaphore
        .try_acquire(Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let replacement = semaphore
        .acquire(ttl, Duration::from_secs(5))
        .await
        .expect("the expired permit came back");
    assert!(semaphore.try_acquire(ttl).await.unwrap().is_none());
    assert!(matches!(
        semaphore.release(short).await,
        Err(LockError::NotOwner { .. })
    ));
    assert!(
        semaphore.try_acquire(ttl).await.unwrap().is_none(),
        "the late release freed nothing"
    );
    semaphore.release(replacement).await.unwrap();
    for permit in permits {
        semaphore.release(permit).await.unwrap();
    }
}

#[tokio::test]
async fn semaphore_rejects_bad_input() {
    let err =
        RedisSemaphore::connect("redis://127.0.0.1:1", "", 3, LeaseOptions::new()).unwrap_err();
    assert!(matches!(err, LockError::EmptyKey));
    let err =
        RedisSemaphore::connect("redis://127.0.0.1:1", "s", 0, LeaseOptions::new()).unwrap_err();
    assert!(matches!(
        err,
        LockError::InvalidPermits { requested: 0, .. }
    ));
}

fn three_servers() -> Vec<RedisServer> {
    (0..3).map(|_| RedisServer::start().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_passes_suite() {
    let servers = three_servers();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let locks = Redlock::connect(&urls, options("suite"))
        .unwrap()
        .with_fencing(true);
    let mut setup = LockSetup::new(
        "redlock",
        Arc::new(locks),
        Arc::new(SystemClock::new()),
        "suite",
    );
    setup.tasks = 4;
    setup.acquisitions_per_task = 100;
    run_all(&setup).await;
}

#[tokio::test]
async fn redlock_unfenced_has_no_token() {
    let servers = three_servers();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let locks = Redlock::connect(&urls, options("plain")).unwrap();
    let lease = locks
        .try_acquire("job", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.fencing_token(), None);
    locks.release(lease).await.unwrap();
}

#[tokio::test]
async fn redlock_survives_one_down_not_two() {
    let mut servers = three_servers();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let locks = Redlock::connect(&urls, options("quorum"))
        .unwrap()
        .with_fencing(true);
    let ttl = Duration::from_secs(5);

    let before = locks.try_acquire("job", ttl).await.unwrap().unwrap();
    let first_token = before.fencing_token().unwrap();
    locks.release(before).await.unwrap();

    servers[0].kill();
    let lease = locks
        .try_acquire("job", ttl)
        .await
        .unwrap()
        .expect("two of three servers are a majority");
    assert!(lease.fencing_token().unwrap() > first_token);
    assert!(
        locks.try_acquire("job", ttl).await.unwrap().is_none(),
        "still exclusive"
    );
    locks.extend(&lease, ttl).await.unwrap();
    locks.release(lease).await.unwrap();

    servers[1].kill();
    let err = locks.try_acquire("job", ttl).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let err = err.downcast_ref::<LockError>().unwrap();
    assert!(
        matches!(
            err,
            LockError::NoQuorum {
                needed: 2,
                nodes: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn redlock_rejects_bad_node_lists() {
    let none: [&str; 0] = [];
    assert!(matches!(
        Redlock::connect(&none, LeaseOptions::new()),
        Err(LockError::InvalidNodes { .. })
    ));
    let twice = ["redis://127.0.0.1:7001", "redis://127.0.0.1:7001/0"];
    assert!(matches!(
        Redlock::connect(&twice, LeaseOptions::new()),
        Err(LockError::InvalidNodes { .. })
    ));
}

/// Set in the child process that `two_processes_fence_writes` starts.
const CONTENDER_ENV: &str = "PULSE_LOCK_CONTENDER";

/// Writes `token` to a fenced resource kept in a Redis hash, which rejects a
/// token below the highest it has seen and counts the rejections.
const FENCED_WRITE: &str = r#"
local highest = tonumber(redis.call('HGET', KEYS[1], 'highest') or '0')
if tonumber(ARGV[1]) < highest then
  redis.call('HINCRBY', KEYS[1], 'stale', 1)
  return 0
end
redis.call('HSET', KEYS[1], 'highest', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'accepted', 1)
return 1
"#;

/// Contends for one key from `tasks` tasks, each doing a fenced write and a
/// read-modify-write of a counter (two separate commands) under the lock.
async fn contend(url: &str, namespace: &str, tasks: usize, per_task: usize) {
    let locks = RedisLock::connect(url, options(namespace)).unwrap();
    let resource = format!("{namespace}:resource");
    let mut workers = Vec::new();
    for _ in 0..tasks {
        let locks = locks.clone();
        let resource = resource.clone();
        let url = url.to_owned();
        workers.push(tokio::spawn(async move {
            let mut conn = raw(&url).await;
            let write = redis::Script::new(FENCED_WRITE);
            for _ in 0..per_task {
                let lease = locks
                    .acquire("shared", Duration::from_secs(10), Duration::from_secs(60))
                    .await
                    .unwrap();
                let clock = SystemClock::new();
                lease.check(&clock).unwrap();
                let _: i64 = write
                    .key(&resource)
                    .arg(lease.fencing_token().unwrap())
                    .invoke_async(&mut conn)
                    .await
                    .unwrap();
                let counter: i64 = conn.hget(&resource, "counter").await.unwrap_or(0);
                let _: () = conn.hset(&resource, "counter", counter + 1).await.unwrap();
                locks.release(lease).await.unwrap();
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child half of two_processes_fence_writes"]
async fn contender_process() {
    let Ok(spec) = std::env::var(CONTENDER_ENV) else {
        return;
    };
    let (url, namespace) = spec.split_once('|').unwrap();
    contend(url, namespace, 4, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_fence_writes() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("lock");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "contender_process", "--ignored", "--quiet"])
        .env(CONTENDER_ENV, format!("{url}|{namespace}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    contend(&url, &namespace, 4, 250).await;
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the child process failed: {status}");

    let mut conn = raw(&url).await;
    let resource = format!("{namespace}:resource");
    let field = |name: &'static str| {
        let resource = resource.clone();
        let mut conn = conn.clone();
        async move {
            conn.hget::<_, _, Option<u64>>(&resource, name)
                .await
                .unwrap()
                .unwrap_or(0)
        }
    };
    assert_eq!(field("stale").await, 0, "stale writes reached the resource");
    assert_eq!(field("accepted").await, 2000);
    assert_eq!(
        field("counter").await,
        2000,
        "updates were lost, so holders overlapped"
    );
    let _: () = conn.del(&resource).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_renewal_leaves_new_holder() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("lock");

    // The stale holder's watchdog and lost timer run on a manual clock, so
    // its renewal fires only when the test moves that clock: after Redis
    // expired the lease and another holder took it.
    let manual = pulse_core::clock::ManualClock::new();
    let stale_locks = RedisLock::connect(
        &url,
        options(&namespace).clock(manual.clone()).watchdog(true),
    )
    .unwrap();
    let locks = RedisLock::connect(&url, options(&namespace)).unwrap();
    let stale = stale_locks
        .try_acquire("job", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holder = locks
        .try_acquire("job", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("Redis expired the stale lease");

    manual.advance(Duration::from_millis(100));
    tokio::time::timeout(Duration::from_secs(10), stale.lost().fired())
        .await
        .expect("the failed renewal fired the lost signal");

    let mut conn = raw(&url).await;
    let key = owner_key(&namespace, "job");
    let owner: Option<String> = conn.get(&key).await.unwrap();
    assert_eq!(
        owner.as_deref(),
        Some(holder.owner()),
        "the late renewal took the lock back"
    );
    let ttl: i64 = conn.pttl(&key).await.unwrap();
    assert!(
        ttl > 25_000,
        "the late renewal changed the new holder's TTL: {ttl} ms"
    );
    locks.release(holder).await.unwrap();
    drop(stale);
}
