//! The in-memory broker: topics, consumer groups, ack, nack and redelivery
//! inside one process.
//!
//! Each consumer group of a topic has its own queue. A publish appends the
//! message to the queue of every group of the topic, and the consumers of a
//! group take messages from it in publish order, up to the prefetch count
//! at a time. A taken message stays in the group's in-flight table until it
//! is acked. A nack, the visibility timeout, or the drop of the subscription
//! that took it returns it to the queue. While a message with a key is in
//! flight, later messages with the same key wait, so a group receives each
//! key in publish order.

mod group;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pulse_core::BoxFuture;
use pulse_core::clock::{Clock, SystemClock};
use pulse_core::error::Result;
use pulse_core::mq::{
    Acknowledge, Capabilities, Delivery, Message, Publisher, Subscriber, Subscription,
};
use pulse_core::signal::Signal;

use crate::drain::Tracker;
use crate::error::MqError;
use crate::message::Limits;
use group::Group;

/// The capabilities of the in-memory broker.
pub const MEMORY_CAPABILITIES: Capabilities = Capabilities::none()
    .ordered_per_key(true)
    .waits_for_ack_per_key(true)
    .consumer_groups(true)
    .delayed_redelivery(true);

/// An in-process broker. Clones share the same topics.
///
/// # Examples
///
/// ```
/// use pulse_core::mq::{Publisher, Subscriber, Subscription};
/// use pulse_mq::MemoryBroker;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let broker = MemoryBroker::new();
/// let subscriber = broker.subscriber();
/// let mut orders = subscriber.subscribe("orders", "billing").await?;
///
/// broker.publisher().publish("orders", pulse_mq::message(&b"order 42"[..])).await?;
///
/// let delivery = orders.next().await.expect("open")?;
/// assert_eq!(&delivery.message().payload[..], b"order 42");
/// delivery.ack().await?;
/// # Ok::<(), pulse_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct MemoryBroker {
    inner: Arc<BrokerInner>,
}

#[derive(Debug)]
struct BrokerInner {
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    clock: Arc<dyn Clock>,
    visibility_timeout: Duration,
    drain_timeout: Duration,
    prefetch: usize,
    limits: Limits,
    next_consumer: AtomicU64,
}

/// The groups of one topic, and the messages published before it had any.
#[derive(Debug, Default)]
struct Topic {
    state: Mutex<TopicState>,
}

#[derive(Debug, Default)]
struct TopicState {
    groups: HashMap<String, Arc<Group>>,
    /// Messages published while the topic had no group; the first group
    /// takes them over, so that nothing published is dropped.
    backlog: Vec<Message>,
}

/// Settings of a [`MemoryBroker`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_mq::MemoryBroker;
///
/// let broker = MemoryBroker::builder()
///     .visibility_timeout(Duration::from_secs(5))
///     .build();
/// # drop(broker);
/// ```
#[derive(Debug)]
pub struct MemoryBrokerBuilder {
    clock: Arc<dyn Clock>,
    visibility_timeout: Duration,
    drain_timeout: Duration,
    prefetch: usize,
    limits: Limits,
}

impl MemoryBrokerBuilder {
    /// Sets the clock that times visibility timeouts and delayed nacks.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets how long a taken message may stay unsettled before it is
    /// delivered again (default 30 s).
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Sets how long [`Subscriber::close`] waits for unsettled deliveries
    /// before it returns them to the queue (default 30 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets how many messages a subscription takes from its group at once
    /// (default 16; at least 1). Taken messages wait in the subscription and
    /// their visibility timeout runs from when they were taken, so keep it
    /// small where handlers are slow.
    pub fn prefetch(mut self, count: usize) -> Self {
        self.prefetch = count.max(1);
        self
    }

    /// Sets the limits checked on publish.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Creates the broker.
    pub fn build(self) -> MemoryBroker {
        MemoryBroker {
            inner: Arc::new(BrokerInner {
                topics: RwLock::new(HashMap::new()),
                clock: self.clock,
                visibility_timeout: self.visibility_timeout,
                drain_timeout: self.drain_timeout,
                prefetch: self.prefetch,
                limits: self.limits,
                next_consumer: AtomicU64::new(1),
            }),
        }
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        MemoryBroker::new()
    }
}

impl MemoryBroker {
    /// Creates a broker with the default settings.
    pub fn new() -> Self {
        MemoryBroker::builder().build()
    }

    /// Starts a builder with a 30 s visibility timeout, a prefetch of 16 and
    /// the system clock.
    pub fn builder() -> MemoryBrokerBuilder {
        MemoryBrokerBuilder {
            clock: Arc::new(SystemClock::new()),
            visibility_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            prefetch: 16,
            limits: Limits::default(),
        }
    }

    /// Returns a publisher. Closing it does not affect other publishers.
    pub fn publisher(&self) -> MemoryPublisher {
        MemoryPublisher {
            broker: self.clone(),
            closed: AtomicBool::new(false),
        }
    }

    /// Returns a subscriber. Closing it ends its own subscriptions only.
    pub fn subscriber(&self) -> MemorySubscriber {
        MemorySubscriber {
            broker: self.clone(),
            closed: Signal::new(),
            tracker: Arc::new(Tracker::default()),
        }
    }

    /// Returns how many messages of `topic` the consumer group `group` has
    /// not acked yet, in flight included.
    pub fn backlog(&self, topic: &str, group: &str) -> usize {
        let Some(topic) = self.read_topics().get(topic).cloned() else {
            return 0;
        };
        let state = topic.lock();
        if let Some(group) = state.groups.get(group) {
            group.backlog()
        } else if state.groups.is_empty() {
            state.backlog.len()
        } else {
            0
        }
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Topic>>> {
        self.inner
            .topics
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(topic) = self.read_topics().get(name) {
            return topic.clone();
        }
        let mut topics = self
            .inner
            .topics
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        topics.entry(name.to_owned()).or_default().clone()
    }

    fn deliver(&self, topic: &str, messages: Vec<Message>) {
        let topic = self.topic(topic);
        let mut state = topic.lock();
        if state.groups.is_empty() {
            state.backlog.extend(messages);
            return;
        }
        // The last group takes the messages themselves, the others clones.
        let groups: Vec<Arc<Group>> = state.groups.values().cloned().collect();
        drop(state);
        let (last, others) = groups.split_last().expect("at least one group");
        for group in others {
            group.push(messages.iter().cloned());
        }
        last.push(messages);
    }

    fn group(&self, topic: &str, group: &str) -> Arc<Group> {
        let topic = self.topic(topic);
        let mut state = topic.lock();
        if let Some(existing) = state.groups.get(group) {
            return existing.clone();
        }
        let created = Arc::new(Group::default());
        let backlog = std::mem::take(&mut state.backlog);
        created.push(backlog);
        state.groups.insert(group.to_owned(), created.clone());
        created
    }
}

impl Topic {
    fn lock(&self) -> std::sync::MutexGuard<'_, TopicState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Publishes to a [`MemoryBroker`].
#[derive(Debug)]
pub struct MemoryPublisher {
    broker: MemoryBroker,
    closed: AtomicBool,
}

impl MemoryPublisher {
    fn check(&self, topic: &str, messages: &[Message]) -> std::result::Result<(), MqError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(MqError::Closed { what: "publisher" });
        }
        let limits = &self.broker.inner.limits;
        limits.check_topic(topic)?;
        for message in messages {
            limits.check_message(message)?;
        }
        Ok(())
    }
}

impl Publisher for MemoryPublisher {
    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        let batch = vec![message];
        self.check(topic, &batch)?;
        self.broker.deliver(topic, batch);
        Ok(())
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        // The whole batch is checked first, so that a bad message publishes
        // none of it.
        self.check(topic, &messages)?;
        self.broker.deliver(topic, messages);
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        // Publishing is synchronous here, so there is nothing to flush.
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

/// Subscribes to a [`MemoryBroker`].
#[derive(Debug)]
pub struct MemorySubscriber {
    broker: MemoryBroker,
    closed: Signal,
    tracker: Arc<Tracker>,
}

impl Subscriber for MemorySubscriber {
    type Subscription = MemorySubscription;

    async fn subscribe(&self, topic: &str, group: &str) -> Result<MemorySubscription> {
        if self.closed.is_fired() {
            return Err(MqError::Closed { what: "subscriber" }.into());
        }
        let limits = &self.broker.inner.limits;
        limits.check_topic(topic)?;
        limits.check_group(group)?;

        let consumer = self
            .broker
            .inner
            .next_consumer
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "pulse_mq", topic, group, consumer, "in-memory subscription started");
        let group = self.broker.group(topic, group);
        Ok(MemorySubscription {
            ack_context: Arc::new(AckContext {
                group: group.clone(),
                broker: self.broker.clone(),
                tracker: self.tracker.clone(),
            }),
            group,
            topic: Arc::from(topic),
            consumer,
            prefetched: VecDeque::new(),
            broker: self.broker.clone(),
            closed: self.closed.clone(),
            tracker: self.tracker.clone(),
        })
    }

    fn capabilities(&self) -> Capabilities {
        MEMORY_CAPABILITIES
    }

    async fn close(&self) -> Result<()> {
        self.closed.fire();
        let inner = &self.broker.inner;
        self.tracker.drain(&*inner.clock, inner.drain_timeout).await;
        Ok(())
    }
}

/// A stream of deliveries from one consumer group of a topic.
///
/// Dropping it returns the messages it took and did not settle to the
/// group's queue at once, as a consumer restart does.
#[derive(Debug)]
pub struct MemorySubscription {
    group: Arc<Group>,
    topic: Arc<str>,
    consumer: u64,
    /// Messages taken under one lock and not handed out yet; they count as
    /// in flight to this consumer.
    prefetched: VecDeque<group::Taken>,
    ack_context: Arc<AckContext>,
    broker: MemoryBroker,
    closed: Signal,
    tracker: Arc<Tracker>,
}

impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Result<Delivery>> {
        let inner = &self.broker.inner;
        loop {
            if self.closed.is_fired() {
                return None;
            }
            let notified = self.group.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            if let Some(taken) = self.prefetched.pop_front() {
                return Some(Ok(self.delivery(taken)));
            }
            let now = inner.clock.now();
            let taken = self.group.take(
                self.consumer,
                now,
                inner.visibility_timeout,
                inner.prefetch,
                &mut self.prefetched,
            );
            let wake = match taken {
                Ok(()) => continue,
                Err(wake) => wake,
            };

            let sleep = async {
                match wake {
                    Some(at) => inner.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = notified => {}
                () = sleep => {}
                () = self.closed.fired() => return None,
            }
        }
    }
}

impl MemorySubscription {
    fn delivery(&self, taken: group::Taken) -> Delivery {
        self.tracker.start();
        let acker = MemoryAck {
            context: self.ack_context.clone(),
            seq: taken.seq,
            open: AtomicBool::new(true),
        };
        Delivery::new(
            self.topic.clone(),
            taken.message,
            taken.attempt,
            Arc::new(acker),
        )
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        let released = self.group.release_consumer(self.consumer);
        if released > 0 {
            tracing::debug!(target: "pulse_mq", topic = &*self.topic, consumer = self.consumer, released, "in-memory subscription dropped; unsettled messages returned");
        }
    }
}

/// What every ack handle of one subscription shares, behind one `Arc`.
#[derive(Debug)]
struct AckContext {
    group: Arc<Group>,
    broker: MemoryBroker,
    tracker: Arc<Tracker>,
}

struct MemoryAck {
    context: Arc<AckContext>,
    seq: u64,
    open: AtomicBool,
}

impl MemoryAck {
    fn finish(&self) {
        if self.open.swap(false, Ordering::AcqRel) {
            self.context.tracker.done();
        }
    }
}

impl Acknowledge for MemoryAck {
    fn ack(&self) -> BoxFuture<'_, Result<()>> {
        self.context.group.ack(self.seq);
        self.finish();
        Box::pin(std::future::ready(Ok(())))
    }

    fn nack(&self, delay: Option<Duration>) -> BoxFuture<'_, Result<()>> {
        let clock = &self.context.broker.inner.clock;
        let not_before = delay.map(|delay| clock.now().saturating_add(delay));
        self.context.group.nack(self.seq, not_before);
        self.finish();
        Box::pin(std::future::ready(Ok(())))
    }

    fn in_progress(&self) -> BoxFuture<'_, Result<()>> {
        let inner = &self.context.broker.inner;
        let deadline = inner.clock.now().saturating_add(inner.visibility_timeout);
        self.context.group.extend(self.seq, deadline);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Drop for MemoryAck {
    fn drop(&mut self) {
        // An unsettled delivery that is dropped no longer holds up a drain;
        // its message comes back after the visibility timeout.
        self.finish();
    }
}
