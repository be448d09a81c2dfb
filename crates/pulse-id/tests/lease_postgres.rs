//! Worker-id leases over PostgreSQL: two processes in one fresh schema.
#![cfg(feature = "postgres")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use pulse_id::lease::postgres::{PgWorkerLeases, migrate};
use pulse_id::{IdError, Layout, LeasedSnowflake, LeasedSnowflakeConfig, Snowflake, WorkerLeases};
use pulse_testkit::pg::TestSchema;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Leases a worker id in `namespace` and issues `count` IDs from two threads.
fn leased_ids(schema_url: &str, namespace: &str, count: usize) -> Vec<u64> {
    let runtime = runtime();
    let ids = runtime
        .block_on(async {
            let leases = PgWorkerLeases::connect(schema_url, namespace).await?;
            LeasedSnowflake::start(
                leases,
                Snowflake::builder(Layout::twitter()),
                LeasedSnowflakeConfig::default(),
            )
            .await
        })
        .unwrap();
    let ids = Arc::new(ids);
    let issued = common::generate(count, {
        let ids = Arc::clone(&ids);
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
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let runtime = runtime();
    let schema = runtime.block_on(TestSchema::create(&url)).unwrap();
    runtime
        .block_on(async { migrate(&schema.connect().await.unwrap()).await })
        .unwrap();
    let namespace = pulse_testkit::unique_prefix("id-two-processes");
    let out = common::out_file(&namespace);

    let mut child = common::spawn_child(
        "two_processes_never_share_ids",
        &out,
        schema.url(),
        &namespace,
    );
    let mine = leased_ids(schema.url(), &namespace, common::PER_PROCESS);
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
    runtime.block_on(schema.drop()).unwrap();
}

#[tokio::test]
async fn lease_rows_keep_previous_expiry() {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = TestSchema::create(&url).await.unwrap();
    let client = Arc::new(schema.connect().await.unwrap());
    migrate(&client).await.unwrap();
    migrate(&client).await.unwrap();
    let leases = PgWorkerLeases::new(Arc::clone(&client), "records");
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

    // The first owner lost the id: renewal and release leave it alone.
    assert_eq!(leases.renew(&first, ttl).await.unwrap(), None);
    leases.release(&first).await.unwrap();
    assert!(leases.renew(&second, ttl).await.unwrap().is_some());

    // Many acquirers at once never share a worker id.
    let many = PgWorkerLeases::new(Arc::clone(&client), "many");
    let mut taken = Vec::new();
    for owner in 0..8 {
        taken.push(
            many.acquire(&format!("owner{owner}"), 8, ttl)
                .await
                .unwrap()
                .worker_id,
        );
    }
    taken.sort_unstable();
    assert_eq!(taken, (0..8).collect::<Vec<_>>());
    drop(leases);
    drop(many);
    drop(client);
    schema.drop().await.unwrap();
}
