//! Publish/subscribe with at-least-once delivery, a middleware router, an
//! in-memory broker and Redis Streams.
//!
//! The contract is in [`pulse_core::mq`]: a [`Publisher`] sends
//! [`Message`]s to topics, a [`Subscriber`] reads a topic as a member of a
//! consumer group, and each [`Delivery`] is acked or nacked. This crate
//! adds:
//!
//! | module or type | role |
//! | --- | --- |
//! | [`MemoryBroker`] | the in-process backend: consumer groups, visibility timeout, per-key order |
//! | [`redis`] (feature `redis`) | Redis Streams: `XADD`, `XREADGROUP`, batched `XACK`, `XAUTOCLAIM` |
//! | [`router`] | handlers from topic to topic, with retry, dead letters, deduplication and shutdown |
//! | [`MessageExt`], [`message`] | JSON payloads and fresh message ids |
//! | [`Limits`] | the topic, header and payload checks every publish applies |
//!
//! # Which backend do I want?
//!
//! [`MemoryBroker`] for one process and for tests; [`redis::RedisStreams`]
//! when several processes share the work or messages must outlive a
//! restart. Both pass the same conformance suite
//! (`pulse_testkit::suites::mq`), and code written against the traits runs
//! on either.
//!
//! # Delivery
//!
//! A message is delivered until a consumer of the group acks it. One that
//! is neither acked nor nacked (its consumer crashed, or dropped the
//! delivery) comes back after the visibility timeout, and on the in-memory
//! broker at once when its subscription is dropped. Handlers must therefore
//! tolerate duplicates, or use [`router::deduplicate`].
//!
//! # Example
//!
//! ```
//! use pulse_core::mq::{Message, Publisher, Subscriber, Subscription};
//! use pulse_mq::{MemoryBroker, MessageExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let broker = MemoryBroker::new();
//! let mut billing = broker.subscriber().subscribe("orders", "billing").await?;
//! let mut audit = broker.subscriber().subscribe("orders", "audit").await?;
//!
//! let order = Message::from_json(&serde_json::json!({ "order": 42 }))?.with_key("customer-7");
//! broker.publisher().publish("orders", order).await?;
//!
//! // Each group gets every message.
//! for subscription in [&mut billing, &mut audit] {
//!     let delivery = subscription.next().await.expect("open")?;
//!     let body: serde_json::Value = delivery.message().decode_json()?;
//!     assert_eq!(body["order"], 42);
//!     delivery.ack().await?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod drain;
mod error;
pub mod memory;
mod message;
pub mod router;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use error::MqError;
pub use memory::{MemoryBroker, MemoryPublisher, MemorySubscriber, MemorySubscription};
pub use message::{
    Limits, MAX_HEADER_VALUE_LEN, MAX_NAME_LEN, MessageExt, headers, message, new_id,
};
pub use pulse_core::mq::{Capabilities, Delivery, Message, Publisher, Subscriber, Subscription};
