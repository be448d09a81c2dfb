//! Keyed local locks and fenced distributed leases on Redis and PostgreSQL.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod lease;
mod local;
mod memory;
mod options;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

pub use error::LockError;
pub use local::{
    KeyedMutex, KeyedMutexGuard, KeyedReadGuard, KeyedRwLock, KeyedWriteGuard, Semaphore,
    SemaphorePermit,
};
pub use memory::MemoryLock;
pub use options::LeaseOptions;
#[cfg(feature = "postgres")]
pub use postgres::PgLock;
pub use pulse_core::lock::{DynLock, Lease, Lock};
#[cfg(feature = "redis")]
pub use redis::{RedisLock, RedisSemaphore, Redlock};
