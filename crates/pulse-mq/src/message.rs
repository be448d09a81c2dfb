//! Message ids, JSON helpers and the checks every backend applies before it
//! accepts a message.

use pulse_core::mq::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::MqError;

/// Header names that pulse-mq itself writes.
pub mod headers {
    /// The correlation id, copied by the router from an input message to
    /// every message its handler produces.
    pub const CORRELATION_ID: &str = "correlation-id";
    /// Why a message was dead-lettered: the handler's last error.
    pub const DEAD_LETTER_REASON: &str = "dead-letter-reason";
    /// The topic a dead-lettered message was consumed from.
    pub const ORIGINAL_TOPIC: &str = "original-topic";
    /// How many times a dead-lettered message was delivered before it was
    /// given up on.
    pub const DELIVERY_ATTEMPTS: &str = "delivery-attempts";
}

/// Returns a new message id: a UUIDv7 in its hyphenated form, so that ids
/// sort by creation time.
///
/// # Examples
///
/// ```
/// let a = pulse_mq::new_id();
/// let b = pulse_mq::new_id();
/// assert_ne!(a, b);
/// assert_eq!(a.len(), 36);
/// ```
pub fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// Creates a message with a fresh id ([`new_id`]) and `payload`.
///
/// # Examples
///
/// ```
/// let message = pulse_mq::message(&b"hello"[..]).with_key("user-7");
/// assert_eq!(&message.payload[..], b"hello");
/// ```
pub fn message(payload: impl Into<bytes::Bytes>) -> Message {
    Message::new(new_id(), payload)
}

/// Typed payloads through serde, as an extension of [`Message`].
///
/// # Examples
///
/// ```
/// use pulse_core::mq::Message;
/// use pulse_mq::MessageExt;
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct OrderCreated { order: u64 }
///
/// let message = Message::from_json(&OrderCreated { order: 42 })?;
/// assert_eq!(message.header("content-type"), Some("application/json"));
/// let event: OrderCreated = message.decode_json()?;
/// assert_eq!(event, OrderCreated { order: 42 });
/// # Ok::<(), pulse_mq::MqError>(())
/// ```
pub trait MessageExt: Sized {
    /// Creates a message with a fresh id whose payload is `value` as JSON,
    /// with a `content-type: application/json` header.
    fn from_json<T: Serialize + ?Sized>(value: &T) -> Result<Self, MqError>;

    /// Decodes the payload as JSON.
    fn decode_json<T: DeserializeOwned>(&self) -> Result<T, MqError>;
}

impl MessageExt for Message {
    fn from_json<T: Serialize + ?Sized>(value: &T) -> Result<Self, MqError> {
        let id = new_id();
        let payload = serde_json::to_vec(value).map_err(|source| MqError::Codec {
            id: id.clone(),
            source,
        })?;
        Ok(Message::new(id, payload).with_header("content-type", "application/json"))
    }

    fn decode_json<T: DeserializeOwned>(&self) -> Result<T, MqError> {
        serde_json::from_slice(&self.payload).map_err(|source| MqError::Codec {
            id: self.id.clone(),
            source,
        })
    }
}

/// The limits a publisher checks before it sends a message.
///
/// The defaults are portable: a topic, group or header that passes them can
/// be carried by Redis Streams, NATS JetStream, RabbitMQ and Kafka alike.
///
/// # Examples
///
/// ```
/// use pulse_mq::Limits;
///
/// let limits = Limits::default().max_payload(64 * 1024);
/// assert!(limits.check_topic("orders.created").is_ok());
/// assert!(limits.check_topic("").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_payload: usize,
}

/// The largest topic, group or header name, in bytes (Kafka allows 249).
pub const MAX_NAME_LEN: usize = 249;

/// The largest header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 64 * 1024;

impl Default for Limits {
    /// A maximum payload of 1 MiB, the default message size limit of NATS
    /// and Kafka.
    fn default() -> Self {
        Limits {
            max_payload: 1024 * 1024,
        }
    }
}

impl Limits {
    /// Sets the largest payload a publisher accepts, in bytes.
    pub const fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Returns the largest payload a publisher accepts, in bytes.
    pub const fn payload_limit(&self) -> usize {
        self.max_payload
    }

    /// Checks a topic name: 1 to 249 bytes of ASCII letters, digits and
    /// `. _ - : /`.
    pub fn check_topic(&self, topic: &str) -> Result<(), MqError> {
        check_name(topic).map_err(|reason| MqError::InvalidTopic {
            topic: topic.to_owned(),
            reason,
        })
    }

    /// Checks a consumer group name with the rules of [`check_topic`](Limits::check_topic).
    pub fn check_group(&self, group: &str) -> Result<(), MqError> {
        check_name(group).map_err(|reason| MqError::InvalidGroup {
            group: group.to_owned(),
            reason,
        })
    }

    /// Checks a message before it is published: the payload size, the id,
    /// the key and every header.
    pub fn check_message(&self, message: &Message) -> Result<(), MqError> {
        if message.payload.len() > self.max_payload {
            return Err(MqError::PayloadTooLarge {
                id: message.id.clone(),
                size: message.payload.len(),
                max: self.max_payload,
            });
        }
        if message.id.is_empty() {
            return Err(MqError::InvalidHeader {
                name: "id".to_owned(),
                reason: "a message needs a non-empty id; create it with `pulse_mq::message`",
            });
        }
        for (name, value) in &message.headers {
            check_header(name, value)?;
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty; use 1 to 249 characters");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("it is longer than 249 bytes");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/');
    if !name.chars().all(allowed) {
        return Err("use only ASCII letters, digits and `. _ - : /`");
    }
    Ok(())
}

fn check_header(name: &str, value: &str) -> Result<(), MqError> {
    let invalid = |reason| MqError::InvalidHeader {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid("a header name needs 1 to 249 bytes"));
    }
    // Names are HTTP-like tokens, which AMQP, NATS and Kafka headers all carry.
    if !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(invalid(
            "a header name may contain only visible ASCII characters other than `:`",
        ));
    }
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(invalid("the value is longer than 64 KiB"));
    }
    if value.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
        return Err(invalid("the value contains CR, LF or NUL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rules() {
        let limits = Limits::default();
        assert!(limits.check_topic("orders.created").is_ok());
        assert!(limits.check_topic("a/b:c-d_e").is_ok());
        assert!(limits.check_topic("").is_err());
        assert!(limits.check_topic("has space").is_err());
        assert!(limits.check_topic("{tag}").is_err());
        assert!(limits.check_topic("wild.*").is_err());
        assert!(limits.check_topic(&"x".repeat(250)).is_err());
    }

    #[test]
    fn header_rules() {
        let limits = Limits::default();
        let ok = Message::new("1", "p").with_header("trace-id", "abc def");
        assert!(limits.check_message(&ok).is_ok());
        let newline = Message::new("1", "p").with_header("x", "a\nb");
        assert!(matches!(
            limits.check_message(&newline),
            Err(MqError::InvalidHeader { .. })
        ));
        let colon = Message::new("1", "p").with_header("a:b", "v");
        assert!(limits.check_message(&colon).is_err());
    }

    #[test]
    fn payload_limit() {
        let limits = Limits::default().max_payload(4);
        let big = Message::new("m1", "12345");
        let err = limits.check_message(&big).unwrap_err();
        assert!(err.to_string().contains("5 bytes"), "{err}");
        assert!(limits.check_message(&Message::new("m2", "1234")).is_ok());
    }
}
