//! Error kinds shared by every gopulse crate.
//!
//! Each crate has its own error enum with the details of its domain. All of
//! them report an [`ErrorKind`] through [`Classify`], so a caller can handle
//! "the backend is down" or "the configuration is invalid" the same way
//! whichever primitive raised it. The traits of this crate return [`Error`],
//! which keeps the crate's own error as its [`source`](std::error::Error::source).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

/// The broad category of a failure, the same across all gopulse crates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A constructor or builder got a value it cannot work with. Fix the
    /// configuration; retrying does not help.
    InvalidConfig,
    /// A call got an argument it cannot accept (an empty key, a payload over
    /// the maximum). Fix the call; retrying does not help.
    InvalidInput,
    /// The backend could not be reached or failed. Retrying later may help.
    Unavailable,
    /// The operation did not finish within its deadline.
    TimedOut,
    /// A non-blocking call could not proceed now without waiting.
    WouldBlock,
    /// The caller no longer owns what it tried to use: a lease expired or
    /// passed to another holder, or a message was already acknowledged.
    NotOwner,
    /// The object was closed or shut down.
    Closed,
    /// The clock moved in a way the operation cannot tolerate, such as a
    /// wall-clock step back larger than the configured tolerance.
    ClockFault,
    /// A stored value could not be encoded or decoded.
    Codec,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Returns whether retrying the same call later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable
                | ErrorKind::TimedOut
                | ErrorKind::WouldBlock
                | ErrorKind::ClockFault
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidConfig => "invalid configuration",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unavailable => "backend unavailable",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::WouldBlock => "would block",
            ErrorKind::NotOwner => "not the owner",
            ErrorKind::Closed => "closed",
            ErrorKind::ClockFault => "clock fault",
            ErrorKind::Codec => "codec error",
            ErrorKind::Other => "error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reports the [`ErrorKind`] of an error. Every gopulse error type
/// implements it.
pub trait Classify {
    /// Returns the broad category of this error.
    fn kind(&self) -> ErrorKind;
}

/// An invalid configuration value: which setting, what it was, and how to fix
/// it.
///
/// # Examples
///
/// ```
/// use pulse_core::error::ConfigError;
///
/// let err = ConfigError::new("ttl", "0ns", "use a TTL of at least 1 ms");
/// assert_eq!(err.to_string(), "invalid ttl `0ns`: use a TTL of at least 1 ms");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    field: Cow<'static, str>,
    value: String,
    fix: Cow<'static, str>,
}

impl ConfigError {
    /// Creates an error for `field`, whose value was `value`, with a sentence
    /// that says what a valid value is.
    pub fn new(
        field: impl Into<Cow<'static, str>>,
        value: impl fmt::Display,
        fix: impl Into<Cow<'static, str>>,
    ) -> Self {
        ConfigError {
            field: field.into(),
            value: value.to_string(),
            fix: fix.into(),
        }
    }

    /// Returns the name of the setting.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Returns the rejected value as text.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Returns the sentence that says what a valid value is.
    pub fn fix(&self) -> &str {
        &self.fix
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} `{}`: {}", self.field, self.value, self.fix)
    }
}

impl StdError for ConfigError {}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidConfig
    }
}

/// The error type of the pulse-core traits.
///
/// It carries an [`ErrorKind`], a message, and the backend's own error as its
/// source, which callers can downcast to the crate's error enum.
///
/// # Examples
///
/// ```
/// use pulse_core::error::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::TimedOut, "lock `orders:42` not acquired within 2s");
/// assert_eq!(err.kind(), ErrorKind::TimedOut);
/// assert!(err.kind().is_transient());
/// ```
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// Creates an error with a kind and a message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Wraps a crate's own error, taking its kind and message from it.
    pub fn from_source<E>(source: E) -> Self
    where
        E: StdError + Classify + Send + Sync + 'static,
    {
        Error {
            kind: source.kind(),
            message: Cow::Owned(source.to_string()),
            source: Some(Box::new(source)),
        }
    }

    /// Creates an error with a kind, a message and an underlying cause.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<Cow<'static, str>>,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Returns the broad category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Returns the message, without the source's.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Returns the source as `E` when it is one.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.source.as_deref()?.downcast_ref::<E>()
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Error");
        out.field("kind", &self.kind)
            .field("message", &self.message);
        if let Some(source) = &self.source {
            out.field("source", source);
        }
        out.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        // A source created by `from_source` already printed its message as
        // ours, but it still belongs in the chain for downcasting.
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error::from_source(err)
    }
}

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Removes the password from a connection URL so that it can be logged or
/// put into an error message.
///
/// The user name stays, because it helps to find a misconfiguration; the
/// password becomes `***`. Query parameters named `password`, `pass` or
/// `token` are masked too, and so are those keys in a key-value connection
/// string (`host=db password=secret`). A string that does not look like a URL is returned
/// as it is.
///
/// # Examples
///
/// ```
/// use pulse_core::error::redact_url;
///
/// assert_eq!(redact_url("redis://app:s3cret@10.0.0.5:6379/0"), "redis://app:***@10.0.0.5:6379/0");
/// assert_eq!(redact_url("redis://:s3cret@localhost"), "redis://:***@localhost");
/// assert_eq!(redact_url("postgres://app@db/test?password=x"), "postgres://app@db/test?password=***");
/// ```
pub fn redact_url(url: &str) -> String {
    if !url.contains("://") && !url.contains('@') && url.contains('=') {
        return redact_key_values(url);
    }
    let start = url.find("://").map_or(0, |index| index + 3);
    let (scheme, rest) = url.split_at(start);

    // The user information ends at the last `@`, because a password may
    // itself contain an unescaped `@` or `/`. A malformed URL (a missing
    // `//`, a `/` in the password) is masked the same way, so a typo never
    // puts a password into a log line.
    let (user_info, tail) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (None, rest),
    };

    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    if let Some(user_info) = user_info {
        match user_info.find(':') {
            Some(colon) => {
                out.push_str(&user_info[..colon]);
                out.push_str(":***");
            }
            None => out.push_str(user_info),
        }
    }
    match tail.find('?') {
        Some(query_start) => {
            out.push_str(&tail[..=query_start]);
            out.push_str(&redact_query(&tail[query_start + 1..]));
        }
        None => out.push_str(tail),
    }
    out
}

/// Masks the secrets of a key-value connection string, such as
/// PostgreSQL's `host=db user=app password=secret`.
fn redact_key_values(text: &str) -> String {
    text.split(' ')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_secret_name(name: &str) -> bool {
    ["password", "pass", "token"].contains(&name.trim().to_ascii_lowercase().as_str())
}

fn redact_query(query: &str) -> String {
    let (query, fragment) = match query.find('#') {
        Some(hash) => (&query[..hash], &query[hash..]),
        None => (query, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    pairs.join("&") + fragment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_keeps_urls_without_password() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(
            redact_url("amqp://guest@localhost"),
            "amqp://guest@localhost"
        );
    }

    #[test]
    fn redact_handles_at_in_password() {
        assert_eq!(
            redact_url("redis://u:p@ss@host:1/2"),
            "redis://u:***@host:1/2"
        );
    }

    #[test]
    fn redact_masks_malformed_urls() {
        assert_eq!(redact_url("redis//user:pw@host"), "redis//user:***@host");
        assert_eq!(redact_url("u:pw@h:6379"), "u:***@h:6379");
        assert_eq!(redact_url("redis://u:pw/x@h"), "redis://u:***@h");
    }

    #[test]
    fn redact_masks_key_value_strings() {
        assert_eq!(
            redact_url("host=db user=app password=secret connect_timeout=2"),
            "host=db user=app password=*** connect_timeout=2"
        );
    }

    #[test]
    fn redact_masks_query_secrets() {
        assert_eq!(
            redact_url("nats://h:4222?token=abc&x=1#f"),
            "nats://h:4222?token=***&x=1#f"
        );
    }

    #[test]
    fn error_wraps_config_error() {
        let err: Error = ConfigError::new("rate", 0, "use a rate of at least 1").into();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert_eq!(
            err.to_string(),
            "invalid rate `0`: use a rate of at least 1"
        );
        assert_eq!(
            err.downcast_ref::<ConfigError>().map(ConfigError::field),
            Some("rate")
        );
    }
}
