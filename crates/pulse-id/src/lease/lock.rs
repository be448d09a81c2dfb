//! Worker-id leases over any [`pulse_core::lock::Lock`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use pulse_core::clock::{Clock, SystemClock};
use pulse_core::error::ErrorKind;
use pulse_core::lock::{Lease, Lock};

use crate::error::{IdError, Result};
use crate::lease::{WorkerLease, WorkerLeases, check_owner, millis};

/// Worker-id leases taken through any pulse-core [`Lock`]: worker id `n` of
/// a namespace is the lock key `<namespace>:worker:<n>`.
///
/// A generic lock does not keep the expiry of a lease that has ended, so
/// this store reports the time of each acquire (by its own clock) as the
/// previous expiry. That is safe because the lock hands a key over only
/// after the previous lease's TTL ran out. The cost is a wait: every new
/// holder waits the maximum clock skew from the acquire before it issues,
/// where a store with real records (Redis, PostgreSQL) often waits less.
///
/// Acquiring tries the keys one by one from a random start, one
/// `try_acquire` each, so a nearly full pool costs up to one round trip per
/// worker id.
///
/// # Examples
///
/// ```no_run
/// use pulse_id::lease::LockWorkerLeases;
/// use pulse_id::{Layout, LeasedSnowflake, LeasedSnowflakeConfig, Snowflake};
///
/// # async fn run(lock: impl pulse_core::lock::Lock + 'static) -> pulse_id::Result<()> {
/// let leases = LockWorkerLeases::new(lock, "orders-service");
/// let ids = LeasedSnowflake::start(
///     leases,
///     Snowflake::builder(Layout::twitter()),
///     LeasedSnowflakeConfig::default(),
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LockWorkerLeases<L, C: Clock = SystemClock> {
    lock: L,
    namespace: String,
    clock: C,
    /// The pulse-core leases this store holds, by worker id and owner.
    held: Mutex<HashMap<(u64, String), Lease>>,
}

impl<L: Lock> LockWorkerLeases<L, SystemClock> {
    /// Uses `lock` for the worker ids of `namespace`.
    pub fn new(lock: L, namespace: impl Into<String>) -> Self {
        Self::with_clock(lock, namespace, SystemClock::new())
    }
}

impl<L: Lock, C: Clock> LockWorkerLeases<L, C> {
    /// Uses `lock` for the worker ids of `namespace`, reading acquire times
    /// from `clock`.
    pub fn with_clock(lock: L, namespace: impl Into<String>, clock: C) -> Self {
        LockWorkerLeases {
            lock,
            namespace: namespace.into(),
            clock,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the lock key of `worker_id`.
    pub fn key(&self, worker_id: u64) -> String {
        format!("{}:worker:{worker_id}", self.namespace)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, String), Lease>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<L: Lock + 'static, C: Clock> WorkerLeases for LockWorkerLeases<L, C> {
    async fn acquire(&self, owner: &str, pool_size: u64, ttl: Duration) -> Result<WorkerLease> {
        check_owner(owner)?;
        let pool_size = pool_size.max(1);
        let start = rand::random::<u64>() % pool_size;
        for offset in 0..pool_size {
            let worker_id = (start + offset) % pool_size;
            let taken = self
                .lock
                .try_acquire(&self.key(worker_id), ttl)
                .await
                .map_err(|err| lock_error("acquire a worker id", &err))?;
            let Some(lease) = taken else { continue };

            let now_ms = self.clock.wall().as_millis();
            self.held().insert((worker_id, owner.to_owned()), lease);
            return Ok(WorkerLease {
                worker_id,
                owner: owner.to_owned(),
                expires_at_ms: now_ms + millis(ttl),
                previous_expiry_ms: now_ms,
            });
        }
        Err(IdError::NoFreeWorkerId {
            namespace: self.namespace.clone(),
            pool_size,
        })
    }

    async fn renew(&self, lease: &WorkerLease, ttl: Duration) -> Result<Option<u64>> {
        let key = (lease.worker_id, lease.owner.clone());
        let Some(held) = self.held().remove(&key) else {
            return Ok(None);
        };
        let extended = self.lock.extend(&held, ttl).await;
        match extended {
            Ok(()) => {
                self.held().insert(key, held);
                Ok(Some(self.clock.wall().as_millis() + millis(ttl)))
            }
            Err(err) if err.kind() == ErrorKind::NotOwner => Ok(None),
            Err(err) => {
                // The lease may still be held; keep it for the next attempt.
                self.held().insert(key, held);
                Err(lock_error("renew a worker-id lease", &err))
            }
        }
    }

    async fn release(&self, lease: &WorkerLease) -> Result<()> {
        let held = self.held().remove(&(lease.worker_id, lease.owner.clone()));
        if let Some(held) = held {
            match self.lock.release(held).await {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::NotOwner => {}
                Err(err) => return Err(lock_error("release a worker-id lease", &err)),
            }
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "lock"
    }
}

fn lock_error(operation: &'static str, err: &pulse_core::Error) -> IdError {
    IdError::Backend {
        backend: "lock",
        operation,
        message: err.to_string(),
    }
}
