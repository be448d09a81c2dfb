//! A fresh PostgreSQL schema per test.
//!
//! Tests share one PostgreSQL server. [`TestSchema`] creates a schema with a
//! random name and hands out a URL whose connections use it as their
//! `search_path`. The code under test then creates its tables there without
//! knowing it runs in a test, and two tests never see each other's tables.
//!
//! ```no_run
//! # async fn run() -> Result<(), pulse_testkit::Error> {
//! let Some(url) = pulse_testkit::services::postgres_url() else { return Ok(()) };
//! let schema = pulse_testkit::pg::TestSchema::create(&url).await?;
//!
//! let client = schema.connect().await?;
//! client.batch_execute("CREATE TABLE jobs (id bigint PRIMARY KEY)").await.unwrap();
//!
//! schema.drop().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use pulse_core::error::{ConfigError, redact_url};
use tokio_postgres::{Client, Config, NoTls};

use crate::Error;

/// How long connecting to PostgreSQL may take before the helper gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A schema with a random name, created for one test.
///
/// [`drop`](TestSchema::drop) removes it with everything in it. When the
/// value is dropped without that call (a failed assertion, a panic), `Drop`
/// removes the schema from a helper thread. If that fails too, the schema
/// stays behind, and its `t_` name prefix makes it easy to find.
pub struct TestSchema {
    name: String,
    url: String,
    config: Config,
    dropped: bool,
}

impl TestSchema {
    /// Connects to `url` and creates a new schema.
    ///
    /// # Errors
    ///
    /// - [`Error::Config`] when `url` is not a `postgres://` or
    ///   `postgresql://` URL that tokio-postgres accepts;
    /// - [`Error::Postgres`] when connecting or `CREATE SCHEMA` fails.
    pub async fn create(url: &str) -> Result<TestSchema, Error> {
        let mut config = parse_url(url)?;
        config.connect_timeout(CONNECT_TIMEOUT);
        let name = format!("t_{:016x}", crate::random_u64());

        let client = connect(&config, &name).await?;
        client
            .batch_execute(&format!("CREATE SCHEMA \"{name}\""))
            .await
            .map_err(|err| Error::postgres(format!("creating schema `{name}`"), err))?;
        tracing::debug!(target: "pulse_testkit", schema = %name, "created test schema");

        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}options=-csearch_path%3D{name}");
        config.options(format!("-csearch_path={name}"));
        Ok(TestSchema {
            name,
            url,
            config,
            dropped: false,
        })
    }

    /// Returns the schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns a URL whose connections use this schema as their
    /// `search_path`, through the `options=-csearch_path=<schema>` parameter.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens a client whose `search_path` is this schema. Its connection runs
    /// on a task of the current runtime and ends when the client is dropped.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Postgres`] when connecting fails.
    pub async fn connect(&self) -> Result<Client, Error> {
        connect(&self.config, &self.name).await
    }

    /// Drops the schema and everything in it.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Postgres`] when connecting or `DROP SCHEMA` fails;
    /// the schema then stays behind.
    pub async fn drop(mut self) -> Result<(), Error> {
        self.dropped = true;
        drop_schema(&self.config, &self.name).await
    }
}

impl fmt::Debug for TestSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestSchema")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }

        // `Drop` cannot await, and blocking inside the test's runtime is not
        // allowed, so a separate thread with its own runtime drops the
        // schema. The thread is joined so the schema is gone when the test
        // ends.
        let config = self.config.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| Error::io("building the schema cleanup runtime", err))?;
            runtime.block_on(drop_schema(&config, &name))
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(
                target: "pulse_testkit",
                schema = %self.name,
                error = %err,
                "test schema left behind"
            ),
            Err(_) => tracing::warn!(
                target: "pulse_testkit",
                schema = %self.name,
                "schema cleanup thread panicked; test schema left behind"
            ),
        }
    }
}

fn parse_url(url: &str) -> Result<Config, Error> {
    let shown = redact_url(url);
    let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !scheme_ok {
        return Err(ConfigError::new(
            "postgres url",
            shown,
            "use a URL such as `postgres://postgres@127.0.0.1:5432/test`",
        )
        .into());
    }
    Config::from_str(url).map_err(|err| {
        ConfigError::new(
            "postgres url",
            shown,
            format!("tokio-postgres cannot parse it ({err})"),
        )
        .into()
    })
}

async fn connect(config: &Config, schema: &str) -> Result<Client, Error> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|err| Error::postgres(format!("connecting for schema `{schema}`"), err))?;

    // The connection task ends by itself when the client is dropped.
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(target: "pulse_testkit", error = %err, "test connection ended");
        }
    });
    Ok(client)
}

async fn drop_schema(config: &Config, name: &str) -> Result<(), Error> {
    let client = connect(config, name).await?;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
        .await
        .map_err(|err| Error::postgres(format!("dropping schema `{name}`"), err))?;
    tracing::debug!(target: "pulse_testkit", schema = %name, "dropped test schema");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_postgres_url_is_rejected() {
        let err = parse_url("mysql://root:secret@127.0.0.1/test").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("mysql://root:***@127.0.0.1/test"),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn unparsable_url_is_rejected() {
        let err = parse_url("postgres://u@127.0.0.1:notaport/test").unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains("notaport"), "{err}");
    }
}
