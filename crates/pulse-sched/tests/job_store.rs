//! Job stores: the conformance suite on every backend, and the worker over
//! a restart and through retries to the dead letters.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::settle;
use pulse_core::clock::{Clock, ManualClock};
use pulse_core::sched::{DynJobStore, JobStore, NewJob};
use pulse_sched::store::MemoryJobStore;
use pulse_sched::{Backoff, JobWorker, WorkerOptions};
use pulse_testkit::suites::sched::{JobStoreCaps, run_all};

#[tokio::test]
async fn memory_store_conformance() {
    run_all("memory", JobStoreCaps { persistent: false }, |_| async {
        MemoryJobStore::new()
    })
    .await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_store_conformance() {
    use pulse_sched::store::RedisJobStore;
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    run_all("redis", JobStoreCaps { persistent: true }, |queue| {
        let store = RedisJobStore::from_url(&url, &queue).unwrap();
        async move { store }
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_store_conformance() {
    use pulse_sched::store::PgJobStore;
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = pulse_testkit::pg::TestSchema::create(&url).await.unwrap();
    let schema_url = schema.url().to_owned();
    run_all("postgres", JobStoreCaps { persistent: true }, |queue| {
        let store = PgJobStore::from_url(&schema_url, &queue).unwrap();
        async move {
            store.migrate().await.unwrap();
            // A second migrate is a no-op.
            store.migrate().await.unwrap();
            store
        }
    })
    .await;
    schema.drop().await.unwrap();
}

/// Jobs stored, the worker dropped before they are due, a new worker (on a
/// new store handle) fires each of them once.
async fn restart_fires_stored_jobs(open: impl Fn() -> Arc<dyn DynJobStore>) {
    let clock = ManualClock::new();
    let options = WorkerOptions::default().poll_every(Duration::from_millis(100));
    let first = JobWorker::start_with_clock(
        open(),
        Arc::new(clock.clone()),
        options.clone(),
        |_| async { Err("the first worker must not run anything".into()) },
    )
    .unwrap();

    let store = open();
    for index in 0..5 {
        let job = NewJob {
            id: format!("reminder-{index}"),
            payload: Bytes::from(format!("{index}")),
            run_at: clock.wall().saturating_add(Duration::from_secs(60)),
        };
        assert!(store.push(job).await.unwrap());
    }
    first.shutdown().await;
    drop(first);
    drop(store);

    let handled = Arc::new(AtomicU32::new(0));
    let seen = handled.clone();
    let second = JobWorker::start_with_clock(open(), Arc::new(clock.clone()), options, move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    clock.advance(Duration::from_secs(60));
    settle(|| {
        clock.advance(Duration::from_millis(100));
        handled.load(Ordering::SeqCst) == 5
    })
    .await;

    // The count rises when a handler starts, before the worker acks the job
    // in another round trip. Jumping past the 60 s lease while an ack is in
    // flight would hand that job out again, as at-least-once delivery must,
    // so the acks get real time to land first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    clock.advance(Duration::from_secs(120));
    common::idle().await;
    assert_eq!(handled.load(Ordering::SeqCst), 5, "a job ran twice");
    second.shutdown().await;
}

/// A handler that always fails is called `max_attempts` times, with backoff
/// between, and the job is then dead-lettered with the reason.
async fn failing_job_is_dead_lettered(store: Arc<dyn DynJobStore>) {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let worker = JobWorker::start_with_clock(
        store.clone(),
        Arc::new(clock.clone()),
        WorkerOptions::default()
            .poll_every(Duration::from_millis(100))
            .max_attempts(3)
            .backoff(Backoff::fixed(Duration::from_secs(5))),
        move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Err("payment gateway said no".into()) }
        },
    )
    .unwrap();
    store
        .push(NewJob {
            id: "charge-9".into(),
            payload: Bytes::from_static(b"9"),
            run_at: clock.wall(),
        })
        .await
        .unwrap();

    settle(|| {
        clock.advance(Duration::from_millis(500));
        calls.load(Ordering::SeqCst) == 3
    })
    .await;
    let mut dead = Vec::new();
    for _ in 0..1000 {
        dead = store.dead_letters(10).await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].error, "payment gateway said no");
    clock.advance(Duration::from_secs(600));
    common::idle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_worker_dead_letters() {
    failing_job_is_dead_lettered(Arc::new(MemoryJobStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_worker_restart_keeps_shared_store() {
    let store: Arc<dyn DynJobStore> = Arc::new(MemoryJobStore::new());
    restart_fires_stored_jobs(move || store.clone()).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_worker_restart_and_dead_letters() {
    use pulse_sched::store::RedisJobStore;
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let queue = pulse_testkit::unique_prefix("sched-restart");
    restart_fires_stored_jobs(|| Arc::new(RedisJobStore::from_url(&url, &queue).unwrap())).await;
    let queue = pulse_testkit::unique_prefix("sched-dead");
    failing_job_is_dead_lettered(Arc::new(RedisJobStore::from_url(&url, &queue).unwrap())).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_worker_restart_and_dead_letters() {
    use pulse_sched::store::PgJobStore;
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = pulse_testkit::pg::TestSchema::create(&url).await.unwrap();
    let store = PgJobStore::from_url(schema.url(), "restart").unwrap();
    store.migrate().await.unwrap();
    let schema_url = schema.url().to_owned();
    restart_fires_stored_jobs(|| Arc::new(PgJobStore::from_url(&schema_url, "restart").unwrap()))
        .await;
    failing_job_is_dead_lettered(Arc::new(PgJobStore::from_url(&schema_url, "dead").unwrap()))
        .await;
    schema.drop().await.unwrap();
}
