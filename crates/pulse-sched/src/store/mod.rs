//! Job stores for persistent delayed jobs: in memory, Redis and
//! PostgreSQL, all behind [`JobStore`](pulse_core::sched::JobStore).
//!
//! | store | survives a restart | shared by processes | feature |
//! | --- | --- | --- | --- |
//! | [`MemoryJobStore`] | no | no (threads of one process) | none |
//! | `RedisJobStore` | yes (with Redis persistence) | yes | `redis` |
//! | `PgJobStore` | yes | yes | `postgres` |

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

pub use memory::MemoryJobStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgJobStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisJobStore;

use pulse_core::error::{Error, ErrorKind};

/// The error for a settle call whose claim is no longer current.
pub(crate) fn stale_claim(id: &str) -> Error {
    Error::new(
        ErrorKind::NotOwner,
        format!("job `{id}`: the claim expired or the job was settled already; nothing changed"),
    )
}
