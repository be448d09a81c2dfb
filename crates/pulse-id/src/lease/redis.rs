//! Worker-id leases kept in Redis.
//!
//! # Key layout
//!
//! One hash per namespace, `<prefix>:v1:workers:{<namespace>}` (prefix
//! `pulse:id` by default). Field `<worker id>` holds `<owner>|<expiry ms>`,
//! the expiry in Redis server time (`TIME`). Records are never deleted, so
//! the next holder of a worker id learns when the previous lease ended; a
//! released lease keeps an empty owner. Each call is one Lua script on that
//! one key.

use std::time::Duration;

use deadpool_redis::{Pool, Runtime};

use crate::error::{IdError, Result};
use crate::lease::{WorkerLease, WorkerLeases, check_owner, millis};

/// Takes the first free worker id, scanning from a random start.
/// Returns `{worker id, new expiry, previous expiry}` or nil.
const ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local pool = tonumber(ARGV[3])
local start = tonumber(ARGV[4])
for i = 0, pool - 1 do
  local id = (start + i) % pool
  local record = redis.call('HGET', KEYS[1], id)
  local previous = 0
  if record then
    local sep = string.find(record, '|', 1, true)
    previous = tonumber(string.sub(record, sep + 1))
  end
  if previous <= now then
    redis.call('HSET', KEYS[1], id, ARGV[1] .. '|' .. (now + ttl))
    return {id, now + ttl, previous}
  end
end
return false
"#;

/// Extends a lease its owner still holds. Returns the new expiry or -1.
const RENEW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return -1 end
local sep = string.find(record, '|', 1, true)
if string.sub(record, 1, sep - 1) ~= ARGV[2] then return -1 end
if tonumber(string.sub(record, sep + 1)) <= now then return -1 end
local expiry = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. expiry)
return expiry
"#;

/// Ends a lease its owner still holds, keeping the earlier of its expiry
/// and now.
const RELEASE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return 0 end
local sep = string.find(record, '|', 1, true)
if string.sub(record, 1, sep - 1) ~= ARGV[2] then return 0 end
local expiry = math.min(tonumber(string.sub(record, sep + 1)), now)
redis.call('HSET', KEYS[1], ARGV[1], '|' .. expiry)
return 1
"#;

/// Worker-id leases in one Redis hash per namespace.
///
/// Every call is one `EVALSHA` round trip (the script is loaded on first use
/// and again after a `NOSCRIPT` reply). Acquiring scans the pool from a
/// random start inside the script, which blocks Redis for up to a few
/// milliseconds when a 65,536-id pool is nearly full.
///
/// Redis must keep the hash: a server that restarts without persistence
/// loses the previous expiries. See the crate README for that case.
///
/// # Examples
///
/// ```no_run
/// use pulse_id::{Layout, LeasedSnowflake, LeasedSnowflakeConfig, Snowflake};
/// use pulse_id::lease::redis::RedisWorkerLeases;
///
/// # async fn run() -> pulse_id::Result<()> {
/// let leases = RedisWorkerLeases::from_url("redis://127.0.0.1:6379", "orders-service")?;
/// let ids = LeasedSnowflake::start(
///     leases,
///     Snowflake::builder(Layout::twitter()),
///     LeasedSnowflakeConfig::default(),
/// )
/// .await?;
/// let id = ids.next_id()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisWorkerLeases {
    pool: Pool,
    key: String,
    namespace: String,
    acquire: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for RedisWorkerLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisWorkerLeases")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl RedisWorkerLeases {
    /// Uses the caller's pool for the worker ids of `namespace`.
    pub fn from_pool(pool: Pool, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        RedisWorkerLeases {
            pool,
            key: workers_key("pulse:id", &namespace),
            namespace,
            acquire: redis::Script::new(ACQUIRE),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
        }
    }

    /// Creates a pool for `url`.
    pub fn from_url(url: &str, namespace: impl Into<String>) -> Result<Self> {
        Ok(Self::from_pool(pool_from_url(url)?, namespace))
    }

    /// Sets the key prefix (default `pulse:id`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.key = workers_key(prefix, &self.namespace);
        self
    }

    /// Returns the hash key that holds the lease records.
    pub fn key(&self) -> &str {
        &self.key
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection> {
        self.pool
            .get()
            .await
            .map_err(|err| backend_error("get a connection", err))
    }
}

fn workers_key(prefix: &str, namespace: &str) -> String {
    format!("{prefix}:v1:workers:{{{namespace}}}")
}

impl WorkerLeases for RedisWorkerLeases {
    async fn acquire(&self, owner: &str, pool_size: u64, ttl: Duration) -> Result<WorkerLease> {
        check_owner(owner)?;
        let start = rand::random::<u64>() % pool_size.max(1);
        let mut conn = self.connection().await?;
        let reply: Option<(u64, u64, u64)> = self
            .acquire
            .key(&self.key)
            .arg(owner)
            .arg(millis(ttl))
            .arg(pool_size)
            .arg(start)
            .invoke_async(&mut conn)
            .await
            .map_err(|err| backend_error("acquire a worker id", err))?;
        match reply {
            Some((worker_id, expires_at_ms, previous_expiry_ms)) => Ok(WorkerLease {
                worker_id,
                owner: owner.to_owned(),
                expires_at_ms,
                previous_expiry_ms,
            }),
            None => Err(IdError::NoFreeWorkerId {
                namespace: self.namespace.clone(),
                pool_size,
            }),
        }
    }

    async fn renew(&self, lease: &WorkerLease, ttl: Duration) -> Result<Option<u64>> {
        let mut conn = self.connection().await?;
        let expiry: i64 = self
            .renew
            .key(&self.key)
            .arg(lease.worker_id)
            .arg(&lease.owner)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|err| backend_error("renew a worker-id lease", err))?;
        Ok(u64::try_from(expiry).ok())
    }

    async fn release(&self, lease: &WorkerLease) -> Result<()> {
        let mut conn = self.connection().await?;
        let _: i64 = self
            .release
            .key(&self.key)
            .arg(lease.worker_id)
            .arg(&lease.owner)
            .invoke_async(&mut conn)
            .await
            .map_err(|err| backend_error("release a worker-id lease", err))?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// Creates a deadpool-redis pool for `url` on the tokio runtime.
pub(crate) fn pool_from_url(url: &str) -> Result<Pool> {
    deadpool_redis::Config::from_url(url)
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|err| IdError::Backend {
            backend: "redis",
            operation: "create a connection pool",
            message: format!("{err} (url {})", pulse_core::error::redact_url(url)),
        })
}

fn backend_error(operation: &'static str, err: impl std::fmt::Display) -> IdError {
    IdError::Backend {
        backend: "redis",
        operation,
        message: err.to_string(),
    }
}
