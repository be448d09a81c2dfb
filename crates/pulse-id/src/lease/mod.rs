//! Worker ids taken by lease, and the [`LeasedSnowflake`] that issues IDs
//! only while it holds one.
//!
//! # Why a worker id needs a lease, and what the lease guarantees
//!
//! Two Snowflake generators with the same worker id repeat each other's IDs.
//! A [`WorkerLeases`] store hands each live generator its own worker id from
//! a pool and takes it back when the lease is not renewed in time. Two live
//! leases never share a worker id.
//!
//! A process can be paused (a GC pause, a VM migration) past its lease
//! without knowing it. Two rules keep even such a holder from repeating a
//! new holder's IDs:
//!
//! - A holder issues only timestamps before its own deadline: the wall time
//!   it sent the acquire or renewal, plus the TTL. A paused holder that
//!   wakes up past it stops issuing.
//! - Each lease record stores its expiry (in the store's clock). A new holder
//!   of a worker id issues no timestamp at or below the previous lease's
//!   expiry plus the configured maximum clock skew between hosts; it waits
//!   until its clock passes that point before it issues anything.
//!
//! The timestamps of the old and the new holder thus fall in disjoint ranges
//! as long as the hosts' clocks differ by less than the maximum skew.
//!
//! # Stores
//!
//! | store | records | feature |
//! | --- | --- | --- |
//! | [`MemoryWorkerLeases`] | process memory, for one process or tests | none |
//! | [`LockWorkerLeases`] | any pulse-core [`Lock`](pulse_core::lock::Lock), one key per worker id | none |
//! | [`redis::RedisWorkerLeases`] | one Redis hash per namespace | `redis` |
//! | [`postgres::PgWorkerLeases`] | the `pulse_id_workers` table | `postgres` |

mod memory;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;

mod leased;
mod lock;

pub use leased::{LeasedSnowflake, LeasedSnowflakeConfig};
pub use lock::LockWorkerLeases;
pub use memory::MemoryWorkerLeases;

use std::future::Future;
use std::time::Duration;

use crate::error::Result;

/// A held worker-id lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerLease {
    /// The leased worker id.
    pub worker_id: u64,
    /// The holder's owner value, unique per holder.
    pub owner: String,
    /// When the lease expires, in ms since the Unix epoch by the store's
    /// clock.
    pub expires_at_ms: u64,
    /// When the previous lease on this worker id expired, by the store's
    /// clock; 0 if the id was never leased.
    pub previous_expiry_ms: u64,
}

/// A store of worker-id leases.
///
/// # Contract for implementors
///
/// - `acquire` takes a worker id from `0..pool_size` whose lease has
///   expired (or that was never leased), records the owner and the new
///   expiry, and returns the expiry the record held before. Two live leases
///   never share a worker id.
/// - `renew` extends a lease the owner still holds and returns the new
///   expiry, or `None` when the lease expired or passed to someone else; it
///   never revives an expired lease.
/// - `release` ends a held lease at once, recording the earlier of its
///   expiry and the current time as its expiry, and does nothing for a lease
///   the owner no longer holds.
/// - Records keep their expiry after the lease ends, so that the next holder
///   learns it.
pub trait WorkerLeases: Send + Sync + 'static {
    /// Takes a free worker id from `0..pool_size` for `ttl`.
    fn acquire(
        &self,
        owner: &str,
        pool_size: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<WorkerLease>> + Send;

    /// Extends a held lease to `ttl` from now. Returns the new expiry, or
    /// `None` when the lease is no longer held.
    fn renew(
        &self,
        lease: &WorkerLease,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>>> + Send;

    /// Ends a held lease.
    fn release(&self, lease: &WorkerLease) -> impl Future<Output = Result<()>> + Send;

    /// Returns the backend name for logs, such as `redis`.
    fn backend(&self) -> &'static str;
}

/// Checks an owner value: stores keep it next to the expiry, separated by
/// `|`.
pub(crate) fn check_owner(owner: &str) -> Result<()> {
    if owner.is_empty() || owner.contains('|') || owner.len() > 200 {
        return Err(pulse_core::error::ConfigError::new(
            "owner",
            owner,
            "use 1 to 200 characters without `|`",
        )
        .into());
    }
    Ok(())
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
