//! A lease on one Redis server, with fencing tokens.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::Pool;
use futures_util::StreamExt;
use pulse_core::BoxFuture;
use pulse_core::clock::MonoTime;
use pulse_core::lock::{Lease, Lock};

use super::connector::Connector;
use super::{FENCE_RETENTION_MS, LockKeys, millis, scripts};
use crate::error::{LockError, check_key};
use crate::lease::{self, Grant, LeaseBackend};
use crate::options::{LeaseOptions, new_owner};

/// A lease on one Redis server, with fencing tokens that keep increasing
/// across a restart of a Redis that keeps nothing.
///
/// Costs: acquire is one round trip (one script sets the owner with its TTL
/// and issues the fencing token), release is one, extend is one. A waiting
/// [`acquire`](Lock::acquire) listens on a pub/sub channel for releases when
/// the lock was built from a URL, over one extra connection per waiting
/// call; built from a pool it retries with jittered backoff instead, because
/// a deadpool-redis pool cannot open pub/sub connections.
///
/// The lock takes one connection out of the pool and multiplexes all calls
/// over it, because a checkout from a deadpool-redis pool sends a `PING`
/// first. The key layout is in the [crate docs](crate#redis-key-layout).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use pulse_core::lock::Lock;
/// use pulse_lock::{LeaseOptions, RedisLock};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let locks = RedisLock::connect("redis://127.0.0.1:6379", LeaseOptions::new().namespace("billing"))?;
/// let lease = locks.acquire("invoice-42", Duration::from_secs(10), Duration::from_secs(2)).await?;
/// let token = lease.fencing_token().expect("Redis leases are fenced");
/// // ... write to the protected resource with `token` ...
/// locks.release(lease).await?;
/// # Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone, Debug)]
pub struct RedisLock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Connector,
    options: LeaseOptions,
}

/// Marks the leases of this backend.
struct RedisHold;

/// The outcome of one acquire attempt.
enum Attempt {
    Taken(Lease),
    /// Held by someone else for this much longer.
    Busy(Duration),
}

impl RedisLock {
    /// Creates a lock over the Redis server at `url`. Connects lazily, on
    /// the first call.
    pub fn connect(url: &str, options: LeaseOptions) -> Result<Self, LockError> {
        Ok(Self::from_connector(Connector::from_url(url)?, options))
    }

    /// Creates a lock over an existing deadpool-redis pool. One connection is
    /// taken out of the pool on the first call.
    pub fn from_pool(pool: Pool, options: LeaseOptions) -> Self {
        Self::from_connector(Connector::from_pool(pool, "pool".to_owned()), options)
    }

    fn from_connector(conn: Connector, options: LeaseOptions) -> Self {
        RedisLock {
            inner: Arc::new(Inner { conn, options }),
        }
    }

    fn keys(&self, key: &str) -> LockKeys {
        LockKeys::new(&self.inner.options.namespace, key)
    }

    async fn attempt(
        &self,
        key: &str,
        keys: &LockKeys,
        ttl: Duration,
        drift: Duration,
    ) -> Result<Attempt, LockError> {
        let owner = new_owner();
        let owner_arg = owner.as_str();
        let sent_at = self.inner.options.clock.now();
        let (taken, value): (i64, i64) = self
            .inner
            .conn
            .run(
                || format!("acquire lock `{key}`"),
                |mut conn| async move {
                    scripts::ACQUIRE
                        .key(&keys.owner)
                        .key(&keys.fence)
                        .arg(owner_arg)
                        .arg(millis(ttl))
                        .arg(FENCE_RETENTION_MS)
                        .invoke_async(&mut conn)
                        .await
                },
            )
            .await?;
        if taken == 0 {
            return Ok(Attempt::Busy(Duration::from_millis(value.max(0) as u64)));
        }
        tracing::debug!(target: "pulse_lock", key, token = value, "Redis lock acquired");
        let grant = Grant {
            key: key.to_owned(),
            owner,
            token: Some(value as u64),
            sent_at,
            ttl,
            drift,
        };
        Ok(Attempt::Taken(lease::issue(
            grant,
            &self.inner.options,
            &self.inner,
            RedisHold,
        )))
    }

    async fn wait_loop(
        &self,
        key: &str,
        ttl: Duration,
        wait: Duration,
        drift: Duration,
    ) -> Result<Lease, LockError> {
        let keys = self.keys(key);
        let clock = self.inner.options.clock.clone();
        let give_up = clock.now() + wait;

        let mut busy_for = match self.attempt(key, &keys, ttl, drift).await? {
            Attempt::Taken(lease) => return Ok(lease),
            Attempt::Busy(remaining) => remaining,
        };

        // Subscribe after the first failure, so an uncontended acquire costs
        // one round trip; then try again, because a release may have come
        // before the subscription.
        let mut pubsub = match self.inner.conn.client() {
            Some(client) => match subscribe(client, &keys.channel).await {
                Ok(pubsub) => Some(pubsub),
                Err(err) => {
                    tracing::debug!(target: "pulse_lock", key, error = %err, "pub/sub unavailable; polling instead");
                    None
                }
            },
            None => None,
        };

        let mut attempt = 0u32;
        loop {
            if pubsub.is_some() || attempt > 0 {
                match self.attempt(key, &keys, ttl, drift).await? {
                    Attempt::Taken(lease) => return Ok(lease),
                    Attempt::Busy(remaining) => busy_for = remaining,
                }
            }
            let now = clock.now();
            if now >= give_up {
                return Err(LockError::TimedOut {
                    key: key.to_owned(),
                    wait,
                });
            }

            let pause = match &pubsub {
                // A release message wakes the waiter; the timeout covers a
                // lost message and the holder's expiry.
                Some(_) => busy_for.clamp(Duration::from_millis(1), Duration::from_secs(1)),
                None => self
                    .inner
                    .options
                    .backoff(attempt)
                    .min(busy_for.max(Duration::from_millis(1))),
            };
            let wake_at: MonoTime = (now + pause).min(give_up);
            match pubsub.as_mut() {
                Some(stream) => {
                    tokio::select! {
                        message = stream.next() => {
                            if message.is_none() {
                                tracing::debug!(target: "pulse_lock", key, "pub/sub connection closed; polling instead");
                                pubsub = None;
                            }
                        }
                        _ = clock.sleep_until(wake_at) => {}
                    }
                }
                None => clock.sleep_until(wake_at).await,
            }
            attempt += 1;
        }
    }
}

async fn subscribe(
    client: &deadpool_redis::redis::Client,
    channel: &str,
) -> Result<deadpool_redis::redis::aio::PubSubStream, deadpool_redis::redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub.into_on_message())
}

impl Inner {
    async fn renew_owner(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, LockError> {
        let keys = LockKeys::new(&self.options.namespace, key);
        let extended: i64 = self
            .conn
            .run(
                || format!("extend lock `{key}`"),
                |mut conn| async move {
                    scripts::EXTEND
                        .key(&keys.owner)
                        .arg(owner)
                        .arg(millis(ttl))
                        .invoke_async(&mut conn)
                        .await
                },
            )
            .await?;
        Ok(extended == 1)
    }

    async fn release_owner(&self, key: &str, owner: &str) -> Result<bool, LockError> {
        let keys = LockKeys::new(&self.options.namespace, key);
        let released: i64 = self
            .conn
            .run(
                || format!("release lock `{key}`"),
                |mut conn| async move {
                    scripts::RELEASE
                        .key(&keys.owner)
                        .arg(owner)
                        .arg(&keys.channel)
                        .invoke_async(&mut conn)
                        .await
                },
            )
            .await?;
        Ok(released == 1)
    }
}

impl LeaseBackend for Inner {
    fn renew(
        self: Arc<Self>,
        key: String,
        owner: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, LockError>> {
        Box::pin(async move { self.renew_owner(&key, &owner, ttl).await })
    }

    fn release_dropped(self: Arc<Self>, key: String, owner: String) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Err(err) = self.release_owner(&key, &owner).await {
                tracing::warn!(target: "pulse_lock", key = %key, error = %err, "release of a dropped lease failed; it expires at its TTL");
            }
        })
    }
}

impl Lock for RedisLock {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> pulse_core::Result<Option<Lease>> {
        check_key(key)?;
        let drift = self.inner.options.check_ttl(ttl)?;
        match self.attempt(key, &self.keys(key), ttl, drift).await? {
            Attempt::Taken(lease) => Ok(Some(lease)),
            Attempt::Busy(_) => Ok(None),
        }
    }

    async fn acquire(&self, key: &str, ttl: Duration, wait: Duration) -> pulse_core::Result<Lease> {
        check_key(key)?;
        let drift = self.inner.options.check_ttl(ttl)?;
        Ok(self.wait_loop(key, ttl, wait, drift).await?)
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> pulse_core::Result<()> {
        self.inner.options.check_ttl(ttl)?;
        let Some(attached) = lease::attached::<RedisHold>(lease) else {
            return Err(LockError::not_owner(lease.key()).into());
        };
        if lease.lost().is_fired() {
            return Err(LockError::not_owner(lease.key()).into());
        }
        let sent_at = self.inner.options.clock.now();
        if !self
            .inner
            .renew_owner(lease.key(), lease.owner(), ttl)
            .await?
        {
            tracing::warn!(target: "pulse_lock", key = lease.key(), "lease extension failed: another owner holds the lock");
            lease.lost().fire();
            return Err(LockError::not_owner(lease.key()).into());
        }
        lease::extended(lease, &attached.tasks, sent_at, ttl);
        Ok(())
    }

    async fn release(&self, mut lease: Lease) -> pulse_core::Result<()> {
        if let Some(attached) = lease::attached::<RedisHold>(&lease) {
            let tasks = attached.tasks.clone();
            lease::retire(&mut lease, &tasks);
        }
        if self.inner.release_owner(lease.key(), lease.owner()).await? {
            Ok(())
        } else {
            Err(LockError::not_owner(lease.key()).into())
        }
    }
}
