//! Worker-id leases over Redis: two processes, and a killed server.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use pulse_core::error::ErrorKind;
use pulse_id::lease::redis::RedisWorkerLeases;
use pulse_id::{IdError, Layout, LeasedSnowflake, LeasedSnowflakeConfig, Snowflake, WorkerLeases};
use pulse_testkit::redis_server::RedisServer;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Leases a worker id in `namespace` and issues `count` IDs from two threads.
fn leased_ids(url: &str, namespace: &str, count: usize) -> Vec<u64> {
    let runtime = runtime();
    let leases = RedisWorkerLeases::from_url(url, namespace)
        .unwrap()
        .with_prefix(namespace);
    let ids = runtime
        .block_on(LeasedSnowflake::start(
            leases,
            Snowflake::builder(Layout::twitter()),
            LeasedSnowflakeConfig::default(),
        ))
        .unwrap();
    let ids = std::sync::Arc::new(ids);
    let issued = common::generate(count, {
        let ids = std::sync::Arc::clone(&ids);
        move || ids.next_id().unwrap()
    });
    runtime.block_on(ids.shutdown());
    issued
}

#[test]
fn two_processes_never_share_ids() {
    if let Some((out, url, namespace)) = common::child_role() {
        let ids = leased_ids(&url, &namespace, common::PER_PROCESS);
        common::write_ids(&out, &ids);
        return;
    }
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("id-two-processes");
    let out = common::out_file(&namespace);

    let mut child = common::spawn_child("two_processes_never_share_ids", &out, &url, &namespace);
    let mine = leased_ids(&url, &namespace, common::PER_PROCESS);
    assert!(child.wait().unwrap().success(), "the child process failed");

    let theirs = common::read_ids(&out);
    let _ = std::fs::remove_file(&out);
    assert_eq!(theirs.len(), common::PER_PROCESS);
    let layout = Layout::twitter();
    assert_ne!(
        layout.decode(mine[0]).worker_id,
        layout.decode(theirs[0]).worker_id,
        "live leases share a worker id"
    );
    common::assert_disjoint(mine, theirs);

    let key = RedisWorkerLeases::from_url(&url, &namespace)
        .unwrap()
        .with_prefix(&namespace);
    runtime().block_on(common::delete_redis_keys(&url, &[key.key()]));
}

#[tokio::test]
async fn lease_records_keep_previous_expiry() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let namespace = pulse_testkit::unique_prefix("id-records");
    let leases = RedisWorkerLeases::from_url(&url, &namespace)
        .unwrap()
        .with_prefix(&namespace);
    let ttl = Duration::from_secs(5);

    let first = leases.acquire("first", 1, ttl).await.unwrap();
    assert_eq!(first.previous_expiry_ms, 0);
    assert!(matches!(
        leases.acquire("second", 1, ttl).await,
        Err(IdError::NoFreeWorkerId { pool_size: 1, .. })
    ));
    assert!(leases.renew(&first, ttl).await.unwrap().is_some());

    leases.release(&first).await.unwrap();
    let second = leases.acquire("second", 1, ttl).await.unwrap();
    assert_eq!(second.worker_id, 0);
    assert!(second.previous_expiry_ms > 0);
    assert!(second.previous_expiry_ms <= first.expires_at_ms + ttl.as_millis() as u64);

    // The first owner lost the id: renewal and release leave it alone.
    assert_eq!(leases.renew(&first, ttl).await.unwrap(), None);
    leases.release(&first).await.unwrap();
    assert!(leases.renew(&second, ttl).await.unwrap().is_some());
    common::delete_redis_keys(&url, &[leases.key()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_stops_issuance() {
    let mut server = match RedisServer::start() {
        Ok(server) => server,
        Err(err) if !pulse_testkit::services::ci_mode() => {
            eprintln!("SKIPPED killed_redis_stops_issuance: cannot start redis-server: {err}");
            return;
        }
        Err(err) => panic!("cannot start redis-server: {err}"),
    };
    let leases = RedisWorkerLeases::from_url(&server.url(), "loss").unwrap();
    let config = LeasedSnowflakeConfig {
        ttl: Duration::from_secs(1),
        max_clock_skew: Duration::from_millis(100),
        retry_delay: Duration::from_millis(100),
        ..LeasedSnowflakeConfig::default()
    };
    let ids = LeasedSnowflake::start(leases, Snowflake::builder(Layout::twitter()), config)
        .await
        .unwrap();
    let before = ids.next_id().unwrap();

    server.kill();
    let started = Instant::now();
    let err = loop {
        match ids.next_id() {
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "IDs kept coming without a lease"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => break err,
        }
    };
    assert!(matches!(err, IdError::LeaseLost { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotOwner);

    // A new server (empty, as Redis without persistence restarts) gives a
    // new lease, and IDs resume above the earlier ones.
    server.restart().unwrap();
    let started = Instant::now();
    let after = loop {
        match ids.next_id() {
            Ok(id) => break id,
            Err(IdError::LeaseLost { .. }) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no new lease after the restart"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    };
    assert!(after > before);
    ids.shutdown().await;
}
