//! An in-process worker-lease store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::clock::{Clock, SystemClock};

use crate::error::{IdError, Result};
use crate::lease::{WorkerLease, WorkerLeases, check_owner, millis};

/// Worker-id leases kept in process memory, timed by a [`Clock`].
///
/// It lets several generators of one process share a worker-id pool, and
/// lets tests drive leases with a manual clock. Clones share the records.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_id::{MemoryWorkerLeases, WorkerLeases};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let leases = MemoryWorkerLeases::new();
/// let first = leases.acquire("a", 2, Duration::from_secs(10)).await.unwrap();
/// let second = leases.acquire("b", 2, Duration::from_secs(10)).await.unwrap();
/// assert_ne!(first.worker_id, second.worker_id);
/// assert!(leases.acquire("c", 2, Duration::from_secs(10)).await.is_err());
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct MemoryWorkerLeases<C: Clock = SystemClock> {
    clock: C,
    records: Arc<Mutex<HashMap<u64, (String, u64)>>>,
}

impl MemoryWorkerLeases<SystemClock> {
    /// Creates an empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock::new())
    }
}

impl Default for MemoryWorkerLeases<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> MemoryWorkerLeases<C> {
    /// Creates an empty store timed by `clock`.
    pub fn with_clock(clock: C) -> Self {
        MemoryWorkerLeases {
            clock,
            records: Arc::default(),
        }
    }

    /// Ends the lease on `worker_id` now, whoever holds it, as an operator
    /// or a failover might. Its holder learns at its next renewal.
    pub fn revoke(&self, worker_id: u64) {
        let now = self.now_ms();
        if let Some(record) = self.lock().get_mut(&worker_id) {
            record.0.clear();
            record.1 = record.1.min(now);
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.wall().as_millis()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, u64)>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<C: Clock> WorkerLeases for MemoryWorkerLeases<C> {
    async fn acquire(&self, owner: &str, pool_size: u64, ttl: Duration) -> Result<WorkerLease> {
        check_owner(owner)?;
        let now = self.now_ms();
        let mut records = self.lock();
        for worker_id in 0..pool_size {
            let previous = records.get(&worker_id).map_or(0, |record| record.1);
            if previous <= now {
                let expires_at_ms = now + millis(ttl);
                records.insert(worker_id, (owner.to_owned(), expires_at_ms));
                return Ok(WorkerLease {
                    worker_id,
                    owner: owner.to_owned(),
                    expires_at_ms,
                    previous_expiry_ms: previous,
                });
            }
        }
        Err(IdError::NoFreeWorkerId {
            namespace: "memory".to_owned(),
            pool_size,
        })
    }

    async fn renew(&self, lease: &WorkerLease, ttl: Duration) -> Result<Option<u64>> {
        let now = self.now_ms();
        let mut records = self.lock();
        match records.get_mut(&lease.worker_id) {
            Some(record) if record.0 == lease.owner && record.1 > now => {
                record.1 = now + millis(ttl);
                Ok(Some(record.1))
            }
            _ => Ok(None),
        }
    }

    async fn release(&self, lease: &WorkerLease) -> Result<()> {
        let now = self.now_ms();
        if let Some(record) = self.lock().get_mut(&lease.worker_id) {
            if record.0 == lease.owner {
                record.0.clear();
                record.1 = record.1.min(now);
            }
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
