//! Worker-id leases and segment counters kept in PostgreSQL.
//!
//! # Tables
//!
//! [`migrate`] creates them, idempotently, and records the version in
//! `pulse_id_migrations`:
//!
//! | table | columns | role |
//! | --- | --- | --- |
//! | `pulse_id_migrations` | `version integer primary key`, `applied_at timestamptz` | applied layout versions |
//! | `pulse_id_workers` | `namespace text`, `worker_id integer`, `owner text`, `expires_at_ms bigint`; key (`namespace`, `worker_id`) | one row per worker id of a pool |
//! | `pulse_id_segments` | `name text primary key`, `next_id bigint` | the next free ID of each segment |
//!
//! Expiries are in the database server's clock (`clock_timestamp()`), in ms
//! since the Unix epoch. Rows are never deleted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls, Statement};

use crate::error::{IdError, Result};
use crate::lease::{WorkerLease, WorkerLeases, check_owner, millis};

/// The layout version [`migrate`] brings a schema to.
pub const SCHEMA_VERSION: i32 = 1;

const MIGRATE_V1: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(7254039117024395601);
CREATE TABLE IF NOT EXISTS pulse_id_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pulse_id_workers (
    namespace text NOT NULL,
    worker_id integer NOT NULL,
    owner text NOT NULL DEFAULT '',
    expires_at_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, worker_id)
);
CREATE TABLE IF NOT EXISTS pulse_id_segments (
    name text PRIMARY KEY,
    next_id bigint NOT NULL
);
INSERT INTO pulse_id_migrations (version) VALUES (1) ON CONFLICT DO NOTHING;
COMMIT;
";

const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Creates the tables of this crate in the connection's current schema, if
/// they are missing. Safe to run at every start and from several processes
/// at once (an advisory lock serialises them).
pub async fn migrate(client: &Client) -> Result<()> {
    client
        .batch_execute(MIGRATE_V1)
        .await
        .map_err(|err| backend_error("migrate the pulse_id tables", &err))?;
    tracing::debug!(target: "pulse_id", version = SCHEMA_VERSION, "pulse_id tables migrated");
    Ok(())
}

/// Worker-id leases in the `pulse_id_workers` table.
///
/// Acquire, renew and release are one prepared statement each, so one round
/// trip after the first use (which prepares the statements and creates the
/// pool's rows once).
///
/// # Examples
///
/// ```no_run
/// use pulse_id::{Layout, LeasedSnowflake, LeasedSnowflakeConfig, Snowflake};
/// use pulse_id::lease::postgres::{PgWorkerLeases, migrate};
///
/// # async fn run() -> pulse_id::Result<()> {
/// let leases = PgWorkerLeases::connect("postgres://app@127.0.0.1/app", "orders-service").await?;
/// migrate(leases.client()).await?;
/// let ids = LeasedSnowflake::start(
///     leases,
///     Snowflake::builder(Layout::twitter()),
///     LeasedSnowflakeConfig::default(),
/// )
/// .await?;
/// let id = ids.next_id()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PgWorkerLeases {
    client: Arc<Client>,
    namespace: String,
    pool_rows: OnceCell<u64>,
    statements: OnceCell<Statements>,
}

#[derive(Debug)]
struct Statements {
    acquire: Statement,
    renew: Statement,
    release: Statement,
}

impl PgWorkerLeases {
    /// Uses the caller's client for the worker ids of `namespace`.
    pub fn new(client: Arc<Client>, namespace: impl Into<String>) -> Self {
        PgWorkerLeases {
            client,
            namespace: namespace.into(),
            pool_rows: OnceCell::new(),
            statements: OnceCell::new(),
        }
    }

    /// Connects to `url` without TLS and spawns the connection on the
    /// current tokio runtime.
    pub async fn connect(url: &str, namespace: impl Into<String>) -> Result<Self> {
        Ok(Self::new(connect(url).await?, namespace))
    }

    /// Returns the client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn statements(&self) -> Result<&Statements> {
        self.statements
            .get_or_try_init(|| async {
                let acquire = self
                    .client
                    .prepare(&format!(
                        "WITH clock AS (SELECT {NOW_MS} AS now_ms), \
                         candidate AS ( \
                           SELECT w.worker_id, w.expires_at_ms AS previous \
                           FROM pulse_id_workers w, clock \
                           WHERE w.namespace = $1 AND w.worker_id < $4 AND w.expires_at_ms <= clock.now_ms \
                           ORDER BY (w.worker_id + $5) % $4 \
                           LIMIT 1 FOR UPDATE OF w SKIP LOCKED) \
                         UPDATE pulse_id_workers w \
                         SET owner = $2, expires_at_ms = clock.now_ms + $3 \
                         FROM candidate, clock \
                         WHERE w.namespace = $1 AND w.worker_id = candidate.worker_id \
                         RETURNING w.worker_id, w.expires_at_ms, candidate.previous"
                    ))
                    .await?;
                let renew = self
                    .client
                    .prepare(&format!(
                        "UPDATE pulse_id_workers SET expires_at_ms = {NOW_MS} + $4 \
                         WHERE namespace = $1 AND worker_id = $2 AND owner = $3 \
                           AND expires_at_ms > {NOW_MS} \
                         RETURNING expires_at_ms"
                    ))
                    .await?;
                let release = self
                    .client
                    .prepare(&format!(
                        "UPDATE pulse_id_workers \
                         SET owner = '', expires_at_ms = LEAST(expires_at_ms, {NOW_MS}) \
                         WHERE namespace = $1 AND worker_id = $2 AND owner = $3"
                    ))
                    .await?;
                Ok(Statements {
                    acquire,
                    renew,
                    release,
                })
            })
            .await
            .map_err(|err: tokio_postgres::Error| backend_error("prepare the lease statements", &err))
    }

    /// Creates the rows of worker ids `0..pool_size`, once per pool size.
    async fn ensure_pool(&self, pool_size: i32) -> Result<()> {
        if self.pool_rows.get() == Some(&(pool_size as u64)) {
            return Ok(());
        }
        self.client
            .execute(
                "INSERT INTO pulse_id_workers (namespace, worker_id) \
                 SELECT $1, g FROM generate_series(0, $2 - 1) AS g \
                 ON CONFLICT DO NOTHING",
                &[&self.namespace, &pool_size],
            )
            .await
            .map_err(|err| backend_error("create the worker-id rows", &err))?;
        let _ = self.pool_rows.set(pool_size as u64);
        Ok(())
    }
}

impl WorkerLeases for PgWorkerLeases {
    async fn acquire(&self, owner: &str, pool_size: u64, ttl: Duration) -> Result<WorkerLease> {
        check_owner(owner)?;
        let pool = i32::try_from(pool_size).map_err(|_| IdError::Protocol {
            backend: "postgres",
            operation: "acquire a worker id",
            message: format!("pool size {pool_size} does not fit an integer"),
        })?;
        self.ensure_pool(pool).await?;
        let statements = self.statements().await?;

        let ttl_ms = i64::try_from(millis(ttl)).unwrap_or(i64::MAX);
        let start = i32::try_from(rand::random::<u32>() % pool.max(1) as u32).unwrap_or(0);
        let row = self
            .client
            .query_opt(
                &statements.acquire,
                &[&self.namespace, &owner, &ttl_ms, &pool, &start],
            )
            .await
            .map_err(|err| backend_error("acquire a worker id", &err))?;
        let Some(row) = row else {
            return Err(IdError::NoFreeWorkerId {
                namespace: self.namespace.clone(),
                pool_size,
            });
        };

        let worker_id: i32 = row.get(0);
        let expires_at_ms: i64 = row.get(1);
        let previous: i64 = row.get(2);
        Ok(WorkerLease {
            worker_id: u64::try_from(worker_id).unwrap_or(0),
            owner: owner.to_owned(),
            expires_at_ms: u64::try_from(expires_at_ms).unwrap_or(0),
            previous_expiry_ms: u64::try_from(previous).unwrap_or(0),
        })
    }

    async fn renew(&self, lease: &WorkerLease, ttl: Duration) -> Result<Option<u64>> {
        let statements = self.statements().await?;
        let worker_id = i32::try_from(lease.worker_id).unwrap_or(i32::MAX);
        let ttl_ms = i64::try_from(millis(ttl)).unwrap_or(i64::MAX);
        let row = self
            .client
            .query_opt(
                &statements.renew,
                &[&self.namespace, &worker_id, &lease.owner, &ttl_ms],
            )
            .await
            .map_err(|err| backend_error("renew a worker-id lease", &err))?;
        Ok(row.map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
    }

    async fn release(&self, lease: &WorkerLease) -> Result<()> {
        let statements = self.statements().await?;
        let worker_id = i32::try_from(lease.worker_id).unwrap_or(i32::MAX);
        self.client
            .execute(
                &statements.release,
                &[&self.namespace, &worker_id, &lease.owner],
            )
            .await
            .map_err(|err| backend_error("release a worker-id lease", &err))?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

/// Connects without TLS and drives the connection on the current runtime.
pub(crate) async fn connect(url: &str) -> Result<Arc<Client>> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|err| IdError::Backend {
                backend: "postgres",
                operation: "connect",
                message: format!("{err} (url {})", pulse_core::error::redact_url(url)),
            })?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(target: "pulse_id", error = %err, "postgres connection closed with an error");
        }
    });
    Ok(Arc::new(client))
}

pub(crate) fn backend_error(operation: &'static str, err: &tokio_postgres::Error) -> IdError {
    // The database's own message is more specific than the driver's summary.
    let message = match err.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => err.to_string(),
    };
    IdError::Backend {
        backend: "postgres",
        operation,
        message,
    }
}
