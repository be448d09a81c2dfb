//! A deduplication store on Redis.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::Pool;
use deadpool_redis::redis::{self, Value};
use pulse_core::BoxFuture;
use pulse_core::error::Result;

use super::{ConnSlot, backend_error};
use crate::router::DedupStore;

/// A [`DedupStore`] shared by every process that uses the same Redis: one
/// `SET key 1 NX PX ttl` per claim, one `DEL` per release.
///
/// Keys are `<prefix>:dedup:<handler>:<message id>`.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use pulse_mq::redis::{RedisDedupStore, RedisStreams};
/// use pulse_mq::router;
///
/// # fn run() -> Result<(), pulse_core::Error> {
/// let streams = RedisStreams::from_url("redis://127.0.0.1:6379")?;
/// let store = RedisDedupStore::new(streams.pool().clone(), "pulse:mq:v1");
/// let dedup = router::deduplicate(Arc::new(store), Duration::from_secs(3600));
/// # drop(dedup);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisDedupStore {
    conn: Arc<ConnSlot>,
    prefix: String,
}

impl std::fmt::Debug for RedisDedupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDedupStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisDedupStore {
    /// Creates a store whose keys start with `<prefix>:dedup:`.
    pub fn new(pool: Pool, prefix: impl Into<String>) -> Self {
        RedisDedupStore {
            conn: Arc::new(ConnSlot::new(pool)),
            prefix: prefix.into(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:dedup:{key}", self.prefix)
    }
}

impl DedupStore for RedisDedupStore {
    fn claim<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let key = self.key(key);
            let mut conn = self.conn.get().await?;
            let reply: Value = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg((ttl.as_millis() as u64).max(1))
                .query_async(&mut conn)
                .await
                .map_err(|err| {
                    self.conn.check(&err);
                    backend_error(format!("SET NX on `{key}`"), err)
                })?;
            Ok(!matches!(reply, Value::Nil))
        })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let key = self.key(key);
            let mut conn = self.conn.get().await?;
            let _: i64 = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|err| {
                    self.conn.check(&err);
                    backend_error(format!("DEL on `{key}`"), err)
                })?;
            Ok(())
        })
    }
}
