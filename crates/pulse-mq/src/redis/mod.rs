//! Redis Streams: one stream per topic, consumer groups, batched acks and
//! reclaim of stuck messages.
//!
//! # Layout
//!
//! | what | Redis object |
//! | --- | --- |
//! | topic `T` | stream `<prefix>:T` (default prefix `pulse:mq:v1`) |
//! | message | one entry: field `id`, optional `key`, one `h:<name>` per header, `p` for the payload |
//! | consumer group `G` | stream group `G`, created at the first subscribe with `MKSTREAM` |
//! | subscription | consumer `<G>-<uuid>`, new per subscription |
//! | deduplication | string `<prefix>:dedup:<handler>:<message id>` with a TTL |
//!
//! The `v1` in the prefix is the layout version. A later layout gets a new
//! prefix, so old and new versions never read each other's entries.
//!
//! # Delivery
//!
//! `XADD` appends without trimming unless a [`Trim`] policy is set. A
//! subscription reads with `XREADGROUP ... >` in batches; acks are queued
//! and sent as one `XACK` with the next read, when the queue reaches the
//! batch size, every [`ack_interval`](RedisStreams::ack_interval), and on
//! close. Messages left pending longer than the visibility timeout (their
//! consumer crashed or was dropped) are taken over with `XAUTOCLAIM`, and
//! their delivery count, read from the pending list with `XPENDING`, becomes
//! the delivery's attempt. A nack makes the entry look idle with `XCLAIM
//! ... IDLE`, so that it is reclaimed after its delay.

mod dedup;
mod publisher;
mod subscriber;
mod wire;

pub use dedup::RedisDedupStore;
pub use publisher::StreamsPublisher;
pub use subscriber::{StreamsSubscriber, StreamsSubscription};

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::{Pool, Runtime};
use pulse_core::clock::{Clock, SystemClock};
use pulse_core::error::{ConfigError, Error, redact_url};
use pulse_core::mq::Capabilities;

use crate::error::MqError;
use crate::message::Limits;

/// The capabilities of the Redis Streams backend with the default settings.
///
/// It is persistent as far as the Redis server persists (AOF or RDB); with
/// [`GroupStart::Latest`] it does not replay old messages.
pub const STREAMS_CAPABILITIES: Capabilities = Capabilities::none()
    .persistent(true)
    .consumer_groups(true)
    .delayed_redelivery(true)
    .replays_old_messages(true);

/// A trimming policy for `XADD`. Trimming deletes entries whether or not
/// every group has acked them, so it can drop messages, pending ones
/// included; without a policy the stream grows until entries are deleted
/// by other means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trim {
    /// Never trim (the default).
    None,
    /// Keep about the newest `n` entries (`MAXLEN ~ n`).
    MaxLen(usize),
    /// Drop entries older than this age (`MINID ~ <now - age>`).
    MaxAge(Duration),
}

/// The position where a new consumer group starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupStart {
    /// From the oldest entry still in the stream (the default), so a group
    /// created after messages were published still reads them.
    Oldest,
    /// From the next entry published after the group was created.
    Latest,
}

/// The Redis Streams backend: settings and a connection pool, shared by the
/// publishers and subscribers it creates.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use pulse_core::mq::{Publisher, Subscriber, Subscription};
/// use pulse_mq::redis::RedisStreams;
///
/// # async fn run() -> Result<(), pulse_core::Error> {
/// let streams = RedisStreams::from_url("redis://127.0.0.1:6379")?
///     .visibility_timeout(Duration::from_secs(60));
/// let mut orders = streams.subscriber().subscribe("orders", "billing").await?;
/// streams.publisher().publish("orders", pulse_mq::message(&b"order 42"[..])).await?;
/// let delivery = orders.next().await.expect("open")?;
/// delivery.ack().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStreams {
    pub(crate) shared: Arc<Settings>,
}

pub(crate) struct Settings {
    pub(crate) pool: Pool,
    /// The connection for commands that never block (`XADD`, `XACK`,
    /// `XCLAIM`), shared by every publisher and ack of these settings.
    pub(crate) conn: Arc<ConnSlot>,
    pub(crate) prefix: String,
    pub(crate) trim: Trim,
    pub(crate) group_start: GroupStart,
    pub(crate) visibility_timeout: Duration,
    pub(crate) claim_interval: Duration,
    pub(crate) batch: usize,
    pub(crate) block: Duration,
    pub(crate) ack_interval: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) limits: Limits,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Clone for Settings {
    fn clone(&self) -> Self {
        Settings {
            pool: self.pool.clone(),
            conn: self.conn.clone(),
            prefix: self.prefix.clone(),
            trim: self.trim,
            group_start: self.group_start,
            visibility_timeout: self.visibility_timeout,
            claim_interval: self.claim_interval,
            batch: self.batch,
            block: self.block,
            ack_interval: self.ack_interval,
            drain_timeout: self.drain_timeout,
            limits: self.limits,
            clock: self.clock.clone(),
        }
    }
}

impl std::fmt::Debug for RedisStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.shared;
        f.debug_struct("RedisStreams")
            .field("prefix", &s.prefix)
            .field("trim", &s.trim)
            .field("group_start", &s.group_start)
            .field("visibility_timeout", &s.visibility_timeout)
            .field("batch", &s.batch)
            .finish()
    }
}

impl RedisStreams {
    /// Connects to the Redis server at `url` with a pool of its own.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let config = deadpool_redis::Config::from_url(url);
        let pool = config.create_pool(Some(Runtime::Tokio1)).map_err(|err| {
            Error::from(ConfigError::new(
                "url",
                redact_url(url),
                format!("use a redis:// or rediss:// URL ({err})"),
            ))
        })?;
        Ok(RedisStreams::from_pool(pool))
    }

    /// Uses the caller's pool. Publishers, acks and nacks share one
    /// connection taken from it; each subscription takes one more for its
    /// blocking reads and closes it when dropped. Taken connections leave the
    /// pool's accounting, so its `max_size` does not bound them.
    pub fn from_pool(pool: Pool) -> Self {
        RedisStreams {
            shared: Arc::new(Settings {
                conn: Arc::new(ConnSlot::new(pool.clone())),
                pool,
                prefix: "pulse:mq:v1".to_owned(),
                trim: Trim::None,
                group_start: GroupStart::Oldest,
                visibility_timeout: Duration::from_secs(30),
                claim_interval: Duration::from_secs(5),
                batch: 100,
                block: Duration::from_millis(200),
                ack_interval: Duration::from_millis(100),
                drain_timeout: Duration::from_secs(30),
                limits: Limits::default(),
                clock: Arc::new(SystemClock::new()),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.shared));
        self
    }

    /// Sets the key prefix (default `pulse:mq:v1`).
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.with(|s| s.prefix = prefix)
    }

    /// Sets the trimming policy of `XADD` (default [`Trim::None`]). Any
    /// other policy can delete messages no group has acked yet.
    pub fn trim(self, trim: Trim) -> Self {
        self.with(|s| s.trim = trim)
    }

    /// Sets where a new consumer group starts (default
    /// [`GroupStart::Oldest`]).
    pub fn group_start(self, start: GroupStart) -> Self {
        self.with(|s| s.group_start = start)
    }

    /// Sets how long a delivered message may stay unacked before another
    /// consumer takes it over (default 30 s; at least 1 ms).
    pub fn visibility_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.visibility_timeout = timeout.max(Duration::from_millis(1)))
    }

    /// Sets how often each subscription looks for stuck messages with
    /// `XAUTOCLAIM` (default 5 s). A redelivery after a crash takes up to the
    /// visibility timeout plus this interval.
    pub fn claim_interval(self, interval: Duration) -> Self {
        self.with(|s| s.claim_interval = interval)
    }

    /// Sets how many entries one read fetches, and how many queued acks
    /// trigger an `XACK` at once (default 100; at least 1).
    pub fn batch(self, size: usize) -> Self {
        self.with(|s| s.batch = size.max(1))
    }

    /// Sets how long a read waits for new entries (default 200 ms). Keep it
    /// under the client's response timeout, 500 ms in redis-rs 1.x.
    pub fn block(self, block: Duration) -> Self {
        self.with(|s| s.block = block.max(Duration::from_millis(1)))
    }

    /// Sets the longest time a queued ack waits before it is sent (default
    /// 100 ms).
    pub fn ack_interval(self, interval: Duration) -> Self {
        self.with(|s| s.ack_interval = interval.max(Duration::from_millis(1)))
    }

    /// Sets how long a subscriber's close waits for unsettled deliveries
    /// (default 30 s).
    pub fn drain_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.drain_timeout = timeout)
    }

    /// Sets the limits checked on publish.
    pub fn limits(self, limits: Limits) -> Self {
        self.with(|s| s.limits = limits)
    }

    /// Sets the clock for visibility timeouts and trimming ages.
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.with(|s| s.clock = clock)
    }

    /// Returns the stream key of `topic`.
    pub fn stream_key(&self, topic: &str) -> String {
        self.shared.stream_key(topic)
    }

    /// Returns a publisher.
    pub fn publisher(&self) -> StreamsPublisher {
        StreamsPublisher::new(self.shared.clone())
    }

    /// Returns a subscriber.
    pub fn subscriber(&self) -> StreamsSubscriber {
        StreamsSubscriber::new(self.shared.clone())
    }

    /// Returns what this backend promises with these settings.
    pub fn capabilities(&self) -> Capabilities {
        self.shared.capabilities()
    }

    /// Returns the pool, for a [`RedisDedupStore`] on the same server.
    pub fn pool(&self) -> &Pool {
        &self.shared.pool
    }
}

impl Settings {
    pub(crate) fn stream_key(&self, topic: &str) -> String {
        format!("{}:{topic}", self.prefix)
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        STREAMS_CAPABILITIES.replays_old_messages(self.group_start == GroupStart::Oldest)
    }
}

/// One multiplexed connection taken out of the pool and reused.
///
/// Taking a connection from a deadpool-redis pool costs a `PING` round trip
/// (its recycle check), which would double the round trips of a batch. A
/// slot takes one connection once, hands out clones of it (a multiplexed
/// connection pipelines concurrent requests), and drops it after a
/// connection error so that the next call takes a fresh one.
pub(crate) struct ConnSlot {
    pool: Pool,
    conn: std::sync::Mutex<Option<MultiplexedConnection>>,
}

impl ConnSlot {
    pub(crate) fn new(pool: Pool) -> Self {
        ConnSlot {
            pool,
            conn: std::sync::Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns the slot's connection, taking one from the pool if it has
    /// none.
    pub(crate) async fn get(&self) -> Result<MultiplexedConnection, Error> {
        if let Some(conn) = self.lock().clone() {
            return Ok(conn);
        }
        let object = self.pool.get().await.map_err(pool_error)?;
        let conn = deadpool_redis::Connection::take(object);
        *self.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the connection after an error that is not a server reply (a
    /// reset, a timeout), so that the next call reconnects.
    pub(crate) fn check(&self, err: &deadpool_redis::redis::RedisError) {
        if err.code().is_none() {
            *self.lock() = None;
        }
    }
}

pub(crate) fn backend_error(
    action: impl Into<String>,
    err: deadpool_redis::redis::RedisError,
) -> Error {
    MqError::Backend {
        action: action.into(),
        source: Box::new(err),
    }
    .into()
}

pub(crate) fn pool_error(err: deadpool_redis::PoolError) -> Error {
    MqError::Backend {
        action: "getting a Redis connection from the pool".to_owned(),
        source: Box::new(err),
    }
    .into()
}
