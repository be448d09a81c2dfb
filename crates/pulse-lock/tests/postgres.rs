//! PostgreSQL advisory leases against the shared server, each test in a
//! fresh schema.
#![cfg(feature = "postgres")]

use std::sync::Arc;
use std::time::Duration;

use pulse_core::clock::SystemClock;
use pulse_core::error::ErrorKind;
use pulse_core::lock::Lock;
use pulse_lock::{LeaseOptions, LockError, PgLock};
use pulse_testkit::pg::TestSchema;
use pulse_testkit::suites::lock::{LockSetup, run_all};

fn options(namespace: &str) -> LeaseOptions {
    LeaseOptions::new()
        .namespace(namespace)
        .drift_margin(Duration::from_millis(20))
}

fn pool(url: &str, size: usize) -> deadpool_postgres::Pool {
    let mut config = deadpool_postgres::Config::new();
    config.url = Some(url.to_owned());
    config.pool = Some(deadpool_postgres::PoolConfig::new(size));
    config
        .create_pool(
            Some(deadpool_postgres::Runtime::Tokio1),
            tokio_postgres::NoTls,
        )
        .unwrap()
}

/// Counts granted advisory locks on the key's hash, across all sessions.
async fn granted(client: &tokio_postgres::Client, hash: i64) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1",
            &[&hash],
        )
        .await
        .unwrap()
        .get(0)
}

/// Returns the `host:port` part of a URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['/', '?']).next().unwrap_or(rest);
    rest.rsplit_once('@')
        .map_or(rest, |(_, host)| host)
        .to_owned()
}

/// Returns the server address of a URL, with `localhost` as 127.0.0.1.
fn server_addr(url: &str) -> Option<std::net::SocketAddr> {
    authority(url)
        .replace("localhost", "127.0.0.1")
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_lock_passes_suite() {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = TestSchema::create(&url).await.unwrap();
    let locks = PgLock::from_pool(pool(schema.url(), 10), options(schema.name()));
    locks.migrate().await.unwrap();
    let setup = LockSetup::new(
        "postgres",
        Arc::new(locks),
        Arc::new(SystemClock::new()),
        "suite",
    );
    let report = run_all(&setup).await;
    assert!(report.skipped.is_empty(), "{report:?}");
    schema.drop().await.unwrap();
}

#[tokio::test]
async fn migrate_is_idempotent() {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = TestSchema::create(&url).await.unwrap();
    let locks = PgLock::connect(schema.url(), options("m")).unwrap();
    let (first, second) = tokio::join!(locks.migrate(), locks.migrate());
    first.unwrap();
    second.unwrap();
    locks.migrate().await.unwrap();
    let client = schema.connect().await.unwrap();
    let versions: i64 = client
        .query_one("SELECT count(*) FROM pulse_lock_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 1);
    drop(client);
    schema.drop().await.unwrap();
}

#[tokio::test]
async fn timed_out_wait_holds_nothing() {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = TestSchema::create(&url).await.unwrap();
    let namespace = schema.name().to_owned();
    let holder = PgLock::from_pool(pool(schema.url(), 2), options(&namespace));
    holder.migrate().await.unwrap();
    // One connection, so every retry runs on the same session.
    let waiter = PgLock::from_pool(pool(schema.url(), 1), options(&namespace));
    let observer = schema.connect().await.unwrap();
    let hash = PgLock::key_hash(&namespace, "job");
    let ttl = Duration::from_secs(30);

    let held = holder.try_acquire("job", ttl).await.unwrap().unwrap();
    for _ in 0..3 {
        let err = waiter
            .acquire("job", ttl, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert_eq!(
            granted(&observer, hash).await,
            1,
            "only the holder's lock is granted"
        );
    }
    holder.release(held).await.unwrap();
    assert_eq!(
        granted(&observer, hash).await,
        0,
        "the timed-out session took the lock later"
    );

    let lease = waiter
        .acquire("job", ttl, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(granted(&observer, hash).await, 1);
    waiter.release(lease).await.unwrap();
    assert_eq!(
        granted(&observer, hash).await,
        0,
        "one release frees the key: no lock was taken twice"
    );
    drop(observer);
    schema.drop().await.unwrap();
}

#[tokio::test]
async fn cut_connection_fires_lost() {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = TestSchema::create(&url).await.unwrap();
    let Some(upstream) = server_addr(schema.url()) else {
        eprintln!(
            "SKIPPED cut_connection_fires_lost: the PostgreSQL URL names no IP address and port"
        );
        return;
    };
    let proxy = pulse_testkit::proxy::Proxy::start(upstream).await.unwrap();
    let via_proxy = schema
        .url()
        .replacen(&authority(schema.url()), &proxy.addr().to_string(), 1);
    let locks = PgLock::connect(&via_proxy, options(schema.name())).unwrap();
    locks.migrate().await.unwrap();

    let lease = locks
        .try_acquire("job", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    proxy.cut();
    tokio::time::timeout(Duration::from_secs(10), lease.lost().fired())
        .await
        .expect("lost did not fire after the cut");
    let err = locks
        .extend(&lease, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner);

    // The server freed the lock with the session.
    let direct = PgLock::connect(schema.url(), options(schema.name())).unwrap();
    let lease = direct
        .acquire("job", Duration::from_secs(5), Duration::from_secs(10))
        .await
        .unwrap();
    direct.release(lease).await.unwrap();
    schema.drop().await.unwrap();
}

#[tokio::test]
async fn dropped_lease_unlocks() {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = TestSchema::create(&url).await.unwrap();
    let locks = PgLock::from_pool(pool(schema.url(), 2), options(schema.name()));
    locks.migrate().await.unwrap();
    let lease = locks
        .try_acquire("job", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    drop(lease);
    let again = locks
        .acquire("job", Duration::from_secs(30), Duration::from_secs(5))
        .await
        .unwrap();
    locks.release(again).await.unwrap();
    schema.drop().await.unwrap();
}

#[tokio::test]
async fn unmigrated_schema_is_an_error() {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = TestSchema::create(&url).await.unwrap();
    let locks = PgLock::connect(schema.url(), options(schema.name())).unwrap();
    let err = locks
        .try_acquire("job", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.downcast_ref::<LockError>().is_some());
    schema.drop().await.unwrap();
}
