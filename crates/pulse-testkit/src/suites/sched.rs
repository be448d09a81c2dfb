//! Conformance suite for scheduler job stores
//! ([`JobStore`](pulse_core::sched::JobStore)): unique ids, exclusive
//! claims, leases, settling with stale tokens, dead letters, and jobs that
//! survive a restart.
//!
//! A backend passes a factory that opens the store for a queue name. Each
//! check uses a queue of its own, so the checks may share one server. The
//! restart check opens the same queue twice and is run only when the
//! backend declares itself persistent.
//!
//! | check | runs when |
//! | --- | --- |
//! | [`unique_ids`] | always |
//! | [`claims_due_jobs_only`] | always |
//! | [`claims_are_exclusive`] | always |
//! | [`settling_checks_the_claim`] | always |
//! | [`retry_then_dead_letter`] | always |
//! | [`expired_claim_is_handed_out_again`] | always |
//! | [`cancel_removes_pending_jobs`] | always |
//! | [`survives_restart`] | the backend declares `persistent` |
//!
//! Times are passed explicitly, so no check waits on a real clock.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run<S: pulse_core::sched::JobStore + 'static>(open: impl Fn(String) -> S) {
//! use pulse_testkit::suites::sched::{run_all, JobStoreCaps};
//!
//! run_all("my-store", JobStoreCaps { persistent: true }, |queue| {
//!     let store = open(queue);
//!     async move { store }
//! })
//! .await;
//! # }
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_core::clock::WallTime;
use pulse_core::error::ErrorKind;
use pulse_core::sched::{JobStore, NewJob};

/// What a job store declares about itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct JobStoreCaps {
    /// Jobs survive the store being dropped and opened again.
    pub persistent: bool,
}

/// A fixed wall time for the checks: 2027-01-15T08:00:00Z.
const BASE: WallTime = WallTime::from_secs(1_800_000_000);

const LEASE: Duration = Duration::from_secs(30);

fn at(secs: u64) -> WallTime {
    BASE.saturating_add(Duration::from_secs(secs))
}

fn job(id: &str, run_at: WallTime) -> NewJob {
    NewJob {
        id: id.to_owned(),
        payload: Bytes::from(format!("payload of {id}")),
        run_at,
    }
}

fn queue(check: &str) -> String {
    crate::unique_prefix(&format!("sched-{check}"))
}

/// Runs every check that the capabilities allow.
pub async fn run_all<S, F, Fut>(name: &str, caps: JobStoreCaps, open: F)
where
    S: JobStore + 'static,
    F: Fn(String) -> Fut,
    Fut: Future<Output = S>,
{
    unique_ids(name, open(queue("unique")).await).await;
    claims_due_jobs_only(name, open(queue("due")).await).await;
    claims_are_exclusive(name, Arc::new(open(queue("exclusive")).await)).await;
    settling_checks_the_claim(name, open(queue("settle")).await).await;
    retry_then_dead_letter(name, open(queue("dead")).await).await;
    expired_claim_is_handed_out_again(name, open(queue("lease")).await).await;
    cancel_removes_pending_jobs(name, open(queue("cancel")).await).await;
    if caps.persistent {
        survives_restart(name, &open).await;
    }
}

/// A second push of an id changes nothing, also after the job was
/// dead-lettered.
pub async fn unique_ids<S: JobStore>(name: &str, store: S) {
    assert!(
        store.push(job("a", at(0))).await.unwrap(),
        "{name}: first push refused"
    );
    let mut other = job("a", at(100));
    other.payload = Bytes::from_static(b"other");
    assert!(
        !store.push(other).await.unwrap(),
        "{name}: duplicate id accepted"
    );

    let claimed = store.claim(at(0), 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1, "{name}: one job expected");
    assert_eq!(
        claimed[0].payload,
        Bytes::from("payload of a"),
        "{name}: duplicate overwrote the payload"
    );
    store.dead_letter(&claimed[0], "gave up").await.unwrap();
    assert!(
        !store.push(job("a", at(0))).await.unwrap(),
        "{name}: dead id accepted again"
    );
}

/// Only jobs whose time has come are claimed, earliest first, with their
/// payload and attempt 1.
pub async fn claims_due_jobs_only<S: JobStore>(name: &str, store: S) {
    store.push(job("late", at(60))).await.unwrap();
    store.push(job("early", at(10))).await.unwrap();
    assert!(
        store.claim(at(9), 10, LEASE).await.unwrap().is_empty(),
        "{name}: claimed a job before its time"
    );

    let claimed = store.claim(at(10), 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1, "{name}: exactly the due job expected");
    assert_eq!(claimed[0].id, "early");
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(claimed[0].payload, Bytes::from("payload of early"));
    store.ack(&claimed[0]).await.unwrap();

    let claimed = store.claim(at(61), 10, LEASE).await.unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["late"],
        "{name}"
    );
}

/// Concurrent claimers over 100 due jobs get each job exactly once.
pub async fn claims_are_exclusive<S: JobStore + 'static>(name: &str, store: Arc<S>) {
    for index in 0..100 {
        store
            .push(job(&format!("slot-{index:03}"), at(index)))
            .await
            .unwrap();
    }
    let mut claimers = Vec::new();
    for _ in 0..3 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim(at(200), 7, LEASE).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                for job in batch {
                    store.ack(&job).await.unwrap();
                    mine.push(job.id);
                }
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for claimer in claimers {
        for id in claimer.await.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "{name}: job {id} claimed twice");
        }
    }
    assert_eq!(total, 100, "{name}: every job claimed once");
}

/// A settle call with a stale claim fails with `NotOwner` and changes
/// nothing.
pub async fn settling_checks_the_claim<S: JobStore>(name: &str, store: S) {
    store.push(job("x", at(0))).await.unwrap();
    let first = store.claim(at(0), 1, LEASE).await.unwrap().remove(0);

    // The lease ends; another worker claims the job again.
    let second = store.claim(at(31), 1, LEASE).await.unwrap().remove(0);
    assert_eq!(second.attempt, 2, "{name}: attempts count claims");

    let err = store.ack(&first).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::NotOwner,
        "{name}: stale ack accepted"
    );
    store.ack(&second).await.unwrap();
    let err = store.ack(&second).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::NotOwner,
        "{name}: double ack accepted"
    );
}

/// A retried job is due again at the given time; a dead-lettered one is
/// listed with its last error and never handed out again.
pub async fn retry_then_dead_letter<S: JobStore>(name: &str, store: S) {
    store.push(job("flaky", at(0))).await.unwrap();
    let claimed = store.claim(at(0), 1, LEASE).await.unwrap().remove(0);
    store.retry(&claimed, at(5), "boom 1").await.unwrap();
    assert!(
        store.claim(at(4), 1, LEASE).await.unwrap().is_empty(),
        "{name}: retried too early"
    );

    let claimed = store.claim(at(5), 1, LEASE).await.unwrap().remove(0);
    assert_eq!(claimed.attempt, 2);
    store.dead_letter(&claimed, "boom 2").await.unwrap();
    assert!(
        store.claim(at(10_000), 10, LEASE).await.unwrap().is_empty(),
        "{name}: dead job handed out"
    );

    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{name}: one dead letter expected");
    assert_eq!(dead[0].id, "flaky");
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].error, "boom 2");
    assert_eq!(dead[0].payload, Bytes::from("payload of flaky"));
}

/// A claim that is never settled is handed out again once its lease ends,
/// and not before.
pub async fn expired_claim_is_handed_out_again<S: JobStore>(name: &str, store: S) {
    store.push(job("lost", at(0))).await.unwrap();
    assert_eq!(store.claim(at(0), 1, LEASE).await.unwrap().len(), 1);
    assert!(
        store.claim(at(29), 1, LEASE).await.unwrap().is_empty(),
        "{name}: claim handed out during its lease"
    );
    let again = store.claim(at(30), 1, LEASE).await.unwrap();
    assert_eq!(again.len(), 1, "{name}: expired claim not handed out");
    assert_eq!(again[0].attempt, 2);
}

/// Cancel removes a pending job and reports whether it was pending.
pub async fn cancel_removes_pending_jobs<S: JobStore>(name: &str, store: S) {
    store.push(job("gone", at(0))).await.unwrap();
    assert!(
        store.cancel("gone").await.unwrap(),
        "{name}: cancel of a pending job failed"
    );
    assert!(!store.cancel("gone").await.unwrap());
    assert!(
        store.claim(at(100), 10, LEASE).await.unwrap().is_empty(),
        "{name}: cancelled job claimed"
    );
    assert!(
        store.push(job("gone", at(0))).await.unwrap(),
        "{name}: id not free after cancel"
    );
}

/// A job stored before the store is dropped is claimed from a new handle.
pub async fn survives_restart<S, F, Fut>(name: &str, open: &F)
where
    S: JobStore,
    F: Fn(String) -> Fut,
    Fut: Future<Output = S>,
{
    let queue = queue("restart");
    let store = open(queue.clone()).await;
    store.push(job("kept", at(10))).await.unwrap();
    drop(store);

    let store = open(queue).await;
    let claimed = store.claim(at(10), 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1, "{name}: job lost across a restart");
    assert_eq!(claimed[0].payload, Bytes::from("payload of kept"));
    store.ack(&claimed[0]).await.unwrap();
}
