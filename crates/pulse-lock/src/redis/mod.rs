//! Redis backends: a single-server lease with fencing, Redlock over several
//! independent servers, and a permit semaphore.
//!
//! # Key layout (version 1)
//!
//! With the namespace `ns` (see [`LeaseOptions::namespace`](crate::LeaseOptions::namespace))
//! and the lock key `k`:
//!
//! | key or channel | type | contents |
//! | --- | --- | --- |
//! | `pulse:lock:v1:ns:{k}` | string with a TTL | the holder's owner value |
//! | `pulse:lock:v1:ns:{k}:fence` | string (integer) | the last fencing token issued for `k`; expires 7 days after the last acquire |
//! | `pulse:lock:v1:ns:{k}:released` | pub/sub channel | a message on each release, to wake waiters |
//! | `pulse:sem:v1:ns:{k}` | sorted set | one member per permit holder, scored by its expiry in ms of Redis time |
//!
//! The braces make `k` the hash tag, so both keys of a lock live in one
//! Redis Cluster slot and one script can touch them.

mod connector;
mod lock;
mod redlock;
mod scripts;
mod semaphore;

pub use lock::RedisLock;
pub use redlock::Redlock;
pub use semaphore::RedisSemaphore;

/// How long the fence counter of a key outlives its last acquire. Tokens
/// also follow Redis time in microseconds, so a counter that expired does not
/// make them go back unless the Redis clock stepped back meanwhile.
const FENCE_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

/// The Redis keys of one lock.
#[derive(Clone, Debug)]
pub(crate) struct LockKeys {
    pub(crate) owner: String,
    pub(crate) fence: String,
    pub(crate) channel: String,
}

impl LockKeys {
    pub(crate) fn new(namespace: &str, key: &str) -> Self {
        let owner = if namespace.is_empty() {
            format!("pulse:lock:v1:{{{key}}}")
        } else {
            format!("pulse:lock:v1:{namespace}:{{{key}}}")
        };
        LockKeys {
            fence: format!("{owner}:fence"),
            channel: format!("{owner}:released"),
            owner,
        }
    }
}

/// Converts a duration to whole milliseconds for `PX`, at least 1.
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    (duration.as_millis() as u64).max(1)
}
