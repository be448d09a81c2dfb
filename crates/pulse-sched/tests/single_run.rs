//! Distributed single run: three schedulers share a lock, and over 100
//! slots each slot runs exactly once in the fleet. The locks are written
//! here on purpose, small and independent of pulse-lock, to show that any
//! `Lock` implementation works.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{idle, manual, settle};
use pulse_core::clock::{Clock, ManualClock, WallTime};
use pulse_core::error::{Error, ErrorKind, Result};
use pulse_core::lock::{DynLock, Lease, Lock};
use pulse_sched::{Cron, Job, JobHandle, JobOptions, SchedulerOptions, ShutdownMode};

const SLOTS: u64 = 100;

/// Runs three schedulers on one manual clock for 100 one-second slots and
/// returns how often each slot ran.
async fn three_instances(
    clock: &ManualClock,
    locks: Vec<Arc<dyn DynLock>>,
) -> BTreeMap<WallTime, u32> {
    let job_name = pulse_testkit::unique_prefix("sched-slot");
    let ran: Arc<Mutex<BTreeMap<WallTime, u32>>> = Arc::default();

    let mut schedulers = Vec::new();
    let mut handles: Vec<JobHandle> = Vec::new();
    for lock in locks {
        let scheduler = manual(clock, SchedulerOptions::default());
        let ran = ran.clone();
        let job = Job::new(&job_name, Cron::parse("@every 1s").unwrap(), move |ctx| {
            *ran.lock().unwrap().entry(ctx.slot).or_default() += 1;
            async { Ok(()) }
        })
        .options(JobOptions::default().single_run(lock, Duration::from_secs(60)));
        handles.push(scheduler.add(job).unwrap());
        schedulers.push(scheduler);
    }
    idle().await;

    for slot in 1..=SLOTS {
        clock.advance(Duration::from_secs(1));
        // Every instance decides each slot: it runs it or finds it taken.
        settle(|| {
            handles
                .iter()
                .map(|h| {
                    let s = h.stats();
                    s.succeeded + s.skipped + s.failed
                })
                .sum::<u64>()
                == 3 * slot
        })
        .await;
    }
    for scheduler in schedulers {
        scheduler.shutdown(ShutdownMode::Wait).await;
    }
    for handle in &handles {
        assert_eq!(handle.stats().failed, 0, "lock calls failed");
    }
    ran.lock().unwrap().clone()
}

fn assert_once_each(ran: &BTreeMap<WallTime, u32>) {
    assert_eq!(ran.len() as u64, SLOTS, "every slot ran");
    for (slot, count) in ran {
        assert_eq!(*count, 1, "slot {slot} ran {count} times");
    }
}

/// A lock over Redis `SET key owner NX PX ttl`, released by compare-and-delete.
mod redis_lock {
    use super::*;
    use deadpool_redis::redis::{self, Script};
    use deadpool_redis::{Config, Pool, Runtime};

    pub(crate) struct RedisLock {
        pool: Pool,
        clock: ManualClock,
        owner: String,
    }

    impl RedisLock {
        pub(crate) fn new(url: &str, clock: &ManualClock, owner: &str) -> Self {
            RedisLock {
                pool: Config::from_url(url)
                    .create_pool(Some(Runtime::Tokio1))
                    .unwrap(),
                clock: clock.clone(),
                owner: owner.to_owned(),
            }
        }
    }

    fn unavailable(err: impl std::fmt::Display) -> Error {
        Error::new(ErrorKind::Unavailable, err.to_string())
    }

    impl Lock for RedisLock {
        async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>> {
            let mut conn = self.pool.get().await.map_err(unavailable)?;
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(&self.owner)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async(&mut *conn)
                .await
                .map_err(unavailable)?;
            Ok(set.map(|_| Lease::new(key, &self.owner, None, self.clock.now() + ttl)))
        }

        async fn acquire(&self, key: &str, ttl: Duration, _wait: Duration) -> Result<Lease> {
            self.try_acquire(key, ttl)
                .await?
                .ok_or_else(|| Error::new(ErrorKind::TimedOut, "busy"))
        }

        async fn extend(&self, _lease: &Lease, _ttl: Duration) -> Result<()> {
            Err(Error::new(ErrorKind::Other, "not needed by the scheduler"))
        }

        async fn release(&self, lease: Lease) -> Result<()> {
            let mut conn = self.pool.get().await.map_err(unavailable)?;
            let script = Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            );
            let _: i64 = script
                .key(lease.key())
                .arg(lease.owner())
                .invoke_async(&mut *conn)
                .await
                .map_err(unavailable)?;
            Ok(())
        }
    }
}

/// A lock over a PostgreSQL table: insert the key, or take it over once
/// its holder's expiry has passed.
mod pg_lock {
    use super::*;
    use tokio_postgres::{Client, NoTls};

    pub(crate) struct PgLock {
        client: Client,
        clock: ManualClock,
        owner: String,
    }

    impl PgLock {
        pub(crate) async fn connect(url: &str, clock: &ManualClock, owner: &str) -> Self {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS slot_locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at BIGINT NOT NULL)",
                )
                .await
                .unwrap();
            PgLock {
                client,
                clock: clock.clone(),
                owner: owner.to_owned(),
            }
        }
    }

    fn unavailable(err: impl std::fmt::Display) -> Error {
        Error::new(ErrorKind::Unavailable, err.to_string())
    }

    impl Lock for PgLock {
        async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>> {
            let now = self.clock.wall().as_millis() as i64;
            let expires = now + ttl.as_millis() as i64;
            let rows = self
                .client
                .query(
                    "INSERT INTO slot_locks (key, owner, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
                     WHERE slot_locks.expires_at < $4 RETURNING owner",
                    &[&key, &self.owner, &expires, &now],
                )
                .await
                .map_err(unavailable)?;
            Ok((!rows.is_empty())
                .then(|| Lease::new(key, &self.owner, None, self.clock.now() + ttl)))
        }

        async fn acquire(&self, key: &str, ttl: Duration, _wait: Duration) -> Result<Lease> {
            self.try_acquire(key, ttl)
                .await?
                .ok_or_else(|| Error::new(ErrorKind::TimedOut, "busy"))
        }

        async fn extend(&self, _lease: &Lease, _ttl: Duration) -> Result<()> {
            Err(Error::new(ErrorKind::Other, "not needed by the scheduler"))
        }

        async fn release(&self, lease: Lease) -> Result<()> {
            self.client
                .execute(
                    "DELETE FROM slot_locks WHERE key = $1 AND owner = $2",
                    &[&lease.key(), &lease.owner()],
                )
                .await
                .map_err(unavailable)?;
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_slot_runs_once_across_three_instances_redis() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let clock = ManualClock::new();
    let locks: Vec<Arc<dyn DynLock>> = (0..3)
        .map(|i| {
            Arc::new(redis_lock::RedisLock::new(
                &url,
                &clock,
                &format!("instance-{i}"),
            )) as Arc<dyn DynLock>
        })
        .collect();
    let ran = three_instances(&clock, locks).await;
    assert_once_each(&ran);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_slot_runs_once_across_three_instances_postgres() {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let schema = pulse_testkit::pg::TestSchema::create(&url).await.unwrap();
    let clock = ManualClock::new();
    let mut locks: Vec<Arc<dyn DynLock>> = Vec::new();
    for i in 0..3 {
        locks.push(Arc::new(
            pg_lock::PgLock::connect(schema.url(), &clock, &format!("instance-{i}")).await,
        ));
    }
    let ran = three_instances(&clock, locks).await;
    assert_once_each(&ran);
    schema.drop().await.unwrap();
}
