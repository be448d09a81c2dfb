//! Leased Snowflake generators over the in-process lease store, driven by a
//! manual clock: distinct worker ids, the wait past the previous holder's
//! expiry, and lease loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pulse_core::clock::{Clock, ManualClock};
use pulse_core::error::ErrorKind;
use pulse_id::{
    IdError, Layout, LeasedSnowflake, LeasedSnowflakeConfig, MemoryWorkerLeases, Result,
    SnowflakeBuilder, WorkerLease, WorkerLeases,
};

fn config() -> LeasedSnowflakeConfig {
    LeasedSnowflakeConfig {
        ttl: Duration::from_secs(3),
        max_clock_skew: Duration::from_secs(1),
        retry_delay: Duration::from_millis(100),
        ..LeasedSnowflakeConfig::default()
    }
}

/// A layout with one worker id, so that two holders must share it in turn.
fn single_worker() -> Layout {
    Layout::builder().worker_bits(0).build().unwrap()
}

/// Moves the manual clock forward in small steps, letting background tasks
/// run after each.
async fn advance(clock: &ManualClock, total: Duration) {
    let step = Duration::from_millis(50);
    let mut moved = Duration::ZERO;
    while moved < total {
        clock.advance(step);
        moved += step;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test]
async fn two_generators_get_distinct_worker_ids() {
    let clock = ManualClock::new();
    let leases = MemoryWorkerLeases::with_clock(clock.clone());
    let builder = || SnowflakeBuilder::new(Layout::twitter(), clock.clone());
    let one = LeasedSnowflake::start(leases.clone(), builder(), config())
        .await
        .unwrap();
    let two = LeasedSnowflake::start(leases.clone(), builder(), config())
        .await
        .unwrap();
    assert_ne!(one.worker_id(), two.worker_id());

    let id = one.next_id().unwrap();
    assert_eq!(one.layout().decode(id).worker_id, one.worker_id());
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test]
async fn new_holder_waits_past_previous_expiry() {
    let clock = ManualClock::new();
    let leases = MemoryWorkerLeases::with_clock(clock.clone());
    let builder = || SnowflakeBuilder::new(single_worker(), clock.clone());
    let old = LeasedSnowflake::start(leases.clone(), builder(), config())
        .await
        .unwrap();
    let mut old_ids = vec![old.next_id().unwrap()];

    // The store ends the old lease behind its holder's back, as a holder
    // paused past its TTL would find.
    leases.revoke(0);
    let revoked_at = clock.wall();
    let new = tokio::spawn({
        let leases = leases.clone();
        let builder = builder();
        async move { LeasedSnowflake::start(leases, builder, config()).await }
    });

    // The old holder does not know yet and keeps issuing until its renewal.
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    old_ids.push(old.next_id().unwrap());
    assert!(!new.is_finished(), "the new holder must wait out the skew");

    advance(&clock, Duration::from_millis(1100)).await;
    let new = new.await.unwrap().unwrap();
    let first_new = new.next_id().unwrap();
    let new_time = new.layout().decode(first_new).timestamp;
    assert!(new_time > revoked_at.saturating_add(Duration::from_secs(1)));
    assert!(old_ids.iter().all(|&id| id < first_new));

    // The old holder's renewal found the lease gone: it stops issuing.
    let err = old.next_id().unwrap_err();
    assert!(matches!(err, IdError::LeaseLost { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotOwner);
    old.shutdown().await;
    new.shutdown().await;
}

/// A store whose calls fail while `down` is set.
#[derive(Clone)]
struct Unreachable {
    inner: MemoryWorkerLeases<ManualClock>,
    down: Arc<AtomicBool>,
}

impl Unreachable {
    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(IdError::Backend {
                backend: "test",
                operation: "lease",
                message: "store unreachable".to_owned(),
            });
        }
        Ok(())
    }
}

impl WorkerLeases for Unreachable {
    async fn acquire(&self, owner: &str, pool_size: u64, ttl: Duration) -> Result<WorkerLease> {
        self.check()?;
        self.inner.acquire(owner, pool_size, ttl).await
    }
    async fn renew(&self, lease: &WorkerLease, ttl: Duration) -> Result<Option<u64>> {
        self.check()?;
        self.inner.renew(lease, ttl).await
    }
    async fn release(&self, lease: &WorkerLease) -> Result<()> {
        self.check()?;
        self.inner.release(lease).await
    }
    fn backend(&self) -> &'static str {
        "test"
    }
}

#[tokio::test]
async fn unreachable_store_stops_at_deadline_then_resumes() {
    let clock = ManualClock::new();
    let store = Unreachable {
        inner: MemoryWorkerLeases::with_clock(clock.clone()),
        down: Arc::new(AtomicBool::new(false)),
    };
    let ids = LeasedSnowflake::start(
        store.clone(),
        SnowflakeBuilder::new(single_worker(), clock.clone()),
        config(),
    )
    .await
    .unwrap();
    let before = ids.next_id().unwrap();

    // Renewals fail, but the lease is valid until its deadline (3 s).
    store.down.store(true, Ordering::SeqCst);
    advance(&clock, Duration::from_millis(2500)).await;
    let during = ids.next_id().unwrap();
    assert!(during > before);

    advance(&clock, Duration::from_millis(600)).await;
    let err = ids.next_id().unwrap_err();
    assert!(matches!(err, IdError::LeaseLost { .. }), "{err}");
    assert!(ids.lease().is_none() || ids.generator().try_next_id().is_err());

    // The store comes back: a new lease, a wait past the old expiry plus
    // the skew, and IDs resume above every earlier one.
    store.down.store(false, Ordering::SeqCst);
    advance(&clock, Duration::from_millis(1500)).await;
    let after = ids.next_id().unwrap();
    assert!(after > during);
    ids.shutdown().await;
}

#[tokio::test]
async fn shutdown_releases_lease() {
    let clock = ManualClock::new();
    let leases = MemoryWorkerLeases::with_clock(clock.clone());
    let builder = || SnowflakeBuilder::new(single_worker(), clock.clone());
    let first = LeasedSnowflake::start(leases.clone(), builder(), config())
        .await
        .unwrap();
    first.shutdown().await;
    assert!(matches!(first.next_id(), Err(IdError::LeaseLost { .. })));

    // The released id is free at once; the next holder waits only the skew.
    let second = tokio::spawn({
        let leases = leases.clone();
        let builder = builder();
        async move { LeasedSnowflake::start(leases, builder, config()).await }
    });
    advance(&clock, Duration::from_millis(1100)).await;
    let second = second.await.unwrap().unwrap();
    assert_eq!(second.worker_id(), 0);
    second.shutdown().await;
}

#[tokio::test]
async fn full_pool_reports_no_free_worker_id() {
    let clock = ManualClock::new();
    let leases = MemoryWorkerLeases::with_clock(clock.clone());
    let builder = || SnowflakeBuilder::new(single_worker(), clock.clone());
    let holder = LeasedSnowflake::start(leases.clone(), builder(), config())
        .await
        .unwrap();
    let err = LeasedSnowflake::start(leases.clone(), builder(), config())
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdError::NoFreeWorkerId { pool_size: 1, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    holder.shutdown().await;
}

#[tokio::test]
async fn lossy_store_waits_full_ttl() {
    let clock = ManualClock::new();
    let leases = MemoryWorkerLeases::with_clock(clock.clone());
    let lossy = LeasedSnowflakeConfig {
        store_may_lose_records: true,
        ..config()
    };
    let started_at = clock.wall();
    let starting = tokio::spawn({
        let builder = SnowflakeBuilder::new(single_worker(), clock.clone());
        async move { LeasedSnowflake::start(leases, builder, lossy).await }
    });

    // The id was never leased, yet the holder waits TTL (3 s) plus skew (1 s).
    advance(&clock, Duration::from_millis(3900)).await;
    assert!(
        !starting.is_finished(),
        "started before a full TTL plus the skew"
    );
    advance(&clock, Duration::from_millis(200)).await;
    let ids = starting.await.unwrap().unwrap();
    let first = ids.layout().decode(ids.next_id().unwrap());
    assert!(first.timestamp > started_at.saturating_add(Duration::from_secs(4)));
    ids.shutdown().await;
}
