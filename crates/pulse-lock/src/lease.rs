//! The parts every lease backend shares: the deadline arithmetic, the lost-signal
//! timer, the renewal watchdog and the release on drop.
//!
//! A backend takes the lock on its server, then calls [`issue`] with the
//! moment the request was sent. The lease's local deadline is that moment
//! plus the TTL minus the drift margin, so it passes before the server-side
//! expiry even when the reply was slow. A timer task fires the lost signal at
//! that deadline, through the configured clock, so a
//! [`ManualClock`](pulse_core::clock::ManualClock) drives it in tests.

use std::sync::Arc;
use std::time::Duration;

use pulse_core::BoxFuture;
use pulse_core::clock::{Clock, MonoTime};
use pulse_core::lock::{Lease, SharedDeadline};
use pulse_core::signal::Signal;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::error::LockError;
use crate::options::LeaseOptions;

/// The server side of a lease, as the background tasks need it.
pub(crate) trait LeaseBackend: Send + Sync + 'static {
    /// Extends the lease of `owner` on `key` to `ttl` from now. Returns
    /// `Ok(false)` when `owner` no longer holds it, and then changes nothing.
    fn renew(
        self: Arc<Self>,
        key: String,
        owner: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, LockError>>;

    /// Releases the lease of `owner` on `key` after its guard was dropped.
    fn release_dropped(self: Arc<Self>, key: String, owner: String) -> BoxFuture<'static, ()>;
}

/// The per-lease state of the background tasks, attached to every lease.
#[derive(Debug)]
pub(crate) struct LeaseTasks {
    /// Fired when the lease is released or dropped: the tasks stop.
    pub(crate) stop: Signal,
    /// Woken when the deadline moves, so the timer sleeps until the new one.
    pub(crate) rearm: Notify,
    pub(crate) ttl: Duration,
    pub(crate) drift: Duration,
}

/// The state a backend attaches to its leases: the task state and its own data.
pub(crate) struct Attached<T> {
    pub(crate) tasks: Arc<LeaseTasks>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) extra: T,
}

/// The facts of a freshly taken lock.
pub(crate) struct Grant {
    pub(crate) key: String,
    pub(crate) owner: String,
    pub(crate) token: Option<u64>,
    /// When the acquire request was sent.
    pub(crate) sent_at: MonoTime,
    pub(crate) ttl: Duration,
    pub(crate) drift: Duration,
}

/// Builds the lease for a grant: sets the local deadline, starts the
/// lost-signal timer and, when configured, the watchdog, and arms the
/// release on drop.
///
/// Must run inside a tokio runtime (every acquire is async, so it does).
pub(crate) fn issue<B, T>(grant: Grant, options: &LeaseOptions, backend: &Arc<B>, extra: T) -> Lease
where
    B: LeaseBackend,
    T: Send + Sync + 'static,
{
    let deadline = local_deadline(grant.sent_at, grant.ttl, grant.drift);
    let lease = Lease::new(
        grant.key.clone(),
        grant.owner.clone(),
        grant.token,
        deadline,
    );
    let tasks = Arc::new(LeaseTasks {
        stop: Signal::new(),
        rearm: Notify::new(),
        ttl: grant.ttl,
        drift: grant.drift,
    });

    tokio::spawn(lost_timer(
        options.clock.clone(),
        lease.shared_deadline(),
        lease.lost().clone(),
        tasks.clone(),
        grant.key.clone(),
    ));

    if options.watchdog {
        tokio::spawn(watchdog(
            backend.clone(),
            options.clock.clone(),
            grant.key.clone(),
            grant.owner.clone(),
            lease.shared_deadline(),
            lease.lost().clone(),
            tasks.clone(),
        ));
    }

    let handle = Handle::try_current().ok();
    let drop_backend = backend.clone();
    let drop_tasks = tasks.clone();
    lease
        .with_attachment(Attached { tasks, extra })
        .with_drop_action(move |lease| {
            drop_tasks.stop.fire();
            match handle {
                Some(handle) => {
                    tracing::debug!(target: "pulse_lock", key = lease.key(), "lease dropped without release; releasing in the background");
                    let release = drop_backend.release_dropped(lease.key().to_owned(), lease.owner().to_owned());
                    pulse_core::task::spawn_detached(&handle, release);
                }
                None => {
                    tracing::debug!(target: "pulse_lock", key = lease.key(), "lease dropped outside a runtime; it expires at its TTL");
                }
            }
        })
}

/// Returns the local deadline of a lease whose request was sent at `sent_at`.
pub(crate) fn local_deadline(sent_at: MonoTime, ttl: Duration, drift: Duration) -> MonoTime {
    sent_at + ttl.saturating_sub(drift)
}

/// Returns the task state of a lease this crate issued with `Attached<T>`.
pub(crate) fn attached<T: 'static>(lease: &Lease) -> Option<&Attached<T>> {
    lease.attachment::<Attached<T>>()
}

/// Moves the deadline of a lease after a successful extension.
pub(crate) fn extended(lease: &Lease, tasks: &LeaseTasks, sent_at: MonoTime, ttl: Duration) {
    lease.set_deadline(local_deadline(sent_at, ttl, tasks.drift));
    tasks.rearm.notify_waiters();
}

/// Stops the tasks of a lease that is being released and disarms its drop
/// action.
pub(crate) fn retire(lease: &mut Lease, tasks: &LeaseTasks) {
    tasks.stop.fire();
    lease.disarm();
}

/// Fires the lost signal once the local deadline passes, following the
/// deadline as extensions move it.
async fn lost_timer(
    clock: Arc<dyn Clock>,
    deadline: SharedDeadline,
    lost: Signal,
    tasks: Arc<LeaseTasks>,
    key: String,
) {
    loop {
        // Register for a rearm before reading the deadline, so that an
        // extension between the read and the sleep is not missed.
        let rearm = tasks.rearm.notified();
        tokio::pin!(rearm);
        rearm.as_mut().enable();

        let at = deadline.get();
        if clock.now() >= at {
            if !tasks.stop.is_fired() && lost.fire() {
                tracing::warn!(target: "pulse_lock", key = %key, "lease lost: its local deadline passed before release");
            }
            return;
        }

        tokio::select! {
            _ = clock.sleep_until(at) => {}
            _ = rearm => {}
            _ = tasks.stop.fired() => return,
            _ = lost.fired() => return,
        }
    }
}

/// Renews the lease at a third of its TTL until it is released, dropped or
/// lost.
async fn watchdog<B: LeaseBackend>(
    backend: Arc<B>,
    clock: Arc<dyn Clock>,
    key: String,
    owner: String,
    deadline: SharedDeadline,
    lost: Signal,
    tasks: Arc<LeaseTasks>,
) {
    let period = (tasks.ttl / 3).max(Duration::from_millis(1));
    loop {
        tokio::select! {
            _ = clock.sleep(period) => {}
            _ = tasks.stop.fired() => return,
            _ = lost.fired() => return,
        }

        let sent_at = clock.now();
        let renewed = backend
            .clone()
            .renew(key.clone(), owner.clone(), tasks.ttl)
            .await;
        if tasks.stop.is_fired() {
            return;
        }
        match renewed {
            Ok(true) => {
                deadline.set(local_deadline(sent_at, tasks.ttl, tasks.drift));
                tasks.rearm.notify_waiters();
                tracing::trace!(target: "pulse_lock", key = %key, "lease renewed");
            }
            Ok(false) => {
                tracing::warn!(target: "pulse_lock", key = %key, "lease renewal failed: another owner holds the lock; firing the lost signal");
                lost.fire();
                return;
            }
            Err(err) => {
                // The lease may still be held; the timer fires the lost
                // signal at the deadline if no later renewal succeeds.
                tracing::warn!(target: "pulse_lock", key = %key, error = %err, "lease renewal failed; retrying at the next period");
            }
        }
    }
}
