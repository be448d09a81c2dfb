//! Segment ranges reserved with one PostgreSQL statement.

use std::sync::Arc;

use tokio::sync::OnceCell;
use tokio_postgres::{Client, Statement};

use crate::error::{IdError, Result};
use crate::segment::SegmentSource;

/// Reserves a range in one statement and one round trip: the row of the
/// name is created on first use and moved forward by `count` after.
const RESERVE_SQL: &str = "\
INSERT INTO pulse_id_segments AS s (name, next_id) VALUES ($1::text, 1 + $2::bigint) \
ON CONFLICT (name) DO UPDATE SET next_id = s.next_id + $2::bigint \
RETURNING next_id - $2::bigint";

/// A [`SegmentSource`] over PostgreSQL: one `INSERT … ON CONFLICT DO UPDATE
/// … RETURNING` per range, an upsert form of `UPDATE … RETURNING` that also
/// creates the row of a new name.
///
/// The table `pulse_id_segments (name text primary key, next_id bigint)`
/// holds the next free ID of each segment. Create it with
/// [`migrate`](crate::lease::postgres::migrate). The statement is prepared
/// once per source, so each range costs one round trip.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use pulse_id::{SegmentAllocator, SegmentConfig};
/// use pulse_id::segment::postgres::PgSegmentSource;
///
/// # async fn run(client: Arc<tokio_postgres::Client>) -> pulse_id::Result<()> {
/// pulse_id::lease::postgres::migrate(&client).await?;
/// let source = PgSegmentSource::new(client);
/// let ids = SegmentAllocator::start(source, "orders", SegmentConfig::default()).await?;
/// let id = ids.next_id_async().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PgSegmentSource {
    client: Arc<Client>,
    statement: OnceCell<Statement>,
}

impl PgSegmentSource {
    /// Uses the caller's client.
    pub fn new(client: Arc<Client>) -> Self {
        PgSegmentSource {
            client,
            statement: OnceCell::new(),
        }
    }

    /// Connects to `url` without TLS and spawns the connection on the
    /// current tokio runtime.
    pub async fn connect(url: &str) -> Result<Self> {
        Ok(Self::new(crate::lease::postgres::connect(url).await?))
    }
}

impl SegmentSource for PgSegmentSource {
    async fn reserve(&self, name: &str, count: u64) -> Result<u64> {
        let count = i64::try_from(count).map_err(|_| IdError::Protocol {
            backend: "postgres",
            operation: "reserve a segment range",
            message: format!("range size {count} does not fit a bigint"),
        })?;
        let statement = self
            .statement
            .get_or_try_init(|| self.client.prepare(RESERVE_SQL))
            .await
            .map_err(|err| {
                crate::lease::postgres::backend_error("prepare the reserve statement", &err)
            })?;
        let row = self
            .client
            .query_one(statement, &[&name, &count])
            .await
            .map_err(|err| {
                crate::lease::postgres::backend_error("reserve a segment range", &err)
            })?;
        let first: i64 = row.get(0);
        u64::try_from(first).map_err(|_| IdError::Protocol {
            backend: "postgres",
            operation: "reserve a segment range",
            message: format!("negative first ID {first}"),
        })
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
