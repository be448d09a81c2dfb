//! The distributed-lock contract: leases with fencing tokens and a lost
//! signal.
//!
//! # What a lease promises, and what it cannot
//!
//! A lease is held until its deadline unless it is extended. The holder's
//! process can be paused (a GC pause, a VM migration, a debugger) for longer
//! than the lease, and nothing can tell a paused process that it lost the
//! lock. Two habits keep a protected resource safe anyway:
//!
//! 1. Before each protected action the holder calls [`Lease::check`], which
//!    fails once the local deadline has passed or the lost signal fired.
//! 2. Every write to the protected resource carries the lease's
//!    [fencing token](Lease::fencing_token), and the resource rejects a token
//!    lower than the highest it has seen. This is what protects the resource
//!    from a holder that was paused between the check and the write.
//!
//! # Contract for implementors
//!
//! - Two live leases on one key never coexist, as far as the backend can
//!   tell.
//! - Fencing tokens strictly increase per key, also across a restart of a
//!   backend that keeps nothing (derive them from time as well as a
//!   counter). A backend that cannot promise this returns `None` from
//!   [`Lease::fencing_token`].
//! - The local deadline is timed from when the acquire request was sent,
//!   minus a drift margin, so it passes before the server-side expiry.
//! - The lost signal fires at the local deadline, and earlier when the
//!   backend learns the lease is gone (a dropped connection, a failed
//!   renewal).
//! - Extend and release compare the owner value: after the lease passed to
//!   someone else they fail with [`ErrorKind::NotOwner`](crate::error::ErrorKind::NotOwner)
//!   and leave the new holder untouched.
//! - Release is an explicit async call. `Drop` of a lease cannot await: a
//!   backend spawns the release on the runtime the lease was created on when
//!   one is running (see [`spawn_detached`](crate::task::spawn_detached)),
//!   and otherwise the lease simply expires at its TTL.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::BoxFuture;
use crate::clock::{Clock, MonoTime};
use crate::error::{Error, ErrorKind, Result};
use crate::signal::Signal;

/// What a lease does when it is dropped without release.
type DropAction = Box<dyn FnOnce(&Lease) + Send + Sync>;

/// A held lock: the key, the owner value that proves it, the fencing token,
/// the local deadline and the lost signal.
///
/// A backend creates it with [`Lease::new`]. The deadline can be moved by
/// [`Lease::set_deadline`] when the lease is extended, also from a background
/// task (a watchdog) through [`Lease::shared_deadline`].
pub struct Lease {
    key: String,
    owner: String,
    fencing_token: Option<u64>,
    deadline: SharedDeadline,
    lost: Signal,
    attachment: Option<Box<dyn Any + Send + Sync>>,
    on_drop: Option<DropAction>,
}

/// The local deadline of a lease, shared between the lease and the backend's
/// background tasks (the lost-signal timer, a renewal watchdog).
///
/// Clones share one value.
///
/// # Examples
///
/// ```
/// use pulse_core::clock::MonoTime;
/// use pulse_core::lock::Lease;
///
/// let lease = Lease::new("job-7", "owner-a", Some(1), MonoTime::from_nanos(10));
/// let deadline = lease.shared_deadline();
/// deadline.set(MonoTime::from_nanos(20));
/// assert_eq!(lease.deadline(), MonoTime::from_nanos(20));
/// ```
#[derive(Clone, Debug)]
pub struct SharedDeadline(Arc<AtomicU64>);

impl SharedDeadline {
    /// Creates a deadline cell holding `deadline`.
    pub fn new(deadline: MonoTime) -> Self {
        SharedDeadline(Arc::new(AtomicU64::new(deadline.as_nanos())))
    }

    /// Returns the current deadline.
    pub fn get(&self) -> MonoTime {
        MonoTime::from_nanos(self.0.load(Ordering::SeqCst))
    }

    /// Replaces the deadline.
    pub fn set(&self, deadline: MonoTime) {
        self.0.store(deadline.as_nanos(), Ordering::SeqCst);
    }
}

impl Lease {
    /// Creates a lease. `deadline` is the local deadline, already reduced by
    /// the drift margin.
    pub fn new(
        key: impl Into<String>,
        owner: impl Into<String>,
        fencing_token: Option<u64>,
        deadline: MonoTime,
    ) -> Self {
        Lease {
            key: key.into(),
            owner: owner.into(),
            fencing_token,
            deadline: SharedDeadline::new(deadline),
            lost: Signal::new(),
            attachment: None,
            on_drop: None,
        }
    }

    /// Attaches backend state to the lease (the connection that holds a
    /// session lock, the nodes a Redlock lease was taken on), for the
    /// backend's own `extend` and `release` to find again.
    pub fn with_attachment<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.attachment = Some(Box::new(value));
        self
    }

    /// Returns the attached backend state when it is a `T`.
    pub fn attachment<T: Any>(&self) -> Option<&T> {
        self.attachment.as_deref()?.downcast_ref::<T>()
    }

    /// Sets what happens when the lease is dropped without release, such as
    /// spawning the release on the runtime it was created on.
    pub fn with_drop_action(mut self, action: impl FnOnce(&Lease) + Send + Sync + 'static) -> Self {
        self.on_drop = Some(Box::new(action));
        self
    }

    /// Removes the drop action, for a backend that has released the lease.
    pub fn disarm(&mut self) {
        self.on_drop = None;
    }

    /// Returns the locked key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Returns the unique value that identifies this holder to the backend.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Returns the fencing token, strictly increasing per key, or `None`
    /// where the backend does not issue safe tokens.
    pub fn fencing_token(&self) -> Option<u64> {
        self.fencing_token
    }

    /// Returns the local deadline.
    pub fn deadline(&self) -> MonoTime {
        self.deadline.get()
    }

    /// Moves the local deadline, after a successful extension.
    pub fn set_deadline(&self, deadline: MonoTime) {
        self.deadline.set(deadline);
    }

    /// Returns a handle to the local deadline that a background task can
    /// read and move while the caller holds the lease.
    pub fn shared_deadline(&self) -> SharedDeadline {
        self.deadline.clone()
    }

    /// Returns the signal that fires when the lease is lost or its local
    /// deadline passes.
    pub fn lost(&self) -> &Signal {
        &self.lost
    }

    /// Returns the time left before the local deadline.
    pub fn remaining(&self, clock: &impl Clock) -> Duration {
        self.deadline().saturating_duration_since(clock.now())
    }

    /// Fails with [`ErrorKind::NotOwner`] when the local deadline has passed
    /// or the lost signal fired. Call it before each protected action.
    pub fn check(&self, clock: &impl Clock) -> Result<()> {
        if self.lost.is_fired() || clock.now() >= self.deadline() {
            return Err(Error::new(
                ErrorKind::NotOwner,
                format!(
                    "lease on `{}` is lost or expired; acquire the lock again",
                    self.key
                ),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("owner", &self.owner)
            .field("fencing_token", &self.fencing_token)
            .field("deadline", &self.deadline())
            .field("lost", &self.lost.is_fired())
            .finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(action) = self.on_drop.take() {
            action(self);
        }
    }
}

/// A lock service that hands out [`Lease`]s.
///
/// # Examples
///
/// Generic use, and the same backend behind `Arc<dyn DynLock>`:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use pulse_core::clock::{Clock, ManualClock};
/// use pulse_core::error::{Error, ErrorKind, Result};
/// use pulse_core::lock::{DynLock, Lease, Lock};
///
/// /// A single-process lock table, enough to show the trait.
/// struct Table { clock: ManualClock, held: Mutex<HashMap<String, String>>, next: Mutex<u64> }
///
/// impl Lock for Table {
///     async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>> {
///         let mut held = self.held.lock().unwrap();
///         if held.contains_key(key) { return Ok(None); }
///         let mut next = self.next.lock().unwrap();
///         *next += 1;
///         held.insert(key.to_owned(), next.to_string());
///         Ok(Some(Lease::new(key, next.to_string(), Some(*next), self.clock.now() + ttl)))
///     }
///     async fn acquire(&self, key: &str, ttl: Duration, _wait: Duration) -> Result<Lease> {
///         self.try_acquire(key, ttl).await?
///             .ok_or_else(|| Error::new(ErrorKind::TimedOut, "lock is busy"))
///     }
///     async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<()> {
///         lease.set_deadline(self.clock.now() + ttl);
///         Ok(())
///     }
///     async fn release(&self, lease: Lease) -> Result<()> {
///         self.held.lock().unwrap().remove(lease.key());
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let table = Table { clock: ManualClock::new(), held: Mutex::default(), next: Mutex::new(0) };
/// let lease = table.try_acquire("order-1", Duration::from_secs(5)).await.unwrap().unwrap();
/// assert!(table.try_acquire("order-1", Duration::from_secs(5)).await.unwrap().is_none());
/// table.release(lease).await.unwrap();
///
/// let locks: Arc<dyn DynLock> = Arc::new(table);
/// let lease = locks.try_acquire("order-1", Duration::from_secs(5)).await.unwrap().unwrap();
/// assert_eq!(lease.fencing_token(), Some(2));
/// # });
/// ```
pub trait Lock: Send + Sync {
    /// Takes the lock on `key` if it is free, without waiting.
    fn try_acquire(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Lease>>> + Send;

    /// Takes the lock on `key`, waiting up to `wait` for it to become free.
    /// Fails with [`ErrorKind::TimedOut`] when it does not.
    fn acquire(
        &self,
        key: &str,
        ttl: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<Lease>> + Send;

    /// Extends a held lease to `ttl` from now. Fails with
    /// [`ErrorKind::NotOwner`] when the lease is no longer held.
    fn extend(&self, lease: &Lease, ttl: Duration) -> impl Future<Output = Result<()>> + Send;

    /// Releases a lease. Fails with [`ErrorKind::NotOwner`] when the lease was
    /// no longer held, in which case nothing changed.
    fn release(&self, lease: Lease) -> impl Future<Output = Result<()>> + Send;
}

/// The object-safe companion of [`Lock`], implemented for every lock, for
/// backends chosen at run time. `dyn DynLock` implements [`Lock`] again, so
/// generic code accepts it.
pub trait DynLock: Send + Sync {
    /// Boxed form of [`Lock::try_acquire`].
    fn try_acquire_boxed<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>>>;
    /// Boxed form of [`Lock::acquire`].
    fn acquire_boxed<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Lease>>;
    /// Boxed form of [`Lock::extend`].
    fn extend_boxed<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> BoxFuture<'a, Result<()>>;
    /// Boxed form of [`Lock::release`].
    fn release_boxed(&self, lease: Lease) -> BoxFuture<'_, Result<()>>;
}

impl<L: Lock> DynLock for L {
    fn try_acquire_boxed<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>>> {
        Box::pin(Lock::try_acquire(self, key, ttl))
    }

    fn acquire_boxed<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Lease>> {
        Box::pin(Lock::acquire(self, key, ttl, wait))
    }

    fn extend_boxed<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(Lock::extend(self, lease, ttl))
    }

    fn release_boxed(&self, lease: Lease) -> BoxFuture<'_, Result<()>> {
        Box::pin(Lock::release(self, lease))
    }
}

impl Lock for dyn DynLock + '_ {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        self.try_acquire_boxed(key, ttl).await
    }

    async fn acquire(&self, key: &str, ttl: Duration, wait: Duration) -> Result<Lease> {
        self.acquire_boxed(key, ttl, wait).await
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        self.extend_boxed(lease, ttl).await
    }

    async fn release(&self, lease: Lease) -> Result<()> {
        self.release_boxed(lease).await
    }
}

impl<L: Lock + ?Sized> Lock for Arc<L> {
    fn try_acquire(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Lease>>> + Send {
        (**self).try_acquire(key, ttl)
    }

    fn acquire(
        &self,
        key: &str,
        ttl: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<Lease>> + Send {
        (**self).acquire(key, ttl, wait)
    }

    fn extend(&self, lease: &Lease, ttl: Duration) -> impl Future<Output = Result<()>> + Send {
        (**self).extend(lease, ttl)
    }

    fn release(&self, lease: Lease) -> impl Future<Output = Result<()>> + Send {
        (**self).release(lease)
    }
}
