//! A counting semaphore over Redis, with an expiry per holder.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::Pool;
use pulse_core::BoxFuture;
use pulse_core::lock::Lease;

use super::connector::Connector;
use super::{millis, scripts};
use crate::error::{LockError, check_key};
use crate::lease::{self, Grant, LeaseBackend};
use crate::options::{LeaseOptions, new_owner};

/// A semaphore of N permits shared through Redis, where each holder's
/// permit expires at its own TTL.
///
/// Holders live in one sorted set scored by their expiry in Redis time, so a
/// crashed holder's permit comes back at its TTL without anyone's help. Each
/// permit is a [`Lease`] with the lost signal, the watchdog and the release
/// on drop of the other backends, and no fencing token (many holders at once
/// have nothing to fence).
///
/// Costs: one round trip to acquire, extend or release; waiting acquirers
/// retry with jittered backoff. Memory: one sorted-set member per holder.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use pulse_lock::{LeaseOptions, RedisSemaphore};
///
/// # async fn run() -> Result<(), pulse_lock::LockError> {
/// let exports = RedisSemaphore::connect("redis://127.0.0.1:6379", "exports", 3, LeaseOptions::new())?;
/// let permit = exports.acquire(Duration::from_secs(60), Duration::from_secs(5)).await?;
/// // ... at most 3 exports run at once across the fleet ...
/// exports.release(permit).await?;
/// # Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone, Debug)]
pub struct RedisSemaphore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Connector,
    options: LeaseOptions,
    name: String,
    set_key: String,
    permits: u32,
}

/// Marks the permits of this backend.
struct PermitHold;

impl RedisSemaphore {
    /// Creates a semaphore named `name` with `permits` permits over the
    /// Redis server at `url`. Every process must use the same count.
    pub fn connect(
        url: &str,
        name: &str,
        permits: u32,
        options: LeaseOptions,
    ) -> Result<Self, LockError> {
        Self::new(Connector::from_url(url)?, name, permits, options)
    }

    /// Creates a semaphore over an existing deadpool-redis pool.
    pub fn from_pool(
        pool: Pool,
        name: &str,
        permits: u32,
        options: LeaseOptions,
    ) -> Result<Self, LockError> {
        Self::new(
            Connector::from_pool(pool, "pool".to_owned()),
            name,
            permits,
            options,
        )
    }

    fn new(
        conn: Connector,
        name: &str,
        permits: u32,
        options: LeaseOptions,
    ) -> Result<Self, LockError> {
        check_key(name)?;
        if permits == 0 {
            return Err(LockError::InvalidPermits {
                requested: 0,
                capacity: u32::MAX,
            });
        }
        let set_key = if options.namespace.is_empty() {
            format!("pulse:sem:v1:{{{name}}}")
        } else {
            format!("pulse:sem:v1:{}:{{{name}}}", options.namespace)
        };
        Ok(RedisSemaphore {
            inner: Arc::new(Inner {
                conn,
                options,
                name: name.to_owned(),
                set_key,
                permits,
            }),
        })
    }

    /// Returns the number of permits.
    pub fn permits(&self) -> u32 {
        self.inner.permits
    }

    /// Takes a permit if one is free now.
    pub async fn try_acquire(&self, ttl: Duration) -> Result<Option<Lease>, LockError> {
        let drift = self.inner.options.check_ttl(ttl)?;
        let owner = new_owner();
        let sent_at = self.inner.options.clock.now();
        let set_key = self.inner.set_key.as_str();
        let owner_arg = owner.as_str();
        let permits = self.inner.permits;
        let taken: i64 = self
            .inner
            .conn
            .run(
                || format!("acquire a permit of semaphore `{}`", self.inner.name),
                |mut conn| async move {
                    scripts::SEM_ACQUIRE
                        .key(set_key)
                        .arg(owner_arg)
                        .arg(millis(ttl))
                        .arg(permits)
                        .invoke_async(&mut conn)
                        .await
                },
            )
            .await?;
        if taken == 0 {
            return Ok(None);
        }
        let grant = Grant {
            key: self.inner.name.clone(),
            owner,
            token: None,
            sent_at,
            ttl,
            drift,
        };
        Ok(Some(lease::issue(
            grant,
            &self.inner.options,
            &self.inner,
            PermitHold,
        )))
    }

    /// Takes a permit, waiting up to `wait` for one to become free.
    pub async fn acquire(&self, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        let clock = self.inner.options.clock.clone();
        let give_up = clock.now() + wait;
        let mut attempt = 0;
        loop {
            if let Some(lease) = self.try_acquire(ttl).await? {
                return Ok(lease);
            }
            let now = clock.now();
            if now >= give_up {
                return Err(LockError::TimedOut {
                    key: self.inner.name.clone(),
                    wait,
                });
            }
            clock
                .sleep_until((now + self.inner.options.backoff(attempt)).min(give_up))
                .await;
            attempt += 1;
        }
    }

    /// Extends a held permit to `ttl` from now. Fails with
    /// [`LockError::NotOwner`] when it expired, and then changes nothing.
    pub async fn extend(&self, permit: &Lease, ttl: Duration) -> Result<(), LockError> {
        self.inner.options.check_ttl(ttl)?;
        let Some(attached) = lease::attached::<PermitHold>(permit) else {
            return Err(LockError::not_owner(permit.key()));
        };
        if permit.lost().is_fired() {
            return Err(LockError::not_owner(permit.key()));
        }
        let sent_at = self.inner.options.clock.now();
        if !self.inner.renew_owner(permit.owner(), ttl).await? {
            permit.lost().fire();
            return Err(LockError::not_owner(permit.key()));
        }
        lease::extended(permit, &attached.tasks, sent_at, ttl);
        Ok(())
    }

    /// Returns a permit. Fails with [`LockError::NotOwner`] when it had
    /// expired already.
    pub async fn release(&self, mut permit: Lease) -> Result<(), LockError> {
        if let Some(attached) = lease::attached::<PermitHold>(&permit) {
            let tasks = attached.tasks.clone();
            lease::retire(&mut permit, &tasks);
        }
        if self.inner.release_owner(permit.owner()).await? {
            Ok(())
        } else {
            Err(LockError::not_owner(permit.key()))
        }
    }
}

impl Inner {
    async fn renew_owner(&self, owner: &str, ttl: Duration) -> Result<bool, LockError> {
        let set_key = self.set_key.as_str();
        let extended: i64 = self
            .conn
            .run(
                || format!("extend a permit of semaphore `{}`", self.name),
                |mut conn| async move {
                    scripts::SEM_EXTEND
                        .key(set_key)
                        .arg(owner)
                        .arg(millis(ttl))
                        .invoke_async(&mut conn)
                        .await
                },
            )
            .await?;
        Ok(extended == 1)
    }

    async fn release_owner(&self, owner: &str) -> Result<bool, LockError> {
        let set_key = self.set_key.as_str();
        let released: i64 = self
            .conn
            .run(
                || format!("release a permit of semaphore `{}`", self.name),
                |mut conn| async move {
                    scripts::SEM_RELEASE
                        .key(set_key)
                        .arg(owner)
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
        _key: String,
        owner: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, LockError>> {
        Box::pin(async move { self.renew_owner(&owner, ttl).await })
    }

    fn release_dropped(self: Arc<Self>, _key: String, owner: String) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Err(err) = self.release_owner(&owner).await {
                tracing::warn!(target: "pulse_lock", semaphore = %self.name, error = %err, "release of a dropped permit failed; it expires at its TTL");
            }
        })
    }
}
