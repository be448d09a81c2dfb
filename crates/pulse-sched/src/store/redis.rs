use std::time::Duration;

use deadpool_redis::redis::{self, Script, Value};
use deadpool_redis::{Config, Pool, Runtime};
use pulse_core::clock::WallTime;
use pulse_core::error::{Error, ErrorKind, Result, redact_url};
use pulse_core::sched::{ClaimedJob, DeadJob, JobStore, NewJob};

use super::stale_claim;

/// Ids moved from the due set (and from expired claims) to the ready list
/// per claim call, so that one call never blocks Redis for long.
const MOVE_BATCH: usize = 1000;

const PUSH: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'payload', ARGV[2], 'attempts', 0, 'epoch', 0, 'state', 'pending')
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"#;

// KEYS: due, ready, claimed. ARGV: now ms, max, lease ms, job key prefix,
// move batch. Moves due jobs and expired claims to the ready list, then
// claims up to `max` from it.
const CLAIM: &str = r#"
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[3])
local batch = tonumber(ARGV[5])
for _, source in ipairs({KEYS[3], KEYS[1]}) do
  local ids = redis.call('ZRANGEBYSCORE', source, '-inf', now, 'LIMIT', 0, batch)
  for _, id in ipairs(ids) do
    redis.call('ZREM', source, id)
    redis.call('RPUSH', KEYS[2], id)
  end
end
local out = {}
for _ = 1, tonumber(ARGV[2]) do
  local id = redis.call('LPOP', KEYS[2])
  if not id then break end
  local key = ARGV[4] .. id
  if redis.call('EXISTS', key) == 1 then
    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
    local epoch = redis.call('HINCRBY', key, 'epoch', 1)
    redis.call('HSET', key, 'state', 'claimed')
    redis.call('ZADD', KEYS[3], now + lease, id)
    table.insert(out, id)
    table.insert(out, redis.call('HGET', key, 'payload'))
    table.insert(out, attempts)
    table.insert(out, epoch)
  end
end
return out
"#;

// KEYS: claimed, target (due or dead list), job. ARGV: id, epoch, action
// (ack, retry, dead), run_at ms, error.
const SETTLE: &str = r#"
if redis.call('HGET', KEYS[3], 'state') ~= 'claimed' or redis.call('HGET', KEYS[3], 'epoch') ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[3] == 'ack' then
  redis.call('DEL', KEYS[3])
elseif ARGV[3] == 'retry' then
  redis.call('HSET', KEYS[3], 'state', 'pending', 'error', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  redis.call('HSET', KEYS[3], 'state', 'dead', 'error', ARGV[5])
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
return 1
"#;

// KEYS: due, ready, job. ARGV: id.
const CANCEL: &str = r#"
if redis.call('HGET', KEYS[3], 'state') ~= 'pending' then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('DEL', KEYS[3])
return 1
"#;

/// A job store in Redis.
///
/// # Key layout (version 1)
///
/// Every key of a queue shares the hash tag `{<queue>}`, so the scripts
/// also run on a Redis Cluster:
///
/// | key | type | holds |
/// | --- | --- | --- |
/// | `pulse:sched:v1:{q}:due` | sorted set | pending ids by due time (ms) |
/// | `pulse:sched:v1:{q}:ready` | list | ids moved from `due` by the claim script, not yet claimed |
/// | `pulse:sched:v1:{q}:claimed` | sorted set | claimed ids by lease end (ms) |
/// | `pulse:sched:v1:{q}:job:<id>` | hash | `payload`, `attempts`, `epoch` (the claim token), `state`, `error` |
/// | `pulse:sched:v1:{q}:dead` | list | dead-lettered ids, oldest first |
///
/// One claim is one `EVALSHA`: it moves due jobs and expired claims to the
/// ready list and claims from it. Push, ack, retry, dead-letter and cancel
/// are one `EVALSHA` each. A job costs one hash of its payload plus about
/// 150 bytes.
///
/// # Examples
///
/// ```no_run
/// use pulse_sched::store::RedisJobStore;
///
/// # async fn run() -> pulse_core::Result<()> {
/// let store = RedisJobStore::from_url("redis://127.0.0.1:6379", "emails")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisJobStore {
    pool: Pool,
    base: String,
    push: Script,
    claim: Script,
    settle: Script,
    cancel: Script,
}

impl std::fmt::Debug for RedisJobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisJobStore")
            .field("base", &self.base)
            .finish()
    }
}

impl RedisJobStore {
    /// Uses the caller's pool for the queue named `queue`.
    pub fn new(pool: Pool, queue: &str) -> Self {
        RedisJobStore {
            pool,
            base: format!("pulse:sched:v1:{{{queue}}}"),
            push: Script::new(PUSH),
            claim: Script::new(CLAIM),
            settle: Script::new(SETTLE),
            cancel: Script::new(CANCEL),
        }
    }

    /// Opens a pool to `url` for the queue named `queue`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] for a URL the client cannot use.
    pub fn from_url(url: &str, queue: &str) -> Result<Self> {
        let pool = Config::from_url(url)
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|err| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!("redis URL `{}` is not usable: {err}", redact_url(url)),
                )
            })?;
        Ok(Self::new(pool, queue))
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.base)
    }

    fn job_key(&self, id: &str) -> String {
        format!("{}:job:{id}", self.base)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection> {
        self.pool.get().await.map_err(|err| {
            tracing::warn!(target: "pulse_sched", error = %err, "redis connection failed");
            Error::new(
                ErrorKind::Unavailable,
                format!("redis job store: no connection: {err}"),
            )
        })
    }

    async fn settle(
        &self,
        job: &ClaimedJob,
        target: &str,
        action: &str,
        run_at: u64,
        error: &str,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        let done: i64 = self
            .settle
            .key(self.key("claimed"))
            .key(self.key(target))
            .key(self.job_key(&job.id))
            .arg(&job.id)
            .arg(&job.token)
            .arg(action)
            .arg(run_at)
            .arg(error)
            .invoke_async(&mut *conn)
            .await
            .map_err(backend)?;
        if done == 1 {
            Ok(())
        } else {
            Err(stale_claim(&job.id))
        }
    }
}

fn backend(err: redis::RedisError) -> Error {
    tracing::warn!(target: "pulse_sched", error = %err, "redis job store call failed");
    Error::with_source(ErrorKind::Unavailable, "redis job store call failed", err)
}

fn bytes_of(value: &Value) -> bytes::Bytes {
    match value {
        Value::BulkString(data) => bytes::Bytes::copy_from_slice(data),
        _ => bytes::Bytes::new(),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::BulkString(data) => String::from_utf8_lossy(data).into_owned(),
        Value::Int(n) => n.to_string(),
        Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    }
}

impl JobStore for RedisJobStore {
    async fn push(&self, job: NewJob) -> Result<bool> {
        let mut conn = self.conn().await?;
        let added: i64 = self
            .push
            .key(self.key("due"))
            .key(self.job_key(&job.id))
            .arg(&job.id)
            .arg(job.payload.as_ref())
            .arg(job.run_at.as_millis())
            .invoke_async(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(added == 1)
    }

    async fn claim(&self, now: WallTime, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        let mut conn = self.conn().await?;
        let values: Vec<Value> = self
            .claim
            .key(self.key("due"))
            .key(self.key("ready"))
            .key(self.key("claimed"))
            .arg(now.as_millis())
            .arg(max)
            .arg(lease.as_millis() as u64)
            .arg(format!("{}:job:", self.base))
            .arg(MOVE_BATCH)
            .invoke_async(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(values
            .chunks_exact(4)
            .map(|row| ClaimedJob {
                id: text_of(&row[0]),
                payload: bytes_of(&row[1]),
                attempt: text_of(&row[2]).parse().unwrap_or(1),
                token: text_of(&row[3]),
            })
            .collect())
    }

    async fn ack(&self, job: &ClaimedJob) -> Result<()> {
        self.settle(job, "due", "ack", 0, "").await
    }

    async fn retry(&self, job: &ClaimedJob, run_at: WallTime, error: &str) -> Result<()> {
        self.settle(job, "due", "retry", run_at.as_millis(), error)
            .await
    }

    async fn dead_letter(&self, job: &ClaimedJob, error: &str) -> Result<()> {
        self.settle(job, "dead", "dead", 0, error).await
    }

    async fn cancel(&self, id: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let removed: i64 = self
            .cancel
            .key(self.key("due"))
            .key(self.key("ready"))
            .key(self.job_key(id))
            .arg(id)
            .invoke_async(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(removed == 1)
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadJob>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let stop = max as isize - 1;
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.key("dead"))
            .arg(0)
            .arg(stop)
            .query_async(&mut *conn)
            .await
            .map_err(backend)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let (payload, attempts, error): (Option<Vec<u8>>, Option<u32>, Option<String>) =
                redis::cmd("HMGET")
                    .arg(self.job_key(&id))
                    .arg("payload")
                    .arg("attempts")
                    .arg("error")
                    .query_async(&mut *conn)
                    .await
                    .map_err(backend)?;
            out.push(DeadJob {
                id,
                payload: payload.map(bytes::Bytes::from).unwrap_or_default(),
                attempts: attempts.unwrap_or(0),
                error: error.unwrap_or_default(),
            });
        }
        Ok(out)
    }
}
