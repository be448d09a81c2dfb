//! Conformance suite for locks: mutual exclusion checked through fencing
//! tokens, token order, expiry, the lost signal and the owner checks of
//! extend and release.
//!
//! A backend describes itself with a [`LockSetup`] and runs [`run_all`], or
//! the checks one by one to see them as separate tests. Every check uses
//! keys of its own under the setup's prefix, so checks may share a server
//! and run in parallel.
//!
//! | check | runs when |
//! | --- | --- |
//! | [`exclusion`] | always |
//! | [`rejects_bad_input`] | always |
//! | [`contended_fencing`] | the backend issues fencing tokens |
//! | [`token_order`] | the backend issues fencing tokens |
//! | [`expired_holder`] | always |
//! | [`lost_signal_timing`] | always |
//!
//! Mutual exclusion is checked through a [`FencedResource`] instead of
//! wall-clock overlap, which flakes on a loaded machine: the resource
//! rejects a token lower than the highest it has seen, and the check counts
//! the writes it had to reject. Real time is used only where a TTL must run
//! out; the bounds are generous.
//!
//! The checks panic with a message naming the backend and the broken
//! promise, as test assertions do.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::clock::Clock;
use pulse_core::error::ErrorKind;
use pulse_core::lock::{DynLock, Lock};

/// A lock backend under test.
#[derive(Clone)]
pub struct LockSetup {
    /// A short name for failure messages ("memory", "redis").
    pub name: String,
    /// The backend.
    pub lock: Arc<dyn DynLock>,
    /// The clock the backend times deadlines with.
    pub clock: Arc<dyn Clock>,
    /// A prefix for this run's keys.
    pub prefix: String,
    /// Whether leases carry fencing tokens.
    pub fencing: bool,
    /// Tasks in the contention check.
    pub tasks: usize,
    /// Acquisitions per task in the contention check.
    pub acquisitions_per_task: usize,
    /// The TTL of the expiry checks. Long enough for one round trip on a
    /// loaded machine, short enough to wait out.
    pub short_ttl: Duration,
}

impl LockSetup {
    /// Describes a backend with defaults: fencing on, 8 tasks of 250
    /// acquisitions, a short TTL of 400 ms.
    pub fn new(
        name: impl Into<String>,
        lock: Arc<dyn DynLock>,
        clock: Arc<dyn Clock>,
        prefix: impl Into<String>,
    ) -> Self {
        LockSetup {
            name: name.into(),
            lock,
            clock,
            prefix: prefix.into(),
            fencing: true,
            tasks: 8,
            acquisitions_per_task: 250,
            short_ttl: Duration::from_millis(400),
        }
    }

    fn key(&self, check: &str) -> String {
        format!("{}:{check}", self.prefix)
    }
}

/// A resource that accepts a write only with a fencing token at least as
/// high as the highest it has seen, as a database row with a `fence` column
/// would.
#[derive(Debug, Default)]
pub struct FencedResource {
    state: Mutex<FenceState>,
}

#[derive(Debug, Default)]
struct FenceState {
    highest: u64,
    accepted: u64,
    rejected: u64,
    /// A read-modify-write counter: lost updates show overlapping holders.
    counter: u64,
}

impl FencedResource {
    /// Creates an empty resource.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes with `token`; returns whether the write was accepted.
    pub fn write(&self, token: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if token < state.highest {
            state.rejected += 1;
            return false;
        }
        state.highest = token;
        state.accepted += 1;
        true
    }

    /// Reads the counter, for a read-modify-write under the lock.
    pub fn read_counter(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).counter
    }

    /// Stores the counter, for a read-modify-write under the lock.
    pub fn store_counter(&self, value: u64) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).counter = value;
    }

    /// Returns (accepted, rejected) writes.
    pub fn writes(&self) -> (u64, u64) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (state.accepted, state.rejected)
    }
}

/// The checks that ran and those skipped, with the reason.
#[derive(Debug, Default)]
pub struct Report {
    /// Checks that ran and passed.
    pub passed: Vec<&'static str>,
    /// Checks skipped, with the reason.
    pub skipped: Vec<(&'static str, &'static str)>,
}

/// Runs every check that the backend's setup allows.
pub async fn run_all(setup: &LockSetup) -> Report {
    let mut report = Report::default();
    exclusion(setup).await;
    report.passed.push("exclusion");
    rejects_bad_input(setup).await;
    report.passed.push("rejects_bad_input");
    if setup.fencing {
        contended_fencing(setup).await;
        report.passed.push("contended_fencing");
        token_order(setup).await;
        report.passed.push("token_order");
    } else {
        report
            .skipped
            .push(("contended_fencing", "the backend issues no fencing tokens"));
        report
            .skipped
            .push(("token_order", "the backend issues no fencing tokens"));
    }
    expired_holder(setup).await;
    report.passed.push("expired_holder");
    lost_signal_timing(setup).await;
    report.passed.push("lost_signal_timing");
    report
}

/// A held key cannot be taken again; after release it can, with a higher
/// token.
pub async fn exclusion(setup: &LockSetup) {
    let lock = &*setup.lock;
    let key = setup.key("exclusion");
    let ttl = Duration::from_secs(10);
    let first = lock
        .try_acquire(&key, ttl)
        .await
        .expect("try_acquire failed")
        .unwrap_or_else(|| panic!("{}: a free key was busy", setup.name));
    assert!(
        lock.try_acquire(&key, ttl)
            .await
            .expect("try_acquire failed")
            .is_none(),
        "{}: a held key was granted twice",
        setup.name
    );
    let other = lock
        .try_acquire(&setup.key("exclusion-other"), ttl)
        .await
        .expect("try_acquire failed");
    assert!(other.is_some(), "{}: another key was busy", setup.name);
    lock.release(other.unwrap()).await.expect("release failed");
    let first_token = first.fencing_token();
    lock.release(first)
        .await
        .expect("release of a held lease failed");
    let second = lock
        .try_acquire(&key, ttl)
        .await
        .expect("try_acquire failed")
        .unwrap_or_else(|| panic!("{}: a released key stayed busy", setup.name));
    if setup.fencing {
        assert!(
            second.fencing_token() > first_token,
            "{}: token did not increase after release",
            setup.name
        );
    }
    lock.release(second).await.expect("release failed");
}

/// An empty key and a zero TTL are typed errors, not panics or waits.
pub async fn rejects_bad_input(setup: &LockSetup) {
    let lock = &*setup.lock;
    let err = lock
        .try_acquire("", Duration::from_secs(1))
        .await
        .expect_err("an empty key was accepted");
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "{}: empty key: {err}",
        setup.name
    );
    let err = lock
        .try_acquire(&setup.key("bad"), Duration::ZERO)
        .await
        .expect_err("a zero TTL was accepted");
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "{}: zero TTL: {err}",
        setup.name
    );
}

/// Many tasks contend for one key; each holder checks its lease, writes to a
/// fenced resource and does a read-modify-write. No write is rejected as
/// stale and no update is lost.
pub async fn contended_fencing(setup: &LockSetup) {
    let key = setup.key("contended");
    let resource = Arc::new(FencedResource::new());
    let mut workers = Vec::new();
    for _ in 0..setup.tasks {
        let setup = setup.clone();
        let key = key.clone();
        let resource = resource.clone();
        workers.push(tokio::spawn(async move {
            for _ in 0..setup.acquisitions_per_task {
                let lease = setup
                    .lock
                    .acquire(&key, Duration::from_secs(10), Duration::from_secs(60))
                    .await
                    .expect("acquire under contention failed");
                lease
                    .check(&setup.clock)
                    .expect("a fresh lease was already lost");
                let token = lease.fencing_token().expect("fencing token missing");
                resource.write(token);
                let counter = resource.read_counter();
                tokio::task::yield_now().await;
                resource.store_counter(counter + 1);
                setup.lock.release(lease).await.expect("release failed");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a contending task panicked");
    }
    let total = (setup.tasks * setup.acquisitions_per_task) as u64;
    let (accepted, rejected) = resource.writes();
    assert_eq!(
        rejected, 0,
        "{}: the fenced resource rejected {rejected} stale writes",
        setup.name
    );
    assert_eq!(accepted, total, "{}", setup.name);
    assert_eq!(
        resource.read_counter(),
        total,
        "{}: updates were lost, so holders overlapped",
        setup.name
    );
}

/// Tokens strictly increase over consecutive acquisitions of one key.
pub async fn token_order(setup: &LockSetup) {
    let key = setup.key("order");
    let mut last = 0;
    for _ in 0..50 {
        let lease = setup
            .lock
            .acquire(&key, Duration::from_secs(10), Duration::from_secs(10))
            .await
            .expect("acquire failed");
        let token = lease.fencing_token().expect("fencing token missing");
        assert!(token > last, "{}: token {token} after {last}", setup.name);
        last = token;
        setup.lock.release(lease).await.expect("release failed");
    }
}

/// A holder whose TTL ran out cannot extend or release, and its attempts
/// leave the new holder's lease in place.
pub async fn expired_holder(setup: &LockSetup) {
    let lock = &*setup.lock;
    let key = setup.key("expired");
    let stale = lock
        .try_acquire(&key, setup.short_ttl)
        .await
        .expect("try_acquire failed")
        .expect("a free key was busy");
    tokio::time::timeout(Duration::from_secs(30), stale.lost().fired())
        .await
        .unwrap_or_else(|_| panic!("{}: lost signal never fired", setup.name));

    let holder = lock
        .acquire(&key, Duration::from_secs(10), Duration::from_secs(30))
        .await
        .expect("the expired key stayed busy");
    if setup.fencing {
        assert!(
            holder.fencing_token() > stale.fencing_token(),
            "{}",
            setup.name
        );
    }

    let err = lock
        .extend(&stale, Duration::from_secs(10))
        .await
        .expect_err("an expired holder extended");
    assert_eq!(err.kind(), ErrorKind::NotOwner, "{}: {err}", setup.name);
    let err = lock
        .release(stale)
        .await
        .expect_err("an expired holder released");
    assert_eq!(err.kind(), ErrorKind::NotOwner, "{}: {err}", setup.name);

    assert!(
        lock.try_acquire(&key, Duration::from_secs(10))
            .await
            .expect("try_acquire failed")
            .is_none(),
        "{}: the late release freed the new holder's key",
        setup.name
    );
    holder
        .check(&setup.clock)
        .expect("the new holder lost its lease");
    lock.extend(&holder, Duration::from_secs(10))
        .await
        .expect("the new holder could not extend");
    lock.release(holder)
        .await
        .expect("the new holder could not release");
}

/// The local deadline is at most the TTL after the call started, and the
/// lost signal fires no earlier than it.
pub async fn lost_signal_timing(setup: &LockSetup) {
    let ttl = setup.short_ttl;
    let before = setup.clock.now();
    let lease = setup
        .lock
        .try_acquire(&setup.key("timing"), ttl)
        .await
        .expect("try_acquire failed")
        .expect("a free key was busy");
    let deadline = lease.deadline();
    assert!(
        deadline < before + ttl,
        "{}: deadline not below the TTL: the drift margin is missing",
        setup.name
    );
    tokio::time::timeout(Duration::from_secs(30), lease.lost().fired())
        .await
        .unwrap_or_else(|_| panic!("{}: lost signal never fired", setup.name));
    assert!(
        setup.clock.now() >= deadline,
        "{}: lost fired before the deadline",
        setup.name
    );
    assert!(
        lease.check(&setup.clock).is_err(),
        "{}: check passed on a lost lease",
        setup.name
    );
}
