//! The error type of the testkit helpers.

use std::fmt;
use std::io;

use pulse_core::error::{Classify, ConfigError, ErrorKind};

/// A failure of a testkit helper: a bad setting, a server that did not
/// start, a socket or database call that failed.
///
/// Each variant names the step that failed, so a failing test shows where it
/// broke without a backtrace.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A setting was rejected before anything was started.
    Config(ConfigError),
    /// A socket, file or process call failed.
    Io {
        /// The failed step, for example "binding the proxy listener".
        action: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A child `redis-server` could not be started or did not become ready.
    RedisServer {
        /// The failure, with the last lines of the server's log when there
        /// are any.
        message: String,
    },
    /// A PostgreSQL call failed.
    Postgres {
        /// The failed step, for example "creating schema `t_1a2b`".
        action: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// A step did not finish within its bound.
    TimedOut {
        /// The step that did not finish in time.
        action: String,
    },
}

impl Error {
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn postgres(action: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Error::Postgres {
            action: action.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(err) => err.fmt(f),
            Error::Io { action, source } => write!(f, "{action} failed: {source}"),
            Error::RedisServer { message } => write!(f, "redis-server: {message}"),
            Error::Postgres { action, source } => write!(f, "{action} failed: {source}"),
            Error::TimedOut { action } => write!(f, "timed out {action}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(err) => Some(err),
            Error::Io { source, .. } => Some(source),
            Error::Postgres { source, .. } => Some(source),
            Error::RedisServer { .. } | Error::TimedOut { .. } => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error::Config(err)
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::InvalidConfig,
            Error::Io { .. } | Error::RedisServer { .. } | Error::Postgres { .. } => {
                ErrorKind::Unavailable
            }
            Error::TimedOut { .. } => ErrorKind::TimedOut,
        }
    }
}
