//! The error type of pulse-mq.

use std::error::Error as StdError;
use std::fmt;

use pulse_core::error::{Classify, Error, ErrorKind};

/// Everything that can go wrong in pulse-mq, with the offending value.
#[derive(Debug)]
#[non_exhaustive]
pub enum MqError {
    /// The topic name is empty, too long or contains a character the broker
    /// cannot carry.
    InvalidTopic {
        /// The rejected topic.
        topic: String,
        /// The reason for the rejection and what to use instead.
        reason: &'static str,
    },
    /// A header name or value cannot be carried.
    InvalidHeader {
        /// The header name.
        name: String,
        /// The reason for the rejection and what to use instead.
        reason: &'static str,
    },
    /// The consumer group name is empty or contains a character the broker
    /// cannot carry.
    InvalidGroup {
        /// The rejected group.
        group: String,
        /// The reason for the rejection and what to use instead.
        reason: &'static str,
    },
    /// The payload is larger than the configured maximum.
    PayloadTooLarge {
        /// The message id.
        id: String,
        /// The payload size in bytes.
        size: usize,
        /// The configured maximum in bytes.
        max: usize,
    },
    /// The publisher or subscriber was closed.
    Closed {
        /// The component that was closed.
        what: &'static str,
    },
    /// A payload could not be encoded or decoded as JSON.
    Codec {
        /// The message id.
        id: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The broker failed or could not be reached.
    Backend {
        /// The operation in progress.
        action: String,
        /// The broker's error.
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl fmt::Display for MqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MqError::InvalidTopic { topic, reason } => {
                write!(f, "invalid topic `{topic}`: {reason}")
            }
            MqError::InvalidHeader { name, reason } => {
                write!(f, "invalid header `{name}`: {reason}")
            }
            MqError::InvalidGroup { group, reason } => {
                write!(f, "invalid consumer group `{group}`: {reason}")
            }
            MqError::PayloadTooLarge { id, size, max } => write!(
                f,
                "payload of message `{id}` is {size} bytes, over the maximum of {max}; split the message or raise `max_payload`"
            ),
            MqError::Closed { what } => write!(f, "the {what} is closed"),
            MqError::Codec { id, source } => {
                write!(f, "JSON codec failed for message `{id}`: {source}")
            }
            MqError::Backend { action, source } => write!(f, "{action} failed: {source}"),
        }
    }
}

impl StdError for MqError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            MqError::Codec { source, .. } => Some(source),
            MqError::Backend { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl Classify for MqError {
    fn kind(&self) -> ErrorKind {
        match self {
            MqError::InvalidTopic { .. }
            | MqError::InvalidHeader { .. }
            | MqError::InvalidGroup { .. }
            | MqError::PayloadTooLarge { .. } => ErrorKind::InvalidInput,
            MqError::Closed { .. } => ErrorKind::Closed,
            MqError::Codec { .. } => ErrorKind::Codec,
            MqError::Backend { .. } => ErrorKind::Unavailable,
        }
    }
}

impl From<MqError> for Error {
    fn from(err: MqError) -> Self {
        Error::from_source(err)
    }
}
