//! Publish/subscribe API with a middleware router, in-memory broker and Redis Streams.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod drain;
mod error;
pub mod memory;
mod message;

pub use error::MqError;
pub use memory::{MemoryBroker, MemoryPublisher, MemorySubscriber, MemorySubscription};
pub use message::{Limits, MAX_HEADER_VALUE_LEN, MAX_NAME_LEN, MessageExt, headers, message, new_id};
pub use pulse_core::mq::{Capabilities, Delivery, Message, Publisher, Subscriber, Subscription};
pub mod router;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
