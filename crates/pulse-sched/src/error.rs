//! The error type of pulse-sched.

use std::fmt;
use std::time::Duration;

use pulse_core::error::{Classify, ConfigError, Error as CoreError, ErrorKind};

/// Everything that can go wrong in pulse-sched.
///
/// Each variant carries the offending value, and its message says how to fix
/// it. [`Classify::kind`] maps it to the error kind shared by every gopulse
/// crate.
///
/// # Examples
///
/// ```
/// use pulse_sched::{Cron, SchedError};
///
/// let err = Cron::parse("0 61 * * *").unwrap_err();
/// assert!(matches!(err, SchedError::InvalidCron { field: "hour", position: 2, .. }));
/// println!("{err}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SchedError {
    /// A cron expression could not be parsed.
    InvalidCron {
        /// The expression as given.
        expr: String,
        /// The field that failed (`second`, `minute`, `hour`, `day of month`,
        /// `month`, `day of week`, `year`), or `expression` when the shape of
        /// the whole expression is wrong.
        field: &'static str,
        /// The character offset of that field in the expression.
        position: usize,
        /// What the parser said.
        reason: String,
    },
    /// A cron expression parsed, but no date can ever match it (31 February).
    NeverFires {
        /// The expression as given.
        expr: String,
    },
    /// A time zone name that the IANA database does not know.
    UnknownTimeZone {
        /// The name as given.
        name: String,
    },
    /// An interval of zero, which would fire without end.
    ZeroInterval {
        /// Where the interval came from (`@every 0s`, `Interval::every`).
        context: String,
    },
    /// A one-shot task asked for a time that has passed, on a scheduler set
    /// to reject such tasks.
    DeadlineInPast {
        /// How long ago the deadline was.
        ago: Duration,
    },
    /// A setting that cannot work.
    Config(ConfigError),
    /// The scheduler or worker was shut down.
    Closed,
    /// A job-store backend failed.
    Backend {
        /// `redis`, `postgres` or `memory`.
        backend: &'static str,
        /// What failed, without secrets.
        message: String,
        /// Whether the failure is transient.
        kind: ErrorKind,
    },
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedError::InvalidCron {
                expr,
                field,
                position,
                reason,
            } => write!(
                f,
                "invalid cron expression `{expr}`: {field} field at position {position}: {reason}"
            ),
            SchedError::NeverFires { expr } => write!(
                f,
                "cron expression `{expr}` never fires: no date matches it; check the day-of-month and month fields"
            ),
            SchedError::UnknownTimeZone { name } => write!(
                f,
                "unknown time zone `{name}`: use an IANA name such as `Europe/Berlin` or `UTC`"
            ),
            SchedError::ZeroInterval { context } => write!(
                f,
                "zero interval in `{context}`: use an interval of at least 1 ms"
            ),
            SchedError::DeadlineInPast { ago } => write!(
                f,
                "one-shot deadline passed {ago:?} ago: pass a future time, or set `PastDeadline::FireNow`"
            ),
            SchedError::Config(err) => err.fmt(f),
            SchedError::Closed => write!(f, "the scheduler was shut down; create a new one"),
            SchedError::Backend {
                backend, message, ..
            } => write!(f, "{backend} job store failed: {message}"),
        }
    }
}

impl std::error::Error for SchedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SchedError::Config(err) => Some(err),
            _ => None,
        }
    }
}

impl Classify for SchedError {
    fn kind(&self) -> ErrorKind {
        match self {
            SchedError::InvalidCron { .. }
            | SchedError::NeverFires { .. }
            | SchedError::UnknownTimeZone { .. }
            | SchedError::ZeroInterval { .. }
            | SchedError::Config(_) => ErrorKind::InvalidConfig,
            SchedError::DeadlineInPast { .. } => ErrorKind::InvalidInput,
            SchedError::Closed => ErrorKind::Closed,
            SchedError::Backend { kind, .. } => *kind,
        }
    }
}

impl From<ConfigError> for SchedError {
    fn from(err: ConfigError) -> Self {
        SchedError::Config(err)
    }
}

impl From<SchedError> for CoreError {
    fn from(err: SchedError) -> Self {
        CoreError::from_source(err)
    }
}
