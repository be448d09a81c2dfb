//! Limiters whose state lives in Redis, so that every process of a fleet
//! shares one limit.
//!
//! Each decision is one `EVALSHA` of a Lua script: the script is loaded
//! once, called by its hash, and loaded again after a `NOSCRIPT` (a Redis
//! restart or `SCRIPT FLUSH`) by the client's `Script` type. The script reads
//! the time from Redis `TIME`, so clients with skewed clocks agree, unless a
//! test clock is configured, in which case the time is passed as an argument.
//!
//! # Key layout
//!
//! One key per limiter key: `{prefix}:rl1:{algorithm}:{{key}}`, for example
//! `api:rl1:gcra:{tenant-7}`. The braces make the user key the hash tag, so
//! the layout works on Redis Cluster; `rl1` is the layout version. The value
//! is a string (GCRA: the theoretical arrival time in µs) or a hash (token
//! bucket: `tokens`, `ts`; fixed window: `w`, `c`; sliding window: `w`, `p`,
//! `c`). Every write sets the key's TTL in the same script, to the time
//! after which the key would be equal to a fresh one.
//!
//! # When Redis is unreachable
//!
//! The builder requires a [`FailureMode`]: admit (fail open), reject (fail
//! closed), or decide with a local limiter. Each failure is logged at `warn`
//! (at most once per 10 s per limiter, with the count of failures since).

mod scripts;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis::Script;
use deadpool_redis::{Config, Pool, Runtime};
use pulse_core::clock::Clock;
use pulse_core::error::Result;
use pulse_core::ratelimit::{AsyncRateLimiter, Decision, DynAsyncRateLimiter};

use crate::error::RateLimitError;
use crate::policy::{ceil_ms, never};
use crate::quota::Quota;

/// The algorithms a [`RedisLimiter`] can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisAlgorithm {
    /// GCRA: one string key, the same decisions as the in-process
    /// [`Gcra`](crate::Gcra).
    Gcra,
    /// A token bucket with `tokens` and `ts` fields; partial refills are
    /// kept in `ts`.
    TokenBucket,
    /// The sliding-window counter, as
    /// [`SlidingWindowPolicy`](crate::policy::SlidingWindowPolicy).
    SlidingWindow,
    /// A fixed window aligned to the clock, as
    /// [`FixedWindowPolicy`](crate::policy::FixedWindowPolicy).
    FixedWindow,
}

impl RedisAlgorithm {
    fn name(self) -> &'static str {
        match self {
            RedisAlgorithm::Gcra => "gcra",
            RedisAlgorithm::TokenBucket => "token_bucket",
            RedisAlgorithm::SlidingWindow => "sliding_window",
            RedisAlgorithm::FixedWindow => "fixed_window",
        }
    }

    fn script(self) -> Script {
        let body = match self {
            RedisAlgorithm::Gcra => scripts::GCRA_BODY,
            RedisAlgorithm::TokenBucket => scripts::TOKEN_BUCKET_BODY,
            RedisAlgorithm::SlidingWindow => scripts::SLIDING_WINDOW_BODY,
            RedisAlgorithm::FixedWindow => scripts::FIXED_WINDOW_BODY,
        };
        Script::new(&scripts::source(body))
    }

    /// The script's second argument: the emission interval or the window,
    /// in microseconds rounded up.
    fn span_micros(self, quota: &Quota) -> u64 {
        match self {
            RedisAlgorithm::Gcra | RedisAlgorithm::TokenBucket => {
                quota.interval_nanos().div_ceil(1000)
            }
            RedisAlgorithm::SlidingWindow | RedisAlgorithm::FixedWindow => {
                quota.window_nanos().div_ceil(1000)
            }
        }
    }
}

/// What a [`RedisLimiter`] decides when Redis cannot be reached, times out or
/// fails.
#[derive(Clone)]
pub enum FailureMode {
    /// Admit the request: availability over the limit.
    FailOpen,
    /// Reject the request with a `retry_after` of one second: the limit over
    /// availability.
    FailClosed,
    /// Decide with this limiter instead, typically an in-process
    /// [`KeyedLimiter`](crate::KeyedLimiter) with a share of the global quota.
    Fallback(Arc<dyn DynAsyncRateLimiter<str>>),
    /// Return the error to the caller.
    Error,
}

impl fmt::Debug for FailureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureMode::FailOpen => "FailOpen",
            FailureMode::FailClosed => "FailClosed",
            FailureMode::Fallback(_) => "Fallback",
            FailureMode::Error => "Error",
        })
    }
}

/// The `retry_after` of a rejection made because Redis failed.
const FAIL_CLOSED_RETRY: Duration = Duration::from_secs(1);
/// Added to every TTL when a test clock drives the script: TTLs run in the
/// server's real time, and a stalled test must not see its keys expire
/// before the test clock says they are idle.
const TEST_CLOCK_TTL_MARGIN: Duration = Duration::from_secs(60);
/// The shortest time between two `warn` events of one limiter.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A rate limiter kept in Redis, shared by every process that uses the same
/// prefix.
///
/// # Examples
///
/// ```no_run
/// use pulse_ratelimit::redis::{FailureMode, RedisAlgorithm, RedisLimiter};
/// use pulse_ratelimit::{AsyncRateLimiter, Quota};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RedisLimiter::builder(Quota::per_second(100)?, RedisAlgorithm::Gcra, FailureMode::FailClosed)
///     .prefix("api")
///     .url("redis://127.0.0.1:6379")?
///     .build()?;
/// let decision = limiter.check("tenant-7").await?;
/// println!("allowed: {}", decision.allowed);
/// # Ok(()) }
/// ```
pub struct RedisLimiter {
    pool: Pool,
    script: Script,
    algorithm: RedisAlgorithm,
    quota: Quota,
    span_micros: u64,
    key_prefix: String,
    failure: FailureMode,
    test_clock: Option<Arc<dyn Clock>>,
    timeout: Duration,
    warnings: WarnThrottle,
}

/// Settings of a [`RedisLimiter`]; see [`RedisLimiter::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct RedisLimiterBuilder {
    quota: Quota,
    algorithm: RedisAlgorithm,
    failure: FailureMode,
    pool: Option<Pool>,
    prefix: String,
    test_clock: Option<Arc<dyn Clock>>,
    timeout: Duration,
}

impl fmt::Debug for RedisLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiterBuilder")
            .field("quota", &self.quota)
            .field("algorithm", &self.algorithm)
            .field("failure", &self.failure)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Starts building a limiter. The failure mode has no default: each
    /// service states whether a Redis outage admits, rejects or falls back.
    pub fn builder(
        quota: Quota,
        algorithm: RedisAlgorithm,
        failure: FailureMode,
    ) -> RedisLimiterBuilder {
        RedisLimiterBuilder {
            quota,
            algorithm,
            failure,
            pool: None,
            prefix: "pulse".to_owned(),
            test_clock: None,
            timeout: Duration::from_millis(500),
        }
    }

    /// Returns the Redis key that stores the state of `key`.
    pub fn redis_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.key_prefix.len() + key.len() + 2);
        full.push_str(&self.key_prefix);
        full.push('{');
        full.push_str(key);
        full.push('}');
        full
    }

    /// Returns the quota each key gets.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    async fn eval(&self, key: &str, cost: u32) -> std::result::Result<Decision, String> {
        let mut connection = self.pool.get().await.map_err(|err| err.to_string())?;
        let (now, ttl_margin_ms) = match &self.test_clock {
            Some(clock) => (
                (clock.now().as_nanos() / 1000).to_string(),
                TEST_CLOCK_TTL_MARGIN.as_millis() as u64,
            ),
            None => (String::new(), 0),
        };
        let reply: Vec<i64> = self
            .script
            .key(self.redis_key(key))
            .arg(now)
            .arg(self.span_micros)
            .arg(self.quota.burst())
            .arg(cost)
            .arg(ttl_margin_ms)
            .invoke_async(&mut *connection)
            .await
            .map_err(|err| err.to_string())?;
        decision_from_reply(&reply, u64::from(self.quota.burst()))
    }

    async fn on_failure(&self, key: &str, cost: u32, reason: String) -> Result<Decision> {
        self.warnings
            .warn(self.algorithm, key, &self.failure, &reason);
        let burst = u64::from(self.quota.burst());
        match &self.failure {
            FailureMode::FailOpen => Ok(Decision::allowed(burst, 0, Duration::ZERO)),
            FailureMode::FailClosed => {
                Ok(Decision::rejected(burst, FAIL_CLOSED_RETRY, Duration::ZERO))
            }
            FailureMode::Fallback(limiter) => limiter.check_n_boxed(key, cost).await,
            FailureMode::Error => Err(RateLimitError::Redis {
                key: key.to_owned(),
                reason,
            }
            .into()),
        }
    }
}

fn decision_from_reply(reply: &[i64], limit: u64) -> std::result::Result<Decision, String> {
    let &[allowed, remaining, retry_us, reset_us] = reply else {
        return Err(format!("unexpected script reply {reply:?}"));
    };
    let to_ms = |micros: i64| ceil_ms(u64::try_from(micros).unwrap_or(0).saturating_mul(1000));
    let remaining = u64::try_from(remaining).unwrap_or(0);
    Ok(if allowed == 1 {
        Decision::allowed(limit, remaining, to_ms(reset_us))
    } else {
        Decision {
            remaining,
            ..Decision::rejected(limit, to_ms(retry_us), to_ms(reset_us))
        }
    })
}

impl AsyncRateLimiter<str> for RedisLimiter {
    async fn check_n(&self, key: &str, cost: u32) -> Result<Decision> {
        if cost > self.quota.burst() {
            return Ok(never(&self.quota));
        }
        match tokio::time::timeout(self.timeout, self.eval(key, cost)).await {
            Ok(Ok(decision)) => Ok(decision),
            Ok(Err(reason)) => self.on_failure(key, cost, reason).await,
            Err(_) => {
                let reason = format!("no reply within {:?}", self.timeout);
                self.on_failure(key, cost, reason).await
            }
        }
    }
}

impl AsyncRateLimiter<String> for RedisLimiter {
    async fn check_n(&self, key: &String, cost: u32) -> Result<Decision> {
        AsyncRateLimiter::<str>::check_n(self, key.as_str(), cost).await
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("algorithm", &self.algorithm)
            .field("quota", &self.quota)
            .field("key_prefix", &self.key_prefix)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl RedisLimiterBuilder {
    /// Uses the application's own connection pool.
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Creates a pool for `url`.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidSetting`] when the URL cannot be parsed; the
    /// message shows it without its password.
    pub fn url(mut self, url: &str) -> std::result::Result<Self, RateLimitError> {
        let pool = Config::from_url(url)
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|err| RateLimitError::InvalidSetting {
                field: "redis url",
                value: format!("{} ({err})", pulse_core::error::redact_url(url)),
                fix: "use a URL such as redis://127.0.0.1:6379/0",
            })?;
        self.pool = Some(pool);
        Ok(self)
    }

    /// Sets the prefix of every key (default `pulse`). Use one per
    /// application or test so that limiters do not share state by accident.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Passes the time of `clock` to the script instead of reading Redis
    /// `TIME`, so that a test can drive time with a
    /// [`ManualClock`](pulse_core::clock::ManualClock). TTLs still count in
    /// the server's real time, so in this mode each TTL gets 60 s more, and
    /// a key outlives the test clock's idea of it.
    pub fn test_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.test_clock = Some(clock);
        self
    }

    /// Sets how long one decision may wait for Redis before the failure mode
    /// applies (default 500 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the limiter. The script is loaded on first use.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidSetting`] when no pool or URL was given, the
    /// prefix contains `{` or `}` (they would change the hash tag), or the
    /// timeout is zero.
    pub fn build(self) -> std::result::Result<RedisLimiter, RateLimitError> {
        let Some(pool) = self.pool else {
            return Err(RateLimitError::InvalidSetting {
                field: "redis pool",
                value: "none".to_owned(),
                fix: "call `pool` or `url` on the builder",
            });
        };
        if self.prefix.contains(['{', '}']) {
            return Err(RateLimitError::InvalidSetting {
                field: "prefix",
                value: self.prefix,
                fix: "use a prefix without `{` or `}`; the limiter key is the hash tag",
            });
        }
        if self.timeout.is_zero() {
            return Err(RateLimitError::InvalidSetting {
                field: "timeout",
                value: "0ns".to_owned(),
                fix: "use a timeout of at least 1 ms",
            });
        }
        let key_prefix = format!("{}:rl1:{}:", self.prefix, self.algorithm.name());
        Ok(RedisLimiter {
            pool,
            script: self.algorithm.script(),
            algorithm: self.algorithm,
            span_micros: self.algorithm.span_micros(&self.quota),
            quota: self.quota,
            key_prefix,
            failure: self.failure,
            test_clock: self.test_clock,
            timeout: self.timeout,
            warnings: WarnThrottle::new(),
        })
    }
}

/// Logs Redis failures at `warn`, at most once per [`WARN_EVERY`].
struct WarnThrottle {
    origin: Instant,
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl WarnThrottle {
    fn new() -> Self {
        WarnThrottle {
            origin: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            suppressed: AtomicU64::new(0),
        }
    }

    fn warn(&self, algorithm: RedisAlgorithm, key: &str, failure: &FailureMode, reason: &str) {
        let now_ms = self.origin.elapsed().as_millis() as u64;
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now_ms.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if !due
            || self
                .last_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(
            target: "pulse_ratelimit",
            algorithm = algorithm.name(),
            key,
            failure_mode = ?failure,
            suppressed,
            error = reason,
            "Redis rate limiter could not decide; applying the failure mode"
        );
    }
}
