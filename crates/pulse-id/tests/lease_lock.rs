//! Worker-id leases through a pulse-core `Lock`, here a small lock table on
//! a manual clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::clock::{Clock, ManualClock, MonoTime};
use pulse_core::error::{Error, ErrorKind, Result};
use pulse_core::lock::{Lease, Lock};
use pulse_id::lease::LockWorkerLeases;
use pulse_id::{IdError, Layout, LeasedSnowflake, LeasedSnowflakeConfig, SnowflakeBuilder};

/// Held keys with their owner and deadline; clones share the table.
#[derive(Clone, Debug)]
struct Table {
    clock: ManualClock,
    held: Arc<Mutex<HashMap<String, (String, MonoTime)>>>,
    next_owner: Arc<Mutex<u64>>,
}

impl Table {
    fn new(clock: &ManualClock) -> Self {
        Table {
            clock: clock.clone(),
            held: Arc::default(),
            next_owner: Arc::default(),
        }
    }

    fn steal(&self, key: &str) {
        self.held.lock().unwrap().remove(key);
    }
}

impl Lock for Table {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        let now = self.clock.now();
        let mut held = self.held.lock().unwrap();
        if held.get(key).is_some_and(|(_, deadline)| *deadline > now) {
            return Ok(None);
        }
        let mut next = self.next_owner.lock().unwrap();
        *next += 1;
        held.insert(key.to_owned(), (next.to_string(), now + ttl));
        Ok(Some(Lease::new(
            key,
            next.to_string(),
            Some(*next),
            now + ttl,
        )))
    }

    async fn acquire(&self, key: &str, ttl: Duration, _wait: Duration) -> Result<Lease> {
        self.try_acquire(key, ttl)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::TimedOut, "busy"))
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        let now = self.clock.now();
        let mut held = self.held.lock().unwrap();
        match held.get_mut(lease.key()) {
            Some((owner, deadline)) if owner == lease.owner() && *deadline > now => {
                *deadline = now + ttl;
                Ok(())
            }
            _ => Err(Error::new(ErrorKind::NotOwner, "lease lost")),
        }
    }

    async fn release(&self, lease: Lease) -> Result<()> {
        let mut held = self.held.lock().unwrap();
        if held
            .get(lease.key())
            .is_some_and(|(owner, _)| owner == lease.owner())
        {
            held.remove(lease.key());
            return Ok(());
        }
        Err(Error::new(ErrorKind::NotOwner, "lease lost"))
    }
}

fn config() -> LeasedSnowflakeConfig {
    LeasedSnowflakeConfig {
        ttl: Duration::from_secs(3),
        max_clock_skew: Duration::from_millis(500),
        ..LeasedSnowflakeConfig::default()
    }
}

/// Moves the manual clock forward in small steps, letting tasks run.
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
async fn lock_leases_distinct_and_lost() {
    let clock = ManualClock::new();
    let table = Table::new(&clock);
    let layout = Layout::builder().worker_bits(1).build().unwrap();
    let start = |namespace: &'static str| {
        let leases = LockWorkerLeases::with_clock(table.clone(), namespace, clock.clone());
        LeasedSnowflake::start(
            leases,
            SnowflakeBuilder::new(layout, clock.clone()),
            config(),
        )
    };

    // Each start waits the skew past its acquire time.
    let one = tokio::spawn(start("orders"));
    let two = tokio::spawn(start("orders"));
    advance(&clock, Duration::from_millis(600)).await;
    let one = one.await.unwrap().unwrap();
    let two = two.await.unwrap().unwrap();
    assert_ne!(one.worker_id(), two.worker_id());
    let before = one.next_id().unwrap();

    // The pool of two is full.
    let third = start("orders").await.unwrap_err();
    assert!(
        matches!(third, IdError::NoFreeWorkerId { pool_size: 2, .. }),
        "{third}"
    );

    // The lock passes the key to someone else: the next renewal fails and
    // issuance stops.
    table.steal(&format!("orders:worker:{}", one.worker_id()));
    advance(&clock, Duration::from_millis(1100)).await;
    let err = one.next_id().unwrap_err();
    assert!(matches!(err, IdError::LeaseLost { .. }), "{err}");

    // The key is free again, so the generator takes it back and resumes
    // above its earlier IDs.
    advance(&clock, Duration::from_millis(1000)).await;
    let after = one.next_id().unwrap();
    assert!(after > before);
    one.shutdown().await;
    two.shutdown().await;
}
