//! Leases within one process, with the same contract as the server backends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pulse_core::BoxFuture;
use pulse_core::clock::MonoTime;
use pulse_core::lock::{Lease, Lock};
use tokio::sync::Notify;

use crate::error::{LockError, check_key};
use crate::lease::{self, Grant, LeaseBackend};
use crate::options::{LeaseOptions, new_owner};

/// A lease service inside one process: TTLs, fencing tokens, the lost
/// signal and the watchdog, without a server.
///
/// Use it where one process is the whole system (tests, a single-node
/// deployment), and switch to [`RedisLock`](crate::RedisLock) or
/// [`PgLock`](crate::PgLock) without changing the code that holds leases.
/// Expiry is timed by the configured clock, so a
/// [`ManualClock`](pulse_core::clock::ManualClock) drives it in tests.
/// Fencing tokens come from one counter and strictly increase for the life
/// of the value; they start again at 1 in a new process.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::lock::Lock;
/// use pulse_lock::MemoryLock;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let locks = MemoryLock::new();
/// let lease = locks.acquire("report", Duration::from_secs(5), Duration::from_secs(1)).await?;
/// assert!(locks.try_acquire("report", Duration::from_secs(5)).await?.is_none());
/// let token = lease.fencing_token().unwrap();
/// locks.release(lease).await?;
///
/// let next = locks.try_acquire("report", Duration::from_secs(5)).await?.unwrap();
/// assert!(next.fencing_token().unwrap() > token);
/// # Ok::<(), pulse_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct MemoryLock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: LeaseOptions,
    state: Mutex<State>,
    released: Notify,
}

#[derive(Debug, Default)]
struct State {
    held: HashMap<String, Holder>,
    next_token: u64,
}

#[derive(Debug)]
struct Holder {
    owner: String,
    expires_at: MonoTime,
}

impl Default for MemoryLock {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLock {
    /// Creates a lease service with the default [`LeaseOptions`].
    pub fn new() -> Self {
        Self::with_options(LeaseOptions::default())
    }

    /// Creates a lease service with the given options.
    pub fn with_options(options: LeaseOptions) -> Self {
        MemoryLock {
            inner: Arc::new(Inner {
                options,
                state: Mutex::new(State::default()),
                released: Notify::new(),
            }),
        }
    }

    /// Returns how many keys are held and not yet expired.
    pub fn held(&self) -> usize {
        let now = self.inner.options.clock.now();
        self.inner
            .state
            .lock()
            .held
            .values()
            .filter(|holder| holder.expires_at > now)
            .count()
    }

    /// Takes the lock once; `Err(remaining)` says when the holder's TTL ends.
    fn attempt(&self, key: &str, ttl: Duration, drift: Duration) -> Result<Lease, MonoTime> {
        let clock = &self.inner.options.clock;
        let sent_at = clock.now();
        let owner = new_owner();
        let token = {
            let mut state = self.inner.state.lock();
            if let Some(holder) = state.held.get(key) {
                if holder.expires_at > sent_at {
                    return Err(holder.expires_at);
                }
            }
            state.next_token += 1;
            let token = state.next_token;
            state.held.insert(
                key.to_owned(),
                Holder {
                    owner: owner.clone(),
                    expires_at: sent_at + ttl,
                },
            );
            token
        };
        let grant = Grant {
            key: key.to_owned(),
            owner,
            token: Some(token),
            sent_at,
            ttl,
            drift,
        };
        Ok(lease::issue(grant, &self.inner.options, &self.inner, ()))
    }
}

impl Inner {
    fn renew_now(&self, key: &str, owner: &str, ttl: Duration) -> bool {
        let now = self.options.clock.now();
        let mut state = self.state.lock();
        match state.held.get_mut(key) {
            Some(holder) if holder.owner == owner && holder.expires_at > now => {
                holder.expires_at = now + ttl;
                true
            }
            _ => false,
        }
    }

    fn release_now(&self, key: &str, owner: &str) -> bool {
        let now = self.options.clock.now();
        let mut state = self.state.lock();
        let owned = matches!(state.held.get(key), Some(holder) if holder.owner == owner && holder.expires_at > now);
        if owned {
            state.held.remove(key);
            drop(state);
            self.released.notify_waiters();
        }
        owned
    }
}

impl LeaseBackend for Inner {
    fn renew(
        self: Arc<Self>,
        key: String,
        owner: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, LockError>> {
        Box::pin(async move { Ok(self.renew_now(&key, &owner, ttl)) })
    }

    fn release_dropped(self: Arc<Self>, key: String, owner: String) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.release_now(&key, &owner);
        })
    }
}

impl Lock for MemoryLock {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> pulse_core::Result<Option<Lease>> {
        check_key(key)?;
        let drift = self.inner.options.check_ttl(ttl)?;
        Ok(self.attempt(key, ttl, drift).ok())
    }

    async fn acquire(&self, key: &str, ttl: Duration, wait: Duration) -> pulse_core::Result<Lease> {
        check_key(key)?;
        let drift = self.inner.options.check_ttl(ttl)?;
        let clock = self.inner.options.clock.clone();
        let give_up = clock.now() + wait;
        loop {
            // Register for a release before trying, so that one between the
            // attempt and the wait still wakes this caller.
            let released = self.inner.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();

            let expires_at = match self.attempt(key, ttl, drift) {
                Ok(lease) => return Ok(lease),
                Err(expires_at) => expires_at,
            };
            if clock.now() >= give_up {
                return Err(LockError::TimedOut {
                    key: key.to_owned(),
                    wait,
                }
                .into());
            }
            tokio::select! {
                _ = released => {}
                _ = clock.sleep_until(expires_at.min(give_up)) => {}
            }
        }
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> pulse_core::Result<()> {
        self.inner.options.check_ttl(ttl)?;
        let Some(attached) = lease::attached::<()>(lease) else {
            return Err(LockError::not_owner(lease.key()).into());
        };
        let sent_at = self.inner.options.clock.now();
        if lease.lost().is_fired() || !self.inner.renew_now(lease.key(), lease.owner(), ttl) {
            return Err(LockError::not_owner(lease.key()).into());
        }
        lease::extended(lease, &attached.tasks, sent_at, ttl);
        Ok(())
    }

    async fn release(&self, mut lease: Lease) -> pulse_core::Result<()> {
        if let Some(attached) = lease::attached::<()>(&lease) {
            let tasks = attached.tasks.clone();
            lease::retire(&mut lease, &tasks);
        }
        if self.inner.release_now(lease.key(), lease.owner()) {
            Ok(())
        } else {
            Err(LockError::not_owner(lease.key()).into())
        }
    }
}
