use std::time::Duration;

use deadpool_postgres::{Config, Pool, Runtime};
use pulse_core::clock::WallTime;
use pulse_core::error::{Error, ErrorKind, Result, redact_url};
use pulse_core::sched::{ClaimedJob, DeadJob, JobStore, NewJob};
use tokio_postgres::NoTls;

use super::stale_claim;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE IF NOT EXISTS pulse_sched_jobs (
    queue      TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    payload    BYTEA   NOT NULL,
    run_at     BIGINT  NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    state      TEXT    NOT NULL DEFAULT 'pending',
    token      BIGINT  NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (queue, id)
);
CREATE INDEX IF NOT EXISTS pulse_sched_jobs_due
    ON pulse_sched_jobs (queue, run_at) WHERE state <> 'dead';
"#];

/// A job store in PostgreSQL.
///
/// # Tables (schema version 1)
///
/// [`migrate`](PgJobStore::migrate) creates them, idempotently, in the
/// connection's schema, and records the version in
/// `pulse_sched_schema(version)`:
///
/// | column of `pulse_sched_jobs` | meaning |
/// | --- | --- |
/// | `queue`, `id` | primary key: ids are unique per queue |
/// | `payload` | the job's bytes |
/// | `run_at` | ms since the epoch: when it is due, or when its claim's lease ends |
/// | `attempts` | claims so far |
/// | `state` | `pending`, `claimed` or `dead` |
/// | `token` | bumped by each claim; settling checks it |
/// | `last_error` | the last failure |
///
/// A claim is one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)`, so
/// concurrent workers never wait for each other or take the same job;
/// every other call is one statement.
///
/// # Examples
///
/// ```no_run
/// use pulse_sched::store::PgJobStore;
///
/// # async fn run() -> pulse_core::Result<()> {
/// let store = PgJobStore::from_url("postgres://app@127.0.0.1/app", "emails")?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgJobStore {
    pool: Pool,
    queue: String,
}

impl std::fmt::Debug for PgJobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJobStore")
            .field("queue", &self.queue)
            .finish()
    }
}

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    tracing::warn!(target: "pulse_sched", error = %err, "postgres job store call failed");
    Error::with_source(
        ErrorKind::Unavailable,
        "postgres job store call failed",
        err,
    )
}

impl PgJobStore {
    /// The schema version that [`migrate`](PgJobStore::migrate) brings a
    /// database to.
    pub const SCHEMA_VERSION: i32 = 1;

    /// Uses the caller's pool for the queue named `queue`.
    pub fn new(pool: Pool, queue: &str) -> Self {
        PgJobStore {
            pool,
            queue: queue.to_owned(),
        }
    }

    /// Opens a pool to `url` (without TLS) for the queue named `queue`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] for a URL the client cannot use.
    pub fn from_url(url: &str, queue: &str) -> Result<Self> {
        let config = Config {
            url: Some(url.to_owned()),
            ..Config::default()
        };
        let pool = config
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|err| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!("postgres URL `{}` is not usable: {err}", redact_url(url)),
                )
            })?;
        Ok(Self::new(pool, queue))
    }

    /// Creates or upgrades the tables to [`SCHEMA_VERSION`](PgJobStore::SCHEMA_VERSION). Safe to call at
    /// every start and from several processes at once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when the database fails.
    pub async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Serialises concurrent migrations of one database.
        tx.execute("SELECT pg_advisory_xact_lock(7423110500)", &[])
            .await
            .map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS pulse_sched_schema (version INTEGER NOT NULL)",
        )
        .await
        .map_err(backend)?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM pulse_sched_schema",
                &[],
            )
            .await
            .map_err(backend)?
            .get(0);
        for (index, step) in MIGRATIONS.iter().enumerate() {
            let version = index as i32 + 1;
            if version > current {
                tx.batch_execute(step).await.map_err(backend)?;
                tx.execute(
                    "INSERT INTO pulse_sched_schema (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(backend)?;
                tracing::info!(target: "pulse_sched", version, "job store schema migrated");
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(|err| {
            tracing::warn!(target: "pulse_sched", error = %err, "postgres connection failed");
            Error::new(
                ErrorKind::Unavailable,
                format!("postgres job store: no connection: {err}"),
            )
        })
    }

    async fn settle(&self, job: &ClaimedJob, sql: &str, run_at: i64, error: &str) -> Result<()> {
        let token: i64 = job.token.parse().map_err(|_| stale_claim(&job.id))?;
        let client = self.client().await?;
        let rows = client
            .execute(sql, &[&self.queue, &job.id, &token, &run_at, &error])
            .await
            .map_err(backend)?;
        if rows == 1 {
            Ok(())
        } else {
            Err(stale_claim(&job.id))
        }
    }
}

fn millis(at: WallTime) -> i64 {
    i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
}

impl JobStore for PgJobStore {
    async fn push(&self, job: NewJob) -> Result<bool> {
        let client = self.client().await?;
        let rows = client
            .execute(
                "INSERT INTO pulse_sched_jobs (queue, id, payload, run_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (queue, id) DO NOTHING",
                &[
                    &self.queue,
                    &job.id,
                    &job.payload.as_ref(),
                    &millis(job.run_at),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(rows == 1)
    }

    async fn claim(&self, now: WallTime, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        let client = self.client().await?;
        let now_ms = millis(now);
        let until = now_ms.saturating_add(lease.as_millis() as i64);
        let limit = max as i64;
        let rows = client
            .query(
                "UPDATE pulse_sched_jobs j \
                 SET state = 'claimed', attempts = j.attempts + 1, token = j.token + 1, run_at = $3 \
                 FROM (SELECT queue, id FROM pulse_sched_jobs \
                       WHERE queue = $1 AND state <> 'dead' AND run_at <= $2 \
                       ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED) due \
                 WHERE j.queue = due.queue AND j.id = due.id \
                 RETURNING j.id, j.payload, j.attempts, j.token",
                &[&self.queue, &now_ms, &until, &limit],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| ClaimedJob {
                id: row.get(0),
                payload: bytes::Bytes::from(row.get::<_, Vec<u8>>(1)),
                attempt: row.get::<_, i32>(2) as u32,
                token: row.get::<_, i64>(3).to_string(),
            })
            .collect())
    }

    async fn ack(&self, job: &ClaimedJob) -> Result<()> {
        self.settle(
            job,
            "DELETE FROM pulse_sched_jobs WHERE queue = $1 AND id = $2 AND token = $3 \
             AND state = 'claimed' AND $4::BIGINT IS NOT NULL AND $5::TEXT IS NOT NULL",
            0,
            "",
        )
        .await
    }

    async fn retry(&self, job: &ClaimedJob, run_at: WallTime, error: &str) -> Result<()> {
        self.settle(
            job,
            "UPDATE pulse_sched_jobs SET state = 'pending', run_at = $4, last_error = $5 \
             WHERE queue = $1 AND id = $2 AND token = $3 AND state = 'claimed'",
            millis(run_at),
            error,
        )
        .await
    }

    async fn dead_letter(&self, job: &ClaimedJob, error: &str) -> Result<()> {
        self.settle(
            job,
            "UPDATE pulse_sched_jobs SET state = 'dead', last_error = $5 \
             WHERE queue = $1 AND id = $2 AND token = $3 AND state = 'claimed' AND $4::BIGINT IS NOT NULL",
            0,
            error,
        )
        .await
    }

    async fn cancel(&self, id: &str) -> Result<bool> {
        let client = self.client().await?;
        let rows = client
            .execute(
                "DELETE FROM pulse_sched_jobs WHERE queue = $1 AND id = $2 AND state = 'pending'",
                &[&self.queue, &id],
            )
            .await
            .map_err(backend)?;
        Ok(rows == 1)
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadJob>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, payload, attempts, COALESCE(last_error, '') FROM pulse_sched_jobs \
                 WHERE queue = $1 AND state = 'dead' ORDER BY id LIMIT $2",
                &[&self.queue, &(max as i64)],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| DeadJob {
                id: row.get(0),
                payload: bytes::Bytes::from(row.get::<_, Vec<u8>>(1)),
                attempts: row.get::<_, i32>(2) as u32,
                error: row.get(3),
            })
            .collect())
    }
}
