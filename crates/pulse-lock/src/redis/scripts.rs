//! The Lua scripts. Each runs as one EVALSHA; `redis::Script` loads it again
//! after a `NOSCRIPT` reply (a restarted server or a `SCRIPT FLUSH`).

use std::sync::LazyLock;

use deadpool_redis::redis::Script;

/// Takes the lock and issues a fencing token in one step.
///
/// KEYS: owner key, fence key. ARGV: owner value, TTL in ms, fence retention
/// in ms. Returns `{1, token}` when taken, or `{0, pttl}` with the holder's
/// remaining TTL in ms.
///
/// The token is the larger of the incremented counter and Redis `TIME` in
/// microseconds. The counter alone would start again at 1 after a restart of
/// a Redis that keeps nothing; the time alone could repeat within one
/// microsecond or after a clock step back.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local token = redis.call('INCR', KEYS[2])
if token < now_us then
  token = now_us
  redis.call('SET', KEYS[2], string.format('%.0f', now_us))
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {1, token}
"#,
    )
});

/// Extends the TTL if the caller is still the owner.
///
/// KEYS: owner key. ARGV: owner value, TTL in ms. Returns 1 or 0.
pub(crate) static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#,
    )
});

/// Deletes the lock if the caller is still the owner, and wakes waiters.
///
/// KEYS: owner key. ARGV: owner value, release channel. Returns 1 or 0.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0
"#,
    )
});

/// Raises a node's fence counter to at least a token (Redlock's fenced
/// mode writes the chosen token back to a majority).
///
/// KEYS: fence key. ARGV: token, fence retention in ms. Returns 1.
pub(crate) static RAISE_FENCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#,
    )
});

/// Takes one permit of a semaphore, dropping expired holders first.
///
/// KEYS: holder set. ARGV: owner value, TTL in ms, permits. Returns 1 when
/// taken, or 0 with all permits held. Expiry scores are Redis time in ms.
pub(crate) static SEM_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
local expires = now_ms + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', expires), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
"#,
    )
});

/// Extends one permit if its holder has not expired.
///
/// KEYS: holder set. ARGV: owner value, TTL in ms. Returns 1 or 0.
pub(crate) static SEM_EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now_ms then
  return 0
end
local expires = now_ms + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', expires), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
"#,
    )
});

/// Returns one permit if its holder has not expired.
///
/// KEYS: holder set. ARGV: owner value. Returns 1 or 0.
pub(crate) static SEM_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now_ms then
  return 0
end
return 1
"#,
    )
});
