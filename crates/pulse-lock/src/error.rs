//! The error type of pulse-lock.

use std::time::Duration;

use pulse_core::error::{Classify, ErrorKind};

/// Everything that can go wrong when taking, extending or releasing a lock.
///
/// Each variant carries the value that caused it. [`Classify::kind`] maps it
/// to the shared [`ErrorKind`], and it converts into [`pulse_core::Error`] for
/// the [`Lock`](pulse_core::lock::Lock) trait, which keeps it as the source.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::error::{Classify, ErrorKind};
/// use pulse_lock::LockError;
///
/// let err = LockError::TtlBelowDrift { ttl: Duration::from_millis(5), drift: Duration::from_millis(10) };
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// assert!(err.to_string().contains("5ms"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The key was empty.
    #[error("invalid lock key ``: use a non-empty key")]
    EmptyKey,

    /// The TTL was zero.
    #[error("invalid TTL `0s`: use a TTL of at least a few milliseconds")]
    ZeroTtl,

    /// The TTL was not longer than the drift margin, so the lease would be
    /// lost before it was returned.
    #[error(
        "invalid TTL `{ttl:?}`: it must be longer than the drift margin `{drift:?}`; raise the TTL or lower the margin"
    )]
    TtlBelowDrift {
        /// The requested TTL.
        ttl: Duration,
        /// The drift margin in force.
        drift: Duration,
    },

    /// A semaphore request asked for zero permits or for more permits than
    /// the semaphore has, so it could never be granted.
    #[error("invalid permit count `{requested}`: request between 1 and {capacity} permits")]
    InvalidPermits {
        /// The number of permits requested.
        requested: u32,
        /// The semaphore's capacity.
        capacity: u32,
    },

    /// A Redlock node list was empty or named one server twice.
    #[error("invalid Redlock node list `{nodes}`: {fix}")]
    InvalidNodes {
        /// The node addresses, passwords removed.
        nodes: String,
        /// A description of a valid list.
        fix: &'static str,
    },

    /// Another setting was invalid.
    #[error(transparent)]
    Config(#[from] pulse_core::error::ConfigError),

    /// The lock stayed busy for the whole wait.
    #[error("lock `{key}` not acquired within {wait:?}: it is held by another owner")]
    TimedOut {
        /// The lock key.
        key: String,
        /// How long the call waited.
        wait: Duration,
    },

    /// The lease expired or passed to another holder; nothing was changed.
    #[error("lease on `{key}` is no longer held by this owner; acquire the lock again")]
    NotOwner {
        /// The lock key.
        key: String,
    },

    /// Redlock reached fewer nodes than a strict majority within the
    /// validity time.
    #[error(
        "Redlock on `{key}` got {acquired} of {nodes} nodes within the validity time; {needed} are needed"
    )]
    NoQuorum {
        /// The lock key.
        key: String,
        /// Nodes that granted the lock.
        acquired: usize,
        /// Nodes in the cluster.
        nodes: usize,
        /// The strict majority.
        needed: usize,
    },

    /// The server in front of PostgreSQL pools connections per transaction,
    /// so a session lock would not stay with its holder.
    #[error(
        "session advisory locks need a session: {detail}; connect to PostgreSQL directly or through a session-mode pool"
    )]
    TransactionPooler {
        /// The probe's finding.
        detail: String,
    },

    /// The backend failed or could not be reached.
    #[error("{operation} failed: {message}")]
    Backend {
        /// The failed operation, such as ``acquire lock `jobs:7` ``.
        operation: String,
        /// The driver's message.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The lock client was shut down.
    #[error("lock client is closed")]
    Closed,
}

impl LockError {
    /// Wraps a driver error.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    pub(crate) fn backend<E>(operation: impl Into<String>, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        LockError::Backend {
            operation: operation.into(),
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn not_owner(key: &str) -> Self {
        LockError::NotOwner {
            key: key.to_owned(),
        }
    }
}

impl Classify for LockError {
    fn kind(&self) -> ErrorKind {
        match self {
            LockError::EmptyKey
            | LockError::ZeroTtl
            | LockError::TtlBelowDrift { .. }
            | LockError::InvalidPermits { .. } => ErrorKind::InvalidInput,
            LockError::InvalidNodes { .. }
            | LockError::Config(_)
            | LockError::TransactionPooler { .. } => ErrorKind::InvalidConfig,
            LockError::TimedOut { .. } => ErrorKind::TimedOut,
            LockError::NotOwner { .. } => ErrorKind::NotOwner,
            LockError::NoQuorum { .. } | LockError::Backend { .. } => ErrorKind::Unavailable,
            LockError::Closed => ErrorKind::Closed,
        }
    }
}

impl From<LockError> for pulse_core::Error {
    fn from(err: LockError) -> Self {
        pulse_core::Error::from_source(err)
    }
}

/// Checks a lock key.
pub(crate) fn check_key(key: &str) -> Result<(), LockError> {
    if key.is_empty() {
        return Err(LockError::EmptyKey);
    }
    Ok(())
}
