//! The Lua scripts, one per algorithm. Each reads and writes one key and sets
//! its TTL in the same call, so no key is ever left without one.
//!
//! Arguments: `ARGV[1]` is the time in microseconds, or empty to read Redis
//! `TIME`; then the algorithm's interval or window in microseconds, its burst
//! or limit, the cost, and a TTL margin in milliseconds (zero unless a test
//! clock is configured). Each returns `{allowed, remaining, retry_after_us,
//! reset_after_us}`. Numbers are Lua doubles, exact for integers below 2^53
//! (about 285 years of microseconds), and written back with `%.0f` so that
//! no digit is lost.

/// Reads the time and defines `div`, an integer division that corrects the
/// rounding of a double quotient.
const PRELUDE: &str = r#"
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local function div(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local margin = tonumber(ARGV[5]) or 0
local function ttl_ms(us)
  return math.max(1, div(us + 999, 1000)) + margin
end
local function int(x)
  return string.format('%.0f', x)
end
"#;

const GCRA: &str = r#"
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local horizon = now + burst * interval
local base = math.max(stored, now)
local nxt = base + cost * interval
if nxt > horizon then
  return {0, 0, nxt - horizon, math.max(stored - now, 0)}
end
if cost > 0 then
  redis.call('SET', KEYS[1], int(nxt), 'PX', ttl_ms(nxt - now))
end
return {1, div(horizon - nxt, interval), 0, nxt - now}
"#;

const TOKEN_BUCKET: &str = r#"
local interval = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  -- Whole refills only; the partial period stays in ts for the next call.
  local refill = div(now - ts, interval)
  tokens = tokens + refill
  ts = ts + refill * interval
end
if tokens >= capacity then
  tokens = capacity
  ts = math.max(ts, now)
end
local function until_full(t)
  if t >= capacity then return 0 end
  return math.max(ts + (capacity - t) * interval - now, 0)
end
if cost > tokens then
  return {0, tokens, ts + (cost - tokens) * interval - now, until_full(tokens)}
end
tokens = tokens - cost
if cost > 0 then
  redis.call('HSET', KEYS[1], 'tokens', int(tokens), 'ts', int(ts))
  redis.call('PEXPIRE', KEYS[1], ttl_ms(until_full(tokens)))
end
return {1, tokens, 0, until_full(tokens)}
"#;

const FIXED_WINDOW: &str = r#"
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local index = div(now, window)
local state = redis.call('HMGET', KEYS[1], 'w', 'c')
local count = 0
if tonumber(state[1]) == index then count = tonumber(state[2]) or 0 end
local until_end = (index + 1) * window - now
if count + cost > limit then
  local reset = 0
  if count > 0 then reset = until_end end
  return {0, math.max(limit - count, 0), until_end, reset}
end
count = count + cost
if cost > 0 then
  redis.call('HSET', KEYS[1], 'w', int(index), 'c', int(count))
  redis.call('PEXPIRE', KEYS[1], ttl_ms(until_end))
end
return {1, limit - count, 0, until_end}
"#;

const SLIDING_WINDOW: &str = r#"
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local index = div(now, window)
local elapsed = now - index * window
local state = redis.call('HMGET', KEYS[1], 'w', 'p', 'c')
local stored = tonumber(state[1])
local previous, current = 0, 0
if stored == index then
  previous = tonumber(state[2]) or 0
  current = tonumber(state[3]) or 0
elseif stored == index - 1 then
  previous = tonumber(state[3]) or 0
end
-- The previous window counts in proportion to its overlap, rounded up.
local weighted = div(previous * (window - elapsed) + window - 1, window)
local used = current + weighted
local function idle_after(c)
  if c > 0 then return 2 * window - elapsed end
  if previous > 0 then return window - elapsed end
  return 0
end
if used + cost > limit then
  local at
  if current + cost <= limit and previous > 0 then
    local keep = div((limit - cost - current) * window, previous)
    if keep > 0 then at = window - math.min(keep, window) end
  end
  if at == nil then
    local keep = window
    if current > 0 then keep = div((limit - cost) * window, current) end
    at = window + window - math.min(keep, window)
  end
  return {0, math.max(limit - used, 0), math.max(at - elapsed, 1), idle_after(current)}
end
current = current + cost
if cost > 0 then
  redis.call('HSET', KEYS[1], 'w', int(index), 'p', int(previous), 'c', int(current))
  redis.call('PEXPIRE', KEYS[1], ttl_ms(idle_after(current)))
end
return {1, limit - used - cost, 0, idle_after(current)}
"#;

/// Returns the full source of the script for an algorithm.
pub(super) fn source(body: &str) -> String {
    let mut source = String::with_capacity(PRELUDE.len() + body.len());
    source.push_str(PRELUDE);
    source.push_str(body);
    source
}

pub(super) const GCRA_BODY: &str = GCRA;
pub(super) const TOKEN_BUCKET_BODY: &str = TOKEN_BUCKET;
pub(super) const FIXED_WINDOW_BODY: &str = FIXED_WINDOW;
pub(super) const SLIDING_WINDOW_BODY: &str = SLIDING_WINDOW;
