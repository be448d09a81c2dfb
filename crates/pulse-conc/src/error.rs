//! The error type of this crate and the wrapper for errors of the calls it
//! guards.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pulse_core::error::{Classify, ConfigError, ErrorKind};

/// A failure in a pool, group, single-flight, breaker, bulkhead or
/// retry, as opposed to an error of the user's own call (see [`CallError`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A constructor got a value it cannot work with. Boxed, so that the
    /// error stays small on the hot paths that return it.
    InvalidConfig(Box<ConfigError>),
    /// A non-blocking submit or spawn found the queue or the concurrency
    /// limit full.
    Full {
        /// The component that was full: `"worker pool queue"`, `"task group"`, ….
        what: &'static str,
        /// Its capacity.
        capacity: usize,
    },
    /// The pool or group was shut down before the work could run.
    Closed {
        /// The component that was closed.
        what: &'static str,
    },
    /// The work panicked; the message is the panic payload when it was a
    /// string.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The work was cancelled before it finished: a shutdown that cancels,
    /// or a task group whose sibling failed.
    Cancelled,
    /// The circuit breaker rejected the call because it is open, forced open,
    /// or half-open with all trial calls taken.
    CircuitOpen {
        /// The breaker's name.
        name: Arc<str>,
        /// How long until the breaker lets trial calls through, when known.
        retry_after: Option<Duration>,
    },
    /// The bulkhead had no free slot within its maximum wait, or its wait
    /// queue was full.
    BulkheadFull {
        /// The bulkhead's name.
        name: Arc<str>,
        /// Its concurrency limit.
        max_concurrent: usize,
    },
    /// The call did not finish within its time limit and was dropped.
    TimedOut {
        /// The limit that passed.
        after: Duration,
    },
}

impl Error {
    pub(crate) fn config(
        field: &'static str,
        value: impl fmt::Display,
        fix: &'static str,
    ) -> Error {
        Error::InvalidConfig(Box::new(ConfigError::new(field, value, fix)))
    }

    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Error {
        Error::Panicked {
            message: panic_message(payload.as_ref()),
        }
    }
}

/// Returns the text of a panic payload (`&str` or `String`), or a fixed text
/// for any other payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(err) => err.fmt(f),
            Error::Full { what, capacity } => write!(
                f,
                "{what} is full ({capacity}); wait with the blocking call or raise the capacity"
            ),
            Error::Closed { what } => write!(f, "{what} is shut down"),
            Error::Panicked { message } => write!(f, "task panicked: {message}"),
            Error::Cancelled => f.write_str("task was cancelled before it finished"),
            Error::CircuitOpen {
                name,
                retry_after: Some(after),
            } => write!(
                f,
                "circuit breaker `{name}` is open; trial calls start in {after:?}"
            ),
            Error::CircuitOpen { name, .. } => write!(f, "circuit breaker `{name}` is open"),
            Error::BulkheadFull {
                name,
                max_concurrent,
            } => write!(
                f,
                "bulkhead `{name}` is full ({max_concurrent} calls running) and no slot freed up in time"
            ),
            Error::TimedOut { after } => write!(f, "call timed out after {after:?}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidConfig(err) => Some(&**err),
            _ => None,
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Error::Full { .. } => ErrorKind::WouldBlock,
            Error::Closed { .. } => ErrorKind::Closed,
            Error::Panicked { .. } | Error::Cancelled => ErrorKind::Other,
            Error::CircuitOpen { .. } | Error::BulkheadFull { .. } => ErrorKind::Unavailable,
            Error::TimedOut { .. } => ErrorKind::TimedOut,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error::InvalidConfig(Box::new(err))
    }
}

impl From<Error> for pulse_core::Error {
    fn from(err: Error) -> Self {
        pulse_core::Error::from_source(err)
    }
}

/// The result of a guarded call: either the guard stopped it, or the call
/// itself failed.
///
/// # Examples
///
/// ```
/// use pulse_conc::{CallError, Error};
///
/// let err: CallError<std::io::Error> = CallError::Rejected(Error::Cancelled);
/// assert!(err.is_rejected());
/// assert!(err.into_inner().is_none());
/// ```
#[derive(Debug)]
pub enum CallError<E> {
    /// The guard did not let the call run, or stopped it: the circuit is
    /// open, the bulkhead is full, the time limit passed.
    Rejected(Error),
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// Returns whether the guard stopped the call.
    pub fn is_rejected(&self) -> bool {
        matches!(self, CallError::Rejected(_))
    }

    /// Returns the call's own error, if it was one.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(err) => Some(err),
            CallError::Rejected(_) => None,
        }
    }

    /// Returns the guard's error, if it was one.
    pub fn rejection(&self) -> Option<&Error> {
        match self {
            CallError::Rejected(err) => Some(err),
            CallError::Inner(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(err) => err.fmt(f),
            CallError::Inner(err) => err.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(err) => Some(err),
            CallError::Inner(err) => Some(err),
        }
    }
}

impl<E> From<Error> for CallError<E> {
    fn from(err: Error) -> Self {
        CallError::Rejected(err)
    }
}
