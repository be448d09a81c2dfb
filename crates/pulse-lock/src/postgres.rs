//! Session advisory locks on PostgreSQL, with fencing tokens from a
//! sequence.
//!
//! # Objects (version 1, created by [`PgLock::migrate`])
//!
//! | object | kind | role |
//! | --- | --- | --- |
//! | `pulse_lock_migrations` | table (`version int primary key`, `applied_at timestamptz`) | which layout versions were applied |
//! | `pulse_lock_fence` | sequence (`bigint`) | fencing tokens, shared by every key |
//!
//! They are created in the first schema of the connection's `search_path`.
//!
//! # Key hash
//!
//! A lock key becomes the `bigint` of `pg_advisory_lock(bigint)` as the
//! 64-bit FNV-1a hash of the UTF-8 bytes of the namespace, one zero byte,
//! and the key, read as a two's-complement signed integer
//! ([`PgLock::key_hash`]). Two keys with the same hash share one lock: that
//! costs throughput, never safety.

use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::{Object, Pool, Runtime};
use pulse_core::BoxFuture;
use pulse_core::lock::{Lease, Lock};
use tokio::sync::{Mutex, OnceCell};
use tokio_postgres::NoTls;

use crate::error::{LockError, check_key};
use crate::lease::{self, Grant, LeaseBackend};
use crate::options::{LeaseOptions, new_owner};

/// The layout version that [`PgLock::migrate`] creates.
const SCHEMA_VERSION: i32 = 1;

/// How often a held lease checks that its connection is still open.
const CONNECTION_CHECK: Duration = Duration::from_millis(250);

/// A lease service over PostgreSQL session advisory locks.
///
/// Each lease holds one connection of the pool for as long as it lives,
/// because a session lock belongs to the session that took it. The lock is
/// freed when the lease is released, when its local deadline passes (the
/// client unlocks then, since PostgreSQL has no TTL for advisory locks), or
/// when the connection closes, which the server notices on its own. A
/// closed connection fires the lost signal within about 250 ms.
///
/// Fencing tokens come from the `pulse_lock_fence` sequence, so they
/// strictly increase across every key and survive a server restart. Run
/// [`migrate`](PgLock::migrate) once at start.
///
/// Costs: try-acquire is one round trip (`pg_try_advisory_lock` and
/// `nextval` in one statement). A waiting acquire is one round trip that
/// waits on the server with `lock_timeout` set to the wait. Release is one
/// round trip, and so is extend, which checks in `pg_locks` that the session
/// still has the lock. A transaction-pooling proxy (PgBouncer in transaction mode) would
/// hand the session to other clients between statements; the first acquire
/// probes for that and fails with [`LockError::TransactionPooler`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use pulse_core::lock::Lock;
/// use pulse_lock::{LeaseOptions, PgLock};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let locks = PgLock::connect("postgres://app@127.0.0.1/app", LeaseOptions::new())?;
/// locks.migrate().await?;
/// let lease = locks.acquire("ledger-close", Duration::from_secs(30), Duration::from_secs(5)).await?;
/// // UPDATE ledger SET ..., fence = $token WHERE id = $1 AND fence < $token
/// locks.release(lease).await?;
/// # Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[derive(Clone, Debug)]
pub struct PgLock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    options: LeaseOptions,
    probed: OnceCell<()>,
}

/// A pool connection that closes, instead of going back to the pool, unless
/// it is known to hold no lock.
struct Dedicated {
    object: Option<Object>,
}

impl Dedicated {
    /// Returns the connection to the pool.
    fn give_back(mut self) {
        drop(self.object.take());
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            // Dropping the client closes the connection, and the server then
            // frees every lock of the session.
            drop(Object::take(object));
        }
    }
}

impl std::ops::Deref for Dedicated {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &Self::Target {
        self.object.as_ref().expect("a live dedicated connection")
    }
}

/// The connection and key of a held lease.
struct PgHold {
    conn: Mutex<Option<Dedicated>>,
    hash: i64,
    key: String,
}

impl Drop for PgHold {
    fn drop(&mut self) {
        let Some(conn) = self.conn.get_mut().take() else {
            return;
        };
        let hash = self.hash;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => pulse_core::task::spawn_detached(&handle, async move {
                unlock(conn, hash).await;
            }),
            // Without a runtime the connection closes, and the server frees
            // the lock.
            Err(_) => drop(conn),
        }
    }
}

/// Unlocks on `conn` and returns whether the session held the lock. The
/// connection goes back to the pool only when the unlock succeeded.
async fn unlock(conn: Dedicated, hash: i64) -> bool {
    match conn
        .query_one("SELECT pg_advisory_unlock($1)", &[&hash])
        .await
    {
        Ok(row) => {
            let held: bool = row.get(0);
            if held {
                conn.give_back();
            }
            held
        }
        Err(err) => {
            tracing::warn!(target: "pulse_lock", error = %err, "advisory unlock failed; closing the connection, which frees the lock");
            false
        }
    }
}

impl PgLock {
    /// Creates a lease service over the database at `url`, with a pool of
    /// its own. Connects lazily.
    pub fn connect(url: &str, options: LeaseOptions) -> Result<Self, LockError> {
        let config = deadpool_postgres::Config {
            url: Some(url.to_owned()),
            ..Default::default()
        };
        let pool = config
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|err| LockError::Backend {
                operation: format!(
                    "create a PostgreSQL pool for `{}`",
                    pulse_core::error::redact_url(url)
                ),
                message: err.to_string(),
                source: Some(Box::new(err)),
            })?;
        Ok(Self::from_pool(pool, options))
    }

    /// Creates a lease service over an existing deadpool-postgres pool. Each
    /// held lease keeps one of its connections.
    pub fn from_pool(pool: Pool, options: LeaseOptions) -> Self {
        PgLock {
            inner: Arc::new(Inner {
                pool,
                options,
                probed: OnceCell::new(),
            }),
        }
    }

    /// Returns the advisory lock key of `key` in `namespace` (see the
    /// [module docs](crate#postgresql-objects)).
    ///
    /// ```
    /// use pulse_lock::PgLock;
    ///
    /// assert_eq!(PgLock::key_hash("", ""), PgLock::key_hash("", ""));
    /// assert_ne!(PgLock::key_hash("a", "b"), PgLock::key_hash("", "ab"));
    /// ```
    pub fn key_hash(namespace: &str, key: &str) -> i64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        for byte in namespace.bytes().chain([0]).chain(key.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
        hash as i64
    }

    /// Creates the sequence and the version table if they are missing.
    /// Idempotent, and safe to run from many processes at once.
    pub async fn migrate(&self) -> Result<(), LockError> {
        let mut object = self.inner.connection().await?;
        let tx = object
            .transaction()
            .await
            .map_err(|err| LockError::backend("begin the migration", err))?;
        // Serialize concurrent migrations on a fixed transaction lock.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&Self::key_hash("pulse_lock", "migrate")],
        )
        .await
        .map_err(|err| LockError::backend("lock the migration", err))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS pulse_lock_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
             CREATE SEQUENCE IF NOT EXISTS pulse_lock_fence AS bigint;",
        )
        .await
        .map_err(|err| LockError::backend("create the lock objects", err))?;
        tx.execute(
            "INSERT INTO pulse_lock_migrations (version) VALUES ($1) ON CONFLICT (version) DO NOTHING",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(|err| LockError::backend("record the lock schema version", err))?;
        tx.commit()
            .await
            .map_err(|err| LockError::backend("commit the migration", err))?;
        tracing::info!(target: "pulse_lock", version = SCHEMA_VERSION, "PostgreSQL lock objects are up to date");
        Ok(())
    }

    /// Tries once on a dedicated connection; waits on the server up to
    /// `wait` when it is not zero.
    async fn attempt(
        &self,
        key: &str,
        ttl: Duration,
        drift: Duration,
        wait: Duration,
    ) -> Result<Option<Lease>, LockError> {
        let inner = &self.inner;
        let hash = Self::key_hash(&inner.options.namespace, key);
        let conn = Dedicated {
            object: Some(inner.connection().await?),
        };
        inner.probe(&conn).await?;

        let sent_at = inner.options.clock.now();
        let token = if wait.is_zero() {
            let row = conn
                .query_one(
                    "SELECT CASE WHEN pg_try_advisory_lock($1) THEN nextval('pulse_lock_fence') END",
                    &[&hash],
                )
                .await
                .map_err(|err| LockError::backend(format!("acquire advisory lock `{key}`"), err))?;
            row.get::<_, Option<i64>>(0)
        } else {
            wait_for_lock(&conn, key, hash, wait).await?
        };
        let Some(token) = token else {
            conn.give_back();
            return Ok(None);
        };

        tracing::debug!(target: "pulse_lock", key, token, "advisory lock acquired");
        let hold = Arc::new(PgHold {
            conn: Mutex::new(Some(conn)),
            hash,
            key: key.to_owned(),
        });
        let grant = Grant {
            key: key.to_owned(),
            owner: new_owner(),
            token: Some(token as u64),
            sent_at,
            ttl,
            drift,
        };
        let lease = lease::issue(grant, &inner.options, &self.inner, hold.clone());
        let attached = lease::attached::<Arc<PgHold>>(&lease).expect("issued above");
        tokio::spawn(watch_connection(
            Arc::downgrade(&hold),
            lease.lost().clone(),
            attached.tasks.stop.clone(),
        ));
        Ok(Some(lease))
    }
}

/// Waits on the server for the lock, in one round trip, with
/// `lock_timeout` set to the wait inside a transaction.
///
/// A timed-out wait leaves the session holding nothing: the lock was never
/// granted, and the rollback ends the aborted transaction.
async fn wait_for_lock(
    conn: &Dedicated,
    key: &str,
    hash: i64,
    wait: Duration,
) -> Result<Option<i64>, LockError> {
    let timeout_ms = wait.as_millis().max(1);
    // Both values are integers, so formatting them into the text is safe; a
    // simple query sends all statements in one round trip.
    let sql = format!(
        "BEGIN; SET LOCAL lock_timeout = {timeout_ms}; SELECT pg_advisory_lock({hash}); SELECT nextval('pulse_lock_fence'); COMMIT;"
    );
    match conn.simple_query(&sql).await {
        Ok(messages) => {
            let token = messages
                .iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        row.get(0).and_then(|value| value.parse::<i64>().ok())
                    }
                    _ => None,
                })
                .last();
            Ok(token)
        }
        Err(err) => {
            let timed_out =
                err.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE);
            conn.batch_execute("ROLLBACK").await.map_err(|err| {
                LockError::backend(format!("roll back the wait for `{key}`"), err)
            })?;
            if timed_out {
                Ok(None)
            } else {
                Err(LockError::backend(
                    format!("acquire advisory lock `{key}`"),
                    err,
                ))
            }
        }
    }
}

/// Fires the lost signal when the connection closes, and unlocks once the
/// lease is lost while the connection still holds the lock.
async fn watch_connection(
    hold: Weak<PgHold>,
    lost: pulse_core::signal::Signal,
    stop: pulse_core::signal::Signal,
) {
    loop {
        tokio::select! {
            _ = stop.fired() => return,
            _ = lost.fired() => {
                let Some(hold) = hold.upgrade() else { return };
                let conn = hold.conn.lock().await.take();
                if let Some(conn) = conn {
                    unlock(conn, hold.hash).await;
                }
                return;
            }
            _ = tokio::time::sleep(CONNECTION_CHECK) => {
                let Some(hold) = hold.upgrade() else { return };
                let closed = hold.conn.lock().await.as_ref().is_none_or(|conn| conn.is_closed());
                if closed && lost.fire() {
                    tracing::warn!(target: "pulse_lock", key = %hold.key, "lease lost: the PostgreSQL connection closed");
                }
            }
        }
    }
}

impl Inner {
    async fn connection(&self) -> Result<Object, LockError> {
        self.pool.get().await.map_err(|err| LockError::Backend {
            operation: "get a PostgreSQL connection".to_owned(),
            message: err.to_string(),
            source: Some(Box::new(err)),
        })
    }

    /// Checks once per lock service that statements of one client run in one
    /// session, which a transaction-pooling proxy does not promise.
    async fn probe(&self, conn: &Dedicated) -> Result<(), LockError> {
        self.probed
            .get_or_try_init(|| async {
                let marker = new_owner();
                conn.batch_execute(&format!("SET pulse_lock.probe = '{marker}'"))
                    .await
                    .map_err(|err| LockError::backend("probe the PostgreSQL session", err))?;
                let first = conn
                    .query_one(
                        "SELECT current_setting('pulse_lock.probe', true), pg_backend_pid()",
                        &[],
                    )
                    .await
                    .map_err(|err| LockError::backend("probe the PostgreSQL session", err))?;
                let second = conn
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await
                    .map_err(|err| LockError::backend("probe the PostgreSQL session", err))?;
                conn.batch_execute("RESET pulse_lock.probe")
                    .await
                    .map_err(|err| LockError::backend("probe the PostgreSQL session", err))?;
                session_verdict(
                    &marker,
                    first.get::<_, Option<String>>(0).as_deref(),
                    first.get::<_, i32>(1),
                    second.get::<_, i32>(0),
                )
            })
            .await
            .map(|_| ())
    }
}

/// Decides from the probe whether the connection keeps one session.
fn session_verdict(
    marker: &str,
    seen: Option<&str>,
    first_pid: i32,
    second_pid: i32,
) -> Result<(), LockError> {
    if seen != Some(marker) {
        return Err(LockError::TransactionPooler {
            detail: "a session setting did not survive to the next statement".to_owned(),
        });
    }
    if first_pid != second_pid {
        return Err(LockError::TransactionPooler {
            detail: format!("two statements ran on backends {first_pid} and {second_pid}"),
        });
    }
    Ok(())
}

impl LeaseBackend for Inner {
    /// Reports the lease as renewed, because a session lock has no TTL: it
    /// stays while the connection is open, which the connection watcher
    /// checks.
    fn renew(
        self: Arc<Self>,
        _key: String,
        _owner: String,
        _ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, LockError>> {
        Box::pin(async { Ok(true) })
    }

    /// Dropping the lease drops its hold, which unlocks in the background.
    fn release_dropped(self: Arc<Self>, _key: String, _owner: String) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

impl Lock for PgLock {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> pulse_core::Result<Option<Lease>> {
        check_key(key)?;
        let drift = self.inner.options.check_ttl(ttl)?;
        Ok(self.attempt(key, ttl, drift, Duration::ZERO).await?)
    }

    async fn acquire(&self, key: &str, ttl: Duration, wait: Duration) -> pulse_core::Result<Lease> {
        check_key(key)?;
        let drift = self.inner.options.check_ttl(ttl)?;
        let wait_ms = wait.max(Duration::from_millis(1));
        self.attempt(key, ttl, drift, wait_ms)
            .await?
            .ok_or_else(|| {
                LockError::TimedOut {
                    key: key.to_owned(),
                    wait,
                }
                .into()
            })
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> pulse_core::Result<()> {
        self.inner.options.check_ttl(ttl)?;
        let Some(attached) = lease::attached::<Arc<PgHold>>(lease) else {
            return Err(LockError::not_owner(lease.key()).into());
        };
        if lease.lost().is_fired() {
            return Err(LockError::not_owner(lease.key()).into());
        }

        let sent_at = self.inner.options.clock.now();
        let hold = &attached.extra;
        let guard = hold.conn.lock().await;
        let Some(conn) = guard.as_ref() else {
            return Err(LockError::not_owner(lease.key()).into());
        };
        let held: bool = conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted \
                 AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1)",
                &[&hold.hash],
            )
            .await
            .map_err(|err| LockError::backend(format!("extend advisory lock `{}`", lease.key()), err))?
            .get(0);
        drop(guard);

        if !held {
            tracing::warn!(target: "pulse_lock", key = lease.key(), "lease extension failed: the session no longer holds the advisory lock");
            lease.lost().fire();
            return Err(LockError::not_owner(lease.key()).into());
        }
        lease::extended(lease, &attached.tasks, sent_at, ttl);
        Ok(())
    }

    async fn release(&self, mut lease: Lease) -> pulse_core::Result<()> {
        let Some(attached) = lease::attached::<Arc<PgHold>>(&lease) else {
            return Err(LockError::not_owner(lease.key()).into());
        };
        let tasks = attached.tasks.clone();
        let hold = attached.extra.clone();
        let lost = lease.lost().is_fired();
        lease::retire(&mut lease, &tasks);
        let conn = hold.conn.lock().await.take();
        let Some(conn) = conn else {
            return Err(LockError::not_owner(lease.key()).into());
        };
        if unlock(conn, hold.hash).await && !lost {
            Ok(())
        } else {
            Err(LockError::not_owner(lease.key()).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_fnv1a() {
        // FNV-1a 64 of the single zero byte.
        assert_eq!(PgLock::key_hash("", "") as u64, 0xaf63_bd4c_8601_b7df);
        assert_ne!(PgLock::key_hash("ns", "a"), PgLock::key_hash("ns", "b"));
    }

    #[test]
    fn verdict_detects_pooler() {
        assert!(session_verdict("m", Some("m"), 7, 7).is_ok());
        assert!(matches!(
            session_verdict("m", None, 7, 7),
            Err(LockError::TransactionPooler { .. })
        ));
        assert!(matches!(
            session_verdict("m", Some("m"), 7, 8),
            Err(LockError::TransactionPooler { .. })
        ));
    }
}
