//! A lease store that hands out a worker id outside the layout's pool is
//! refused: the generator would otherwise issue another worker's IDs.

use std::time::Duration;

use pulse_core::clock::ManualClock;
use pulse_id::{
    IdError, Layout, LeasedSnowflake, LeasedSnowflakeConfig, Result, SnowflakeBuilder, WorkerLease,
    WorkerLeases,
};

/// Returns worker id 1024 + 3, which a 10-bit layout would issue as 3.
struct OutOfPool;

impl WorkerLeases for OutOfPool {
    async fn acquire(&self, owner: &str, pool_size: u64, ttl: Duration) -> Result<WorkerLease> {
        Ok(WorkerLease {
            worker_id: pool_size + 3,
            owner: owner.to_owned(),
            expires_at_ms: u64::try_from(ttl.as_millis()).unwrap(),
            previous_expiry_ms: 0,
        })
    }

    async fn renew(&self, _lease: &WorkerLease, _ttl: Duration) -> Result<Option<u64>> {
        Ok(None)
    }

    async fn release(&self, _lease: &WorkerLease) -> Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "test"
    }
}

#[tokio::test]
async fn worker_id_outside_pool_rejected() {
    let clock = ManualClock::new();
    let builder = SnowflakeBuilder::new(Layout::twitter(), clock);
    let result = LeasedSnowflake::start(OutOfPool, builder, LeasedSnowflakeConfig::default()).await;
    let Err(err) = result else {
        panic!("a worker id outside the pool was accepted");
    };
    assert!(matches!(err, IdError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("1027"), "{err}");
}
