//! The error type of this crate.

use std::time::Duration;

use pulse_core::error::{Classify, Error as CoreError, ErrorKind};

/// Everything that can go wrong when building or using a rate limiter.
///
/// Bad configuration is reported when the limiter is built, never by
/// admitting everything. A request that costs more than the burst is not an
/// error: its [`Decision`](pulse_core::ratelimit::Decision) is a rejection
/// with `retry_after` equal to [`Duration::MAX`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The rate was zero, negative or larger than `u32::MAX`.
    #[error("invalid rate `{0}`: use a rate of at least 1 permit per period (at most 4294967295)")]
    InvalidRate(i64),

    /// The period was zero.
    #[error(
        "invalid period `{0:?}`: use a period of at least 1 ns, such as Duration::from_secs(1)"
    )]
    InvalidPeriod(Duration),

    /// The burst was zero, negative or larger than `u32::MAX`.
    #[error("invalid burst `{0}`: use a burst of at least 1 permit (at most 4294967295)")]
    InvalidBurst(i64),

    /// The quota's derived times do not fit in 64-bit nanoseconds.
    #[error(
        "invalid quota `{rate} per {period:?}, burst {burst}`: burst × period ÷ rate exceeds 100 years; use a shorter period or a smaller burst"
    )]
    QuotaTooLong {
        /// The rate of the rejected quota.
        rate: u32,
        /// The period of the rejected quota.
        period: Duration,
        /// The burst of the rejected quota.
        burst: u32,
    },

    /// A wait was asked for more permits than the burst, which no wait can
    /// ever grant.
    #[error(
        "cost `{cost}` can never be admitted: it exceeds the burst of {burst}; raise the burst or split the request"
    )]
    CostTooLarge {
        /// The requested cost.
        cost: u32,
        /// The limiter's burst.
        burst: u32,
    },

    /// A keyed limiter setting was out of range.
    #[error("invalid {field} `{value}`: {fix}")]
    InvalidSetting {
        /// The name of the setting.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// What a valid value is.
        fix: &'static str,
    },

    /// The background thread that drops idle keys could not be started.
    #[error("failed to start the idle-key sweep of a keyed limiter: {0}")]
    Background(#[source] CoreError),

    /// The Redis server could not be reached or the script failed, and the
    /// limiter was configured to report that instead of deciding locally.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    #[error("rate limit in Redis not decided for key `{key}`: {reason}")]
    Redis {
        /// The limiter key (without the prefix).
        key: String,
        /// What failed, without the connection URL's password.
        reason: String,
    },
}

impl Classify for RateLimitError {
    fn kind(&self) -> ErrorKind {
        match self {
            RateLimitError::InvalidRate(_)
            | RateLimitError::InvalidPeriod(_)
            | RateLimitError::InvalidBurst(_)
            | RateLimitError::QuotaTooLong { .. }
            | RateLimitError::InvalidSetting { .. } => ErrorKind::InvalidConfig,
            RateLimitError::CostTooLarge { .. } => ErrorKind::InvalidInput,
            RateLimitError::Background(_) => ErrorKind::Unavailable,
            #[cfg(feature = "redis")]
            RateLimitError::Redis { .. } => ErrorKind::Unavailable,
        }
    }
}

impl From<RateLimitError> for CoreError {
    fn from(err: RateLimitError) -> Self {
        CoreError::from_source(err)
    }
}
