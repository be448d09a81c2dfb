//! The messaging contract: messages, publishers, subscribers and
//! acknowledgement.
//!
//! # Contract for implementors
//!
//! - Delivery is at least once: a message that was published and
//!   acknowledged by the broker is delivered until a consumer acks it. A
//!   message neither acked nor nacked is delivered again after the
//!   backend's visibility timeout or when its consumer restarts.
//! - Headers and payload arrive byte for byte as published.
//! - Each consumer group gets every message of a topic; consumers within a
//!   group share them.
//! - A backend states what else it promises in [`Capabilities`]; the
//!   conformance suite checks exactly those promises.
//! - `Drop` of a [`Delivery`] neither acks nor nacks: the message is
//!   redelivered after the visibility timeout.
//! - [`Publisher::publish`] returns `Ok` only once the broker has accepted
//!   the message (an `XADD` reply, an AMQP publisher confirm, a JetStream
//!   publish ack, a Kafka produce acknowledgement). A publisher that buffers
//!   sends what it holds before [`Publisher::close`] returns.
//! - An ack may be recorded and committed later in a batch (Redis `XACK`,
//!   Kafka offset commits). A backend that batches commits every ack that
//!   returned `Ok` no later than the subscription's next read, its close, or
//!   its flush interval, whichever comes first; a crash before that commit
//!   redelivers the message, which at-least-once delivery allows. Kafka-like
//!   backends commit an offset only after every message below it was acked.
//! - A nack with a delay asks for redelivery no earlier than that delay
//!   (JetStream `NAK` with delay, a delayed requeue). A backend without
//!   [`Capabilities::delayed_redelivery`] ignores the delay and redelivers
//!   as soon as it can; a backend that rejects instead of requeueing (AMQP
//!   `basic.reject` to a dead-letter exchange) does not implement nack that
//!   way: dead-lettering is the router's decision, made from
//!   [`Delivery::attempt`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::BoxFuture;
use crate::error::{Error, ErrorKind, Result};

/// A message: an id, an optional key for ordering and partitioning, headers
/// and a payload.
///
/// # Examples
///
/// ```
/// use pulse_core::mq::Message;
///
/// let message = Message::new("order-created", b"{\"id\":42}".to_vec())
///     .with_key("order-42")
///     .with_header("content-type", "application/json");
/// assert_eq!(message.header("content-type"), Some("application/json"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// A unique id, used for deduplication.
    pub id: String,
    /// The ordering and partitioning key.
    pub key: Option<String>,
    /// Metadata carried beside the payload.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub payload: Bytes,
}

impl Message {
    /// Creates a message with an id and a payload.
    pub fn new(id: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Message {
            id: id.into(),
            key: None,
            headers: BTreeMap::new(),
            payload: payload.into(),
        }
    }

    /// Sets the ordering key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Returns a header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// What a backend promises beyond at-least-once delivery.
///
/// # Examples
///
/// ```
/// use pulse_core::mq::Capabilities;
///
/// let caps = Capabilities::none().consumer_groups(true).delayed_redelivery(true);
/// assert!(caps.consumer_groups);
/// assert!(!caps.persistent);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Messages survive a restart of the broker.
    pub persistent: bool,
    /// Messages with the same key are delivered in publish order.
    pub ordered_per_key: bool,
    /// Several consumer groups each receive every message.
    pub consumer_groups: bool,
    /// A nack can ask for redelivery after a delay.
    pub delayed_redelivery: bool,
    /// A new consumer group can read messages published before it existed.
    pub replays_old_messages: bool,
    /// The next message of a key is delivered only after the previous one of
    /// that key, in the same consumer group, was acked or nacked.
    pub waits_for_ack_per_key: bool,
}

impl Capabilities {
    /// Creates a description with every capability off; the builder methods
    /// turn capabilities on.
    pub const fn none() -> Self {
        Capabilities {
            persistent: false,
            ordered_per_key: false,
            consumer_groups: false,
            delayed_redelivery: false,
            replays_old_messages: false,
            waits_for_ack_per_key: false,
        }
    }

    /// Sets [`persistent`](Capabilities::persistent).
    pub const fn persistent(mut self, on: bool) -> Self {
        self.persistent = on;
        self
    }

    /// Sets [`ordered_per_key`](Capabilities::ordered_per_key).
    pub const fn ordered_per_key(mut self, on: bool) -> Self {
        self.ordered_per_key = on;
        self
    }

    /// Sets [`consumer_groups`](Capabilities::consumer_groups).
    pub const fn consumer_groups(mut self, on: bool) -> Self {
        self.consumer_groups = on;
        self
    }

    /// Sets [`delayed_redelivery`](Capabilities::delayed_redelivery).
    pub const fn delayed_redelivery(mut self, on: bool) -> Self {
        self.delayed_redelivery = on;
        self
    }

    /// Sets [`replays_old_messages`](Capabilities::replays_old_messages).
    pub const fn replays_old_messages(mut self, on: bool) -> Self {
        self.replays_old_messages = on;
        self
    }

    /// Sets [`waits_for_ack_per_key`](Capabilities::waits_for_ack_per_key).
    pub const fn waits_for_ack_per_key(mut self, on: bool) -> Self {
        self.waits_for_ack_per_key = on;
        self
    }
}

/// The backend side of acknowledging one delivery.
pub trait Acknowledge: Send + Sync {
    /// Marks the message as handled.
    fn ack(&self) -> BoxFuture<'_, Result<()>>;

    /// Asks for redelivery, after `delay` where the backend supports it.
    fn nack(&self, delay: Option<Duration>) -> BoxFuture<'_, Result<()>>;

    /// Tells the broker that the message is still being handled, so that its
    /// visibility timeout starts again (JetStream `+WIP`, Redis `XCLAIM` to
    /// the same consumer). The default does nothing, for brokers that have
    /// no visibility timeout.
    fn in_progress(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

const PENDING: u8 = 0;
const ACKED: u8 = 1;
const NACKED: u8 = 2;

/// A received message with its acknowledgement handle.
///
/// `ack` and `nack` are each idempotent, and the second of the two is
/// rejected with [`ErrorKind::NotOwner`]: a message cannot be both handled
/// and returned.
pub struct Delivery {
    message: Message,
    topic: Arc<str>,
    attempt: u32,
    acker: Arc<dyn Acknowledge>,
    state: AtomicU8,
}

impl Delivery {
    /// Creates a delivery; `attempt` counts from 1. Passing the topic as an
    /// `Arc<str>` shared by a subscription's deliveries avoids one
    /// allocation per delivery.
    pub fn new(
        topic: impl Into<Arc<str>>,
        message: Message,
        attempt: u32,
        acker: Arc<dyn Acknowledge>,
    ) -> Self {
        Delivery {
            message,
            topic: topic.into(),
            attempt,
            acker,
            state: AtomicU8::new(PENDING),
        }
    }

    /// Returns the message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Takes the message out, for handlers that consume it; the delivery can
    /// still be acked.
    pub fn take_message(&mut self) -> Message {
        std::mem::take(&mut self.message)
    }

    /// Returns the topic it was received from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Returns how many times this message has been delivered, this time
    /// included.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Returns whether this is a redelivery (the attempt is above 1).
    pub fn is_redelivery(&self) -> bool {
        self.attempt > 1
    }

    /// Returns whether the delivery was acked or nacked already.
    pub fn is_settled(&self) -> bool {
        self.state.load(Ordering::SeqCst) != PENDING
    }

    /// Acknowledges the message. Calling it again does nothing; calling it
    /// after [`nack`](Delivery::nack) fails.
    pub async fn ack(&self) -> Result<()> {
        self.settle(ACKED, None).await
    }

    /// Returns the message for redelivery, after `delay` where the backend
    /// supports it. Calling it again does nothing; calling it after
    /// [`ack`](Delivery::ack) fails.
    pub async fn nack(&self, delay: Option<Duration>) -> Result<()> {
        self.settle(NACKED, delay).await
    }

    /// Restarts the visibility timeout of a message that takes long to
    /// handle. Fails with [`ErrorKind::NotOwner`] once the delivery was acked
    /// or nacked.
    pub async fn in_progress(&self) -> Result<()> {
        if self.is_settled() {
            return Err(Error::new(
                ErrorKind::NotOwner,
                format!(
                    "message `{}` on `{}` was already settled; in_progress applies only before ack or nack",
                    self.message.id, self.topic
                ),
            ));
        }
        self.acker.in_progress().await
    }

    async fn settle(&self, target: u8, delay: Option<Duration>) -> Result<()> {
        match self
            .state
            .compare_exchange(PENDING, target, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {
                let result = if target == ACKED {
                    self.acker.ack().await
                } else {
                    self.acker.nack(delay).await
                };
                if result.is_err() {
                    // Let the caller retry the same settlement.
                    self.state.store(PENDING, Ordering::SeqCst);
                }
                result
            }
            Err(current) if current == target => Ok(()),
            Err(_) => Err(Error::new(
                ErrorKind::NotOwner,
                format!(
                    "message `{}` on `{}` was already {}",
                    self.message.id,
                    self.topic,
                    if target == ACKED { "nacked" } else { "acked" }
                ),
            )),
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.topic)
            .field("attempt", &self.attempt)
            .field("message", &self.message)
            .field("settled", &self.is_settled())
            .finish()
    }
}

/// A stream of deliveries from one subscription.
pub trait Subscription: Send {
    /// Waits for the next delivery. Returns `None` once the subscription is
    /// closed.
    fn next(&mut self) -> impl Future<Output = Option<Result<Delivery>>> + Send;
}

/// A boxed subscription, as returned by [`DynSubscriber`].
pub type BoxSubscription = Box<dyn DynSubscription>;

/// The object-safe companion of [`Subscription`].
pub trait DynSubscription: Send {
    /// Boxed form of [`Subscription::next`].
    fn next_boxed(&mut self) -> BoxFuture<'_, Option<Result<Delivery>>>;
}

impl<S: Subscription> DynSubscription for S {
    fn next_boxed(&mut self) -> BoxFuture<'_, Option<Result<Delivery>>> {
        Box::pin(Subscription::next(self))
    }
}

impl Subscription for Box<dyn DynSubscription> {
    fn next(&mut self) -> impl Future<Output = Option<Result<Delivery>>> + Send {
        (**self).next_boxed()
    }
}

/// Publishes messages to topics.
pub trait Publisher: Send + Sync {
    /// Publishes one message. Returns once the broker has accepted it.
    fn publish(&self, topic: &str, message: Message) -> impl Future<Output = Result<()>> + Send;

    /// Publishes several messages, in order. The default publishes them one
    /// by one; backends override it with a pipeline.
    fn publish_batch(
        &self,
        topic: &str,
        messages: Vec<Message>,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            for message in messages {
                self.publish(topic, message).await?;
            }
            Ok(())
        }
    }

    /// Flushes what is buffered and closes the publisher.
    fn close(&self) -> impl Future<Output = Result<()>> + Send;
}

/// Subscribes to topics.
pub trait Subscriber: Send + Sync {
    /// The subscription type.
    type Subscription: Subscription + 'static;

    /// Subscribes to `topic` as a member of consumer `group`.
    fn subscribe(
        &self,
        topic: &str,
        group: &str,
    ) -> impl Future<Output = Result<Self::Subscription>> + Send;

    /// Returns what this backend promises.
    fn capabilities(&self) -> Capabilities;

    /// Stops taking messages, waits for in-flight ones to be settled, and
    /// closes.
    fn close(&self) -> impl Future<Output = Result<()>> + Send;
}

/// The object-safe companion of [`Publisher`].
pub trait DynPublisher: Send + Sync {
    /// Boxed form of [`Publisher::publish`].
    fn publish_boxed<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<()>>;
    /// Boxed form of [`Publisher::publish_batch`].
    fn publish_batch_boxed<'a>(
        &'a self,
        topic: &'a str,
        messages: Vec<Message>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Boxed form of [`Publisher::close`].
    fn close_boxed(&self) -> BoxFuture<'_, Result<()>>;
}

impl<P: Publisher> DynPublisher for P {
    fn publish_boxed<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<()>> {
        Box::pin(Publisher::publish(self, topic, message))
    }

    fn publish_batch_boxed<'a>(
        &'a self,
        topic: &'a str,
        messages: Vec<Message>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Publisher::publish_batch(self, topic, messages))
    }

    fn close_boxed(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(Publisher::close(self))
    }
}

impl Publisher for dyn DynPublisher + '_ {
    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        self.publish_boxed(topic, message).await
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        self.publish_batch_boxed(topic, messages).await
    }

    async fn close(&self) -> Result<()> {
        self.close_boxed().await
    }
}

/// The object-safe companion of [`Subscriber`]; subscriptions come boxed.
pub trait DynSubscriber: Send + Sync {
    /// Boxed form of [`Subscriber::subscribe`].
    fn subscribe_boxed<'a>(
        &'a self,
        topic: &'a str,
        group: &'a str,
    ) -> BoxFuture<'a, Result<BoxSubscription>>;
    /// Same as [`Subscriber::capabilities`].
    fn capabilities_dyn(&self) -> Capabilities;
    /// Boxed form of [`Subscriber::close`].
    fn close_boxed(&self) -> BoxFuture<'_, Result<()>>;
}

impl<S: Subscriber> DynSubscriber for S {
    fn subscribe_boxed<'a>(
        &'a self,
        topic: &'a str,
        group: &'a str,
    ) -> BoxFuture<'a, Result<BoxSubscription>> {
        Box::pin(async move {
            let subscription = Subscriber::subscribe(self, topic, group).await?;
            Ok(Box::new(subscription) as BoxSubscription)
        })
    }

    fn capabilities_dyn(&self) -> Capabilities {
        Subscriber::capabilities(self)
    }

    fn close_boxed(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(Subscriber::close(self))
    }
}

impl<P: Publisher + ?Sized> Publisher for Arc<P> {
    fn publish(&self, topic: &str, message: Message) -> impl Future<Output = Result<()>> + Send {
        (**self).publish(topic, message)
    }

    fn publish_batch(
        &self,
        topic: &str,
        messages: Vec<Message>,
    ) -> impl Future<Output = Result<()>> + Send {
        (**self).publish_batch(topic, messages)
    }

    fn close(&self) -> impl Future<Output = Result<()>> + Send {
        (**self).close()
    }
}
