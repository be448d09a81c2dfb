//! Segment ranges reserved with Redis `INCRBY`.

use deadpool_redis::Pool;

use crate::error::{IdError, Result};
use crate::segment::SegmentSource;

/// A [`SegmentSource`] over Redis: one `INCRBY` per range.
///
/// The counter of segment `name` is the string key
/// `<prefix>:v1:seg:{<name>}` (prefix `pulse:id` by default). It holds the
/// last reserved ID, so a range of `count` is `value - count + 1 ..= value`.
/// Redis must keep the key: a server that restarts without persistence
/// starts the counter over and IDs repeat.
///
/// # Examples
///
/// ```no_run
/// use pulse_id::{SegmentAllocator, SegmentConfig};
/// use pulse_id::segment::redis::RedisSegmentSource;
///
/// # async fn run() -> pulse_id::Result<()> {
/// let source = RedisSegmentSource::from_url("redis://127.0.0.1:6379")?;
/// let ids = SegmentAllocator::start(source, "orders", SegmentConfig::default()).await?;
/// let id = ids.next_id_async().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisSegmentSource {
    pool: Pool,
    prefix: String,
}

impl std::fmt::Debug for RedisSegmentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSegmentSource")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisSegmentSource {
    /// Uses the caller's connection pool.
    pub fn from_pool(pool: Pool) -> Self {
        RedisSegmentSource {
            pool,
            prefix: "pulse:id".to_owned(),
        }
    }

    /// Creates a pool for `url`.
    pub fn from_url(url: &str) -> Result<Self> {
        Ok(Self::from_pool(crate::lease::redis::pool_from_url(url)?))
    }

    /// Sets the key prefix (default `pulse:id`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Returns the counter key of segment `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:v1:seg:{{{name}}}", self.prefix)
    }
}

impl SegmentSource for RedisSegmentSource {
    async fn reserve(&self, name: &str, count: u64) -> Result<u64> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|err| backend_error("get a connection", err))?;
        let last: u64 = redis::cmd("INCRBY")
            .arg(self.key(name))
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(|err| backend_error("INCRBY", err))?;

        // A counter below the range it just covered was set or moved back
        // by hand; IDs from it would wrap or repeat.
        count
            .checked_sub(1)
            .and_then(|below| last.checked_sub(below))
            .filter(|&first| first > 0)
            .ok_or_else(|| IdError::Protocol {
                backend: "redis",
                operation: "INCRBY",
                message: format!(
                    "counter `{}` reads {last} after reserving {count} IDs; \
                     set it to at least the last ID issued before",
                    self.key(name)
                ),
            })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

fn backend_error(operation: &'static str, err: impl std::fmt::Display) -> IdError {
    IdError::Backend {
        backend: "redis",
        operation,
        message: err.to_string(),
    }
}
