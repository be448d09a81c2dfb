//! One multiplexed connection per Redis server, taken from a pool once and
//! replaced when it breaks.
//!
//! Checking a connection out of a deadpool-redis pool sends a `PING` first,
//! which would double the round trips of every lock call. So the lock keeps
//! one multiplexed connection out of the pool and shares it between callers.

use std::fmt;
use std::future::Future;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{Client, RedisError};
use deadpool_redis::{Config, Pool, Runtime};
use parking_lot::Mutex;
use pulse_core::error::redact_url;

use crate::error::LockError;

pub(crate) struct Connector {
    pool: Pool,
    /// A client for pub/sub connections, when the lock was built from a URL.
    client: Option<Client>,
    current: Mutex<Option<MultiplexedConnection>>,
    /// The server address without a password, for logs and errors.
    pub(crate) label: String,
}

impl Connector {
    pub(crate) fn from_url(url: &str) -> Result<Self, LockError> {
        let label = redact_url(url);
        let client = Client::open(url)
            .map_err(|err| LockError::backend(format!("open Redis URL `{label}`"), err))?;
        let pool = Config::from_url(url)
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|err| LockError::backend(format!("create a Redis pool for `{label}`"), err))?;
        Ok(Connector {
            pool,
            client: Some(client),
            current: Mutex::new(None),
            label,
        })
    }

    pub(crate) fn from_pool(pool: Pool, label: String) -> Self {
        Connector {
            pool,
            client: None,
            current: Mutex::new(None),
            label,
        }
    }

    /// Returns the client for pub/sub, when there is one.
    pub(crate) fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    async fn connection(&self) -> Result<MultiplexedConnection, LockError> {
        if let Some(conn) = self.current.lock().clone() {
            return Ok(conn);
        }
        let conn = self.pool.get().await.map_err(|err| LockError::Backend {
            operation: format!("connect to Redis at `{}`", self.label),
            message: err.to_string(),
            source: Some(Box::new(err)),
        })?;
        let conn = deadpool_redis::Connection::take(conn);
        *self.current.lock() = Some(conn.clone());
        tracing::debug!(target: "pulse_lock", server = %self.label, "connected to Redis");
        Ok(conn)
    }

    /// Runs one call on the shared connection. A broken connection is
    /// dropped, so the next call connects again.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation: impl FnOnce() -> String,
        call: F,
    ) -> Result<T, LockError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let conn = self.connection().await?;
        match call(conn).await {
            Ok(value) => Ok(value),
            Err(err) => {
                if err.is_connection_dropped()
                    || err.is_io_error()
                    || err.is_unrecoverable_error()
                    || err.is_timeout()
                {
                    tracing::warn!(target: "pulse_lock", server = %self.label, error = %err, "Redis connection failed; reconnecting on the next call");
                    *self.current.lock() = None;
                }
                Err(LockError::backend(
                    format!("{} on `{}`", operation(), self.label),
                    err,
                ))
            }
        }
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("server", &self.label)
            .finish_non_exhaustive()
    }
}
