//! The segment allocator over the in-process source.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pulse_id::{IdError, MemorySource, Result, SegmentAllocator, SegmentConfig, SegmentSource};

fn small(step: u64) -> SegmentConfig {
    SegmentConfig {
        initial_step: step,
        min_step: step,
        max_step: step * 64,
        ..SegmentConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_dense_and_unique() {
    let ids = Arc::new(
        SegmentAllocator::start(MemorySource::new(), "orders", small(100))
            .await
            .unwrap(),
    );

    let handles: Vec<_> = (0..4)
        .map(|_| {
            let ids = Arc::clone(&ids);
            std::thread::spawn(move || {
                (0..50_000)
                    .map(|_| ids.next_id().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for handle in handles {
        let mine = handle.join().unwrap();
        assert!(mine.windows(2).all(|pair| pair[0] < pair[1]));
        all.extend(mine);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 200_000);
    ids.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_grows_with_rate() {
    let ids = SegmentAllocator::start(MemorySource::new(), "fast", small(100))
        .await
        .unwrap();
    for _ in 0..20_000 {
        ids.next_id_async().await.unwrap();
    }
    // Every range lasted far less than the 60 s target, so the step doubled.
    assert!(ids.step() > 100, "step stayed at {}", ids.step());
    ids.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_allocators_share_a_source() {
    let source = Arc::new(MemorySource::new());
    let one = SegmentAllocator::start(Shared(Arc::clone(&source)), "shared", small(10))
        .await
        .unwrap();
    let two = SegmentAllocator::start(Shared(Arc::clone(&source)), "shared", small(10))
        .await
        .unwrap();
    let mut all = Vec::new();
    for _ in 0..1_000 {
        all.push(one.next_id_async().await.unwrap());
        all.push(two.next_id_async().await.unwrap());
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 2_000);
}

/// A source behind an `Arc`, to share one counter between allocators.
struct Shared(Arc<MemorySource>);

impl SegmentSource for Shared {
    async fn reserve(&self, name: &str, count: u64) -> Result<u64> {
        self.0.reserve(name, count).await
    }
    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// A source that fails on demand and counts its calls.
struct Flaky {
    inner: MemorySource,
    failing: std::sync::atomic::AtomicBool,
    calls: AtomicU64,
}

impl SegmentSource for Flaky {
    async fn reserve(&self, name: &str, count: u64) -> Result<u64> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(IdError::Backend {
                backend: "test",
                operation: "reserve",
                message: "store is down".to_owned(),
            });
        }
        self.inner.reserve(name, count).await
    }
    fn backend(&self) -> &'static str {
        "test"
    }
}

/// A handle to a shared [`Flaky`] source.
struct FlakyHandle(Arc<Flaky>);

impl SegmentSource for FlakyHandle {
    async fn reserve(&self, name: &str, count: u64) -> Result<u64> {
        self.0.reserve(name, count).await
    }
    fn backend(&self) -> &'static str {
        "test"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_source_reports_error() {
    let flaky = Arc::new(Flaky {
        inner: MemorySource::new(),
        failing: std::sync::atomic::AtomicBool::new(false),
        calls: AtomicU64::new(0),
    });
    let config = SegmentConfig {
        wait_timeout: Duration::from_millis(300),
        retry_delay: Duration::from_millis(10),
        ..small(10)
    };
    let ids = SegmentAllocator::start(FlakyHandle(Arc::clone(&flaky)), "down", config)
        .await
        .unwrap();

    // The first range is served and the second prefetched while the store works.
    for expected in 1..=10 {
        assert_eq!(ids.next_id_async().await.unwrap(), expected);
    }
    while flaky.calls.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // The store goes down: the prefetched range is still served, then the
    // caller gets the store's error after the wait timeout.
    flaky.failing.store(true, Ordering::SeqCst);
    for expected in 11..=20 {
        assert_eq!(ids.next_id_async().await.unwrap(), expected);
    }
    let err = ids.next_id_async().await.unwrap_err();
    assert!(
        matches!(&err, IdError::Backend { message, .. } if message.contains("store is down")),
        "{err}"
    );
    assert!(ids.try_next_id().is_err());

    // The store comes back: IDs resume after the retry delay.
    flaky.failing.store(false, Ordering::SeqCst);
    let resumed = ids.next_id_async().await.unwrap();
    assert!(resumed > 20);
    ids.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn try_next_id_does_not_block() {
    let ids = SegmentAllocator::start(MemorySource::new(), "try", small(10))
        .await
        .unwrap();
    // On a current-thread runtime the prefetch task cannot run while this
    // test does not yield, so after the first range a call would block.
    let mut served = 0;
    let err = loop {
        match ids.try_next_id() {
            Ok(_) => served += 1,
            Err(err) => break err,
        }
    };
    assert_eq!(served, 10);
    assert!(matches!(err, IdError::SegmentPending { .. }), "{err}");

    // Yielding lets the prefetch run; the async call waits for it.
    assert_eq!(ids.next_id_async().await.unwrap(), 11);
    ids.shutdown().await;
}
