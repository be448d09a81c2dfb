//! Worker pools: no job lost, panics isolated, backpressure, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pulse_conc::Error;
use pulse_conc::pool::{PoolConfig, Shutdown, ThreadPool, WorkerPool};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_jobs_none_lost() {
    const JOBS: u64 = 1_000_000;
    let pool = WorkerPool::new(PoolConfig::fixed(2).queue_capacity(4096)).unwrap();
    let sum = Arc::new(AtomicU64::new(0));

    // Handles are dropped: completion is checked through the counters and
    // the sum, which only the jobs write.
    for n in 0..JOBS {
        let sum = sum.clone();
        pool.submit(async move {
            sum.fetch_add(n, Ordering::Relaxed);
        })
        .await
        .unwrap();
    }
    pool.shutdown(Shutdown::Drain).await;

    assert_eq!(sum.load(Ordering::Relaxed), JOBS * (JOBS - 1) / 2);
    let stats = pool.stats();
    assert_eq!(stats.submitted, JOBS);
    assert_eq!(stats.completed, JOBS);
    assert_eq!((stats.queued, stats.running, stats.workers), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_isolated() {
    let pool = WorkerPool::new(PoolConfig::fixed(1)).unwrap();
    let bad = pool.submit(async { panic!("job bug") }).await.unwrap();
    let good = pool.submit(async { 5 }).await.unwrap();

    assert_eq!(
        bad.await,
        Err(Error::Panicked {
            message: "job bug".to_owned()
        })
    );
    assert_eq!(good.await, Ok(5), "the single worker survived the panic");
    assert_eq!(pool.stats().workers, 1);

    // Counters are updated just after the handle gets its result; the
    // shutdown waits for that.
    pool.shutdown(Shutdown::Drain).await;
    let stats = pool.stats();
    assert_eq!((stats.panicked, stats.completed), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_submit_rejects_when_full() {
    let pool = WorkerPool::new(PoolConfig::fixed(1).queue_capacity(2)).unwrap();
    let (release, gate) = tokio::sync::watch::channel(false);
    let blocker = {
        let mut gate = gate.clone();
        pool.submit(async move {
            let _ = gate.wait_for(|open| *open).await;
        })
        .await
        .unwrap()
    };

    // Fill the queue once the worker holds the blocking job.
    while pool.stats().running == 0 {
        tokio::task::yield_now().await;
    }
    let queued: Vec<_> = (0..2)
        .map(|n| pool.try_submit(async move { n }).unwrap())
        .collect();
    let refused = pool.try_submit(async { 99 });
    assert!(matches!(refused, Err(Error::Full { capacity: 2, .. })));

    release.send(true).unwrap();
    blocker.await.unwrap();
    for (n, handle) in queued.into_iter().enumerate() {
        assert_eq!(handle.await, Ok(n as i32));
    }
    assert_eq!(pool.stats().rejected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_queue() {
    let pool = WorkerPool::new(PoolConfig::fixed(1).queue_capacity(100)).unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..100 {
        let done = done.clone();
        handles.push(
            pool.submit(async move {
                tokio::task::yield_now().await;
                done.fetch_add(1, Ordering::SeqCst);
            })
            .await
            .unwrap(),
        );
    }
    pool.shutdown(Shutdown::Drain).await;
    assert_eq!(done.load(Ordering::SeqCst), 100);
    for handle in handles {
        assert_eq!(handle.await, Ok(()));
    }
    assert!(matches!(
        pool.submit(async {}).await,
        Err(Error::Closed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_queue() {
    let pool = WorkerPool::new(PoolConfig::fixed(1).queue_capacity(10)).unwrap();
    let running = pool.submit(std::future::pending::<()>()).await.unwrap();
    while pool.stats().running == 0 {
        tokio::task::yield_now().await;
    }
    let queued = pool.submit(async { 1 }).await.unwrap();

    tokio::time::timeout(Duration::from_secs(10), pool.shutdown(Shutdown::Cancel))
        .await
        .unwrap();
    assert_eq!(running.await, Err(Error::Cancelled));
    assert_eq!(queued.await, Err(Error::Cancelled));
    assert_eq!(pool.stats().cancelled, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_pool_grows_and_shrinks() {
    let config = PoolConfig::elastic(0, 4)
        .queue_capacity(16)
        .idle_timeout(Duration::from_millis(20));
    let pool = WorkerPool::new(config).unwrap();
    assert_eq!(pool.stats().workers, 0);

    let (release, gate) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    for _ in 0..8 {
        let mut gate = gate.clone();
        handles.push(
            pool.submit(async move {
                let _ = gate.wait_for(|open| *open).await;
            })
            .await
            .unwrap(),
        );
    }
    let peak = pool.stats().workers;
    assert!((1..=4).contains(&peak), "workers: {peak}");

    release.send(true).unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pool.stats().workers > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        pool.stats().workers,
        0,
        "idle workers above the minimum stop"
    );
}

#[tokio::test]
async fn bad_config_is_rejected() {
    for config in [
        PoolConfig::fixed(0),
        PoolConfig::fixed(2).queue_capacity(0),
        PoolConfig::elastic(3, 2),
    ] {
        assert!(matches!(
            WorkerPool::new(config.clone()),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            ThreadPool::new(config),
            Err(Error::InvalidConfig(_))
        ));
    }
}

#[test]
fn pool_needs_runtime() {
    let err = WorkerPool::new(PoolConfig::fixed(1)).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[test]
fn thread_pool_runs_drains_and_isolates() {
    let pool = ThreadPool::new(PoolConfig::fixed(2).queue_capacity(64)).unwrap();
    let sum = Arc::new(AtomicU64::new(0));
    for n in 0..10_000u64 {
        let sum = sum.clone();
        pool.submit(move || {
            sum.fetch_add(n, Ordering::Relaxed);
        })
        .unwrap();
    }
    let bad = pool.submit(|| panic!("thread job bug")).unwrap();
    let good = pool.submit(|| 3).unwrap();
    pool.shutdown(Shutdown::Drain);

    assert_eq!(sum.load(Ordering::Relaxed), 10_000 * 9_999 / 2);
    assert!(matches!(bad.blocking_wait(), Err(Error::Panicked { .. })));
    assert_eq!(good.blocking_wait(), Ok(3));
    let stats = pool.stats();
    assert_eq!(
        (stats.completed, stats.panicked, stats.workers),
        (10_002, 1, 0)
    );
    assert!(matches!(pool.submit(|| ()), Err(Error::Closed { .. })));
}

#[test]
fn thread_pool_try_submit_and_cancel() {
    let pool = ThreadPool::new(PoolConfig::fixed(1).queue_capacity(1)).unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let running = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
        .unwrap();
    started_rx.recv().unwrap();

    let queued = pool.try_submit(|| 1).unwrap();
    assert!(matches!(
        pool.try_submit(|| 2),
        Err(Error::Full { capacity: 1, .. })
    ));

    // Cancel drops the queued job; the running one is waited for.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        release_tx.send(()).unwrap();
    });
    pool.shutdown(Shutdown::Cancel);
    releaser.join().unwrap();
    assert_eq!(running.blocking_wait(), Ok(()));
    assert_eq!(queued.blocking_wait(), Err(Error::Cancelled));
}

#[test]
fn elastic_thread_pool_shrinks() {
    let config = PoolConfig::elastic(0, 3).idle_timeout(Duration::from_millis(10));
    let pool = ThreadPool::new(config).unwrap();
    let handles: Vec<_> = (0..6).map(|n| pool.submit(move || n).unwrap()).collect();
    let total: i32 = handles
        .into_iter()
        .map(|h| h.blocking_wait().unwrap())
        .sum();
    assert_eq!(total, 15);

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pool.stats().workers > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(pool.stats().workers, 0);
}

#[test]
fn fixed_pool_runs_without_timer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = WorkerPool::new(PoolConfig::fixed(4)).unwrap();
        let bad = pool
            .submit(async { panic!("no timer needed") })
            .await
            .unwrap();
        assert!(bad.await.is_err());
        for n in 0..100 {
            assert_eq!(pool.submit(async move { n }).await.unwrap().await, Ok(n));
        }
        pool.shutdown(Shutdown::Drain).await;

        let elastic = WorkerPool::new(PoolConfig::elastic(1, 4));
        assert!(matches!(elastic, Err(Error::InvalidConfig(err)) if err.field() == "runtime"));
    });
}
