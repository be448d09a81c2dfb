//! Conformance suite for message queues: delivery, acknowledgement,
//! redelivery and isolation of topics.
//!
//! A backend implements [`MqBackend`], a factory for fresh publishers and
//! subscribers on one broker, and runs [`run_all`] (or the checks one by
//! one, to see them as separate tests). Every check uses topics and groups
//! of its own, so the checks may share a broker and run in parallel.
//!
//! | check | runs when |
//! | --- | --- |
//! | [`round_trip`] | always |
//! | [`rejects_bad_topic`] | always |
//! | [`settlement_rules`] | always |
//! | [`many_subscribers`] | always |
//! | [`order_per_key`] | the backend claims `ordered_per_key` |
//! | [`nack_redelivers`] | always; the delay part when it claims `delayed_redelivery` |
//! | [`close_and_reopen`] | always |
//! | [`publisher_close_flushes`] | always |
//! | [`topic_isolation`] | always |
//! | [`two_groups`] | the backend claims `consumer_groups` |
//! | [`replays_old_messages`] | the backend claims `replays_old_messages` |
//! | [`connection_cut`] | the backend has a server address ([`MqBackend::server_addr`]) |
//! | [`dead_letter_after_nacks`] | always |
//!
//! The checks panic with a message naming the backend and the broken
//! promise, as test assertions do.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulse_core::BoxFuture;
use pulse_core::error::{ErrorKind, Result};
use pulse_core::mq::{
    BoxSubscription, Capabilities, Delivery, DynPublisher, DynSubscriber, Message, Subscription,
};
use pulse_core::signal::Signal;

use crate::proxy::Proxy;

/// A broker under test: it creates publishers and subscribers that share
/// one broker.
pub trait MqBackend: Send + Sync {
    /// Returns a short name for failure messages ("memory", "redis").
    fn name(&self) -> &str;

    /// Returns the capabilities the backend claims.
    fn capabilities(&self) -> Capabilities;

    /// Returns the maximum time a message neither acked nor nacked takes to
    /// come back after its consumer was dropped or closed: the visibility
    /// timeout plus the reclaim interval. Configure a short one for tests.
    fn redelivery_bound(&self) -> Duration;

    /// Creates a publisher. With `via`, it connects to that address (the
    /// testkit proxy) instead of the server's.
    fn publisher(&self, via: Option<SocketAddr>) -> BoxFuture<'_, Result<Arc<dyn DynPublisher>>>;

    /// Creates a subscriber. With `via`, it connects to that address.
    fn subscriber(&self, via: Option<SocketAddr>) -> BoxFuture<'_, Result<Arc<dyn DynSubscriber>>>;

    /// Returns the server's loopback address, for [`connection_cut`]. An
    /// in-process backend returns `None` and skips that check.
    fn server_addr(&self) -> Option<SocketAddr> {
        None
    }
}

/// The checks that ran and those skipped, with the reason.
#[derive(Debug, Default)]
pub struct Report {
    /// Names of the checks that ran and passed.
    pub passed: Vec<&'static str>,
    /// Names of the skipped checks, with the capability they need.
    pub skipped: Vec<(&'static str, &'static str)>,
}

/// How long a check waits for a message that should arrive; generous,
/// because two loaded cores may stall a test for seconds.
const ARRIVAL: Duration = Duration::from_secs(20);

/// Runs every check the backend's capabilities call for.
pub async fn run_all(backend: &dyn MqBackend) -> Report {
    let caps = backend.capabilities();
    let mut report = Report::default();

    round_trip(backend).await;
    report.passed.push("round_trip");
    rejects_bad_topic(backend).await;
    report.passed.push("rejects_bad_topic");
    settlement_rules(backend).await;
    report.passed.push("settlement_rules");
    many_subscribers(backend).await;
    report.passed.push("many_subscribers");
    if caps.ordered_per_key {
        order_per_key(backend).await;
        report.passed.push("order_per_key");
    } else {
        report.skipped.push(("order_per_key", "ordered_per_key"));
    }
    nack_redelivers(backend).await;
    report.passed.push("nack_redelivers");
    close_and_reopen(backend).await;
    report.passed.push("close_and_reopen");
    publisher_close_flushes(backend).await;
    report.passed.push("publisher_close_flushes");
    topic_isolation(backend).await;
    report.passed.push("topic_isolation");
    if caps.consumer_groups {
        two_groups(backend).await;
        report.passed.push("two_groups");
    } else {
        report.skipped.push(("two_groups", "consumer_groups"));
    }
    if caps.replays_old_messages {
        replays_old_messages(backend).await;
        report.passed.push("replays_old_messages");
    } else {
        report
            .skipped
            .push(("replays_old_messages", "replays_old_messages"));
    }
    if backend.server_addr().is_some() {
        connection_cut(backend).await;
        report.passed.push("connection_cut");
    } else {
        report.skipped.push(("connection_cut", "a server address"));
    }
    dead_letter_after_nacks(backend).await;
    report.passed.push("dead_letter_after_nacks");
    report
}

fn topic(area: &str) -> String {
    crate::unique_prefix(&format!("mq.{area}"))
}

fn numbered(prefix: &str, count: usize) -> Vec<Message> {
    (0..count)
        .map(|i| Message::new(format!("{prefix}-{i}"), i.to_string()))
        .collect()
}

async fn publisher(backend: &dyn MqBackend) -> Arc<dyn DynPublisher> {
    backend
        .publisher(None)
        .await
        .unwrap_or_else(|err| panic!("{}: creating a publisher failed: {err}", backend.name()))
}

async fn subscriber(backend: &dyn MqBackend) -> Arc<dyn DynSubscriber> {
    backend
        .subscriber(None)
        .await
        .unwrap_or_else(|err| panic!("{}: creating a subscriber failed: {err}", backend.name()))
}

async fn subscribe(
    backend: &dyn MqBackend,
    subscriber: &dyn DynSubscriber,
    topic: &str,
    group: &str,
) -> BoxSubscription {
    subscriber
        .subscribe_boxed(topic, group)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "{}: subscribing to `{topic}` as `{group}` failed: {err}",
                backend.name()
            )
        })
}

/// Waits up to `wait` for the next delivery; transient errors are skipped.
async fn receive(subscription: &mut BoxSubscription, wait: Duration) -> Option<Delivery> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, subscription.next()).await {
            Err(_) | Ok(None) => return None,
            Ok(Some(Ok(delivery))) => return Some(delivery),
            Ok(Some(Err(err))) if err.kind().is_transient() => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Some(Err(err))) => panic!("receiving failed with a non-transient error: {err}"),
        }
    }
}

/// Receives and acks until `expected` distinct ids arrived or `wait`
/// passed; returns the distinct ids seen.
async fn drain_ids(
    subscription: &mut BoxSubscription,
    expected: usize,
    wait: Duration,
) -> HashSet<String> {
    let deadline = Instant::now() + wait;
    let mut seen = HashSet::new();
    while seen.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(delivery) = receive(subscription, left).await else {
            break;
        };
        delivery.ack().await.expect("ack failed");
        seen.insert(delivery.message().id.clone());
    }
    seen
}

/// Checks that a message arrives with its id, key, headers and payload
/// intact.
pub async fn round_trip(backend: &dyn MqBackend) {
    let topic = topic("round-trip");
    let subscriber = subscriber(backend).await;
    let mut subscription = subscribe(backend, &*subscriber, &topic, "g").await;

    let payload: Vec<u8> = (0..=255u8).collect();
    let sent = Message::new("round-trip-1", payload)
        .with_key("key-1")
        .with_header("content-type", "application/octet-stream")
        .with_header("trace-id", "4bf92f3577b34da6a3ce929d0e0e4736")
        .with_header("note", "ünïcode and spaces");
    publisher(backend)
        .await
        .publish_boxed(&topic, sent.clone())
        .await
        .expect("publish failed");

    let delivery = receive(&mut subscription, ARRIVAL)
        .await
        .unwrap_or_else(|| panic!("{}: the published message never arrived", backend.name()));
    assert_eq!(
        delivery.message(),
        &sent,
        "{}: the message changed in transit",
        backend.name()
    );
    assert_eq!(
        delivery.topic(),
        topic,
        "{}: wrong topic on the delivery",
        backend.name()
    );
    assert_eq!(
        delivery.attempt(),
        1,
        "{}: a first delivery must be attempt 1",
        backend.name()
    );
    delivery.ack().await.expect("ack failed");
}

/// Checks that an empty topic or group is rejected with `InvalidInput`, not
/// a panic.
pub async fn rejects_bad_topic(backend: &dyn MqBackend) {
    let publisher = publisher(backend).await;
    let err = publisher
        .publish_boxed("", Message::new("m", "x"))
        .await
        .expect_err("publishing to an empty topic must fail");
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "{}: {err}",
        backend.name()
    );

    let subscriber = subscriber(backend).await;
    let err = subscriber
        .subscribe_boxed("", "g")
        .await
        .err()
        .expect("subscribing to an empty topic must fail");
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "{}: {err}",
        backend.name()
    );
    let err = subscriber
        .subscribe_boxed(&topic("bad-group"), "")
        .await
        .err()
        .expect("subscribing with an empty group must fail");
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "{}: {err}",
        backend.name()
    );
}

/// Checks that ack and nack are each idempotent, and that the second of the
/// two is rejected.
pub async fn settlement_rules(backend: &dyn MqBackend) {
    let topic = topic("settle");
    let subscriber = subscriber(backend).await;
    let mut subscription = subscribe(backend, &*subscriber, &topic, "g").await;
    publisher(backend)
        .await
        .publish_batch_boxed(&topic, numbered("s", 2))
        .await
        .expect("publish failed");

    let first = receive(&mut subscription, ARRIVAL)
        .await
        .expect("first message");
    first.ack().await.expect("ack");
    first.ack().await.expect("a second ack must succeed");
    let err = first
        .nack(None)
        .await
        .expect_err("nack after ack must fail");
    assert_eq!(err.kind(), ErrorKind::NotOwner, "{}: {err}", backend.name());

    let second = receive(&mut subscription, ARRIVAL)
        .await
        .expect("second message");
    second.nack(None).await.expect("nack");
    second.nack(None).await.expect("a second nack must succeed");
    let err = second.ack().await.expect_err("ack after nack must fail");
    assert_eq!(err.kind(), ErrorKind::NotOwner, "{}: {err}", backend.name());

    let again = receive(&mut subscription, ARRIVAL)
        .await
        .expect("the nacked message comes back");
    assert_eq!(again.message().id, second.message().id);
    again.ack().await.expect("ack");
}

/// Checks that 50 subscriptions of one group share 5,000 messages and lose
/// none.
pub async fn many_subscribers(backend: &dyn MqBackend) {
    const SUBSCRIPTIONS: usize = 50;
    const MESSAGES: usize = 5_000;
    let topic = topic("many");
    let subscriber = subscriber(backend).await;
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let done = Signal::new();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SUBSCRIPTIONS {
        let mut subscription = subscribe(backend, &*subscriber, &topic, "workers").await;
        let seen = seen.clone();
        let done = done.clone();
        tasks.spawn(async move {
            loop {
                let delivery = tokio::select! {
                    delivery = receive(&mut subscription, ARRIVAL * 3) => delivery,
                    () = done.fired() => return,
                };
                let Some(delivery) = delivery else { return };
                delivery.ack().await.expect("ack failed");
                let mut seen = seen.lock().unwrap();
                seen.insert(delivery.message().id.clone());
                if seen.len() == MESSAGES {
                    done.fire();
                }
            }
        });
    }

    let publisher = publisher(backend).await;
    for chunk in numbered("many", MESSAGES).chunks(100) {
        publisher
            .publish_batch_boxed(&topic, chunk.to_vec())
            .await
            .expect("publish failed");
    }
    tokio::select! {
        () = done.fired() => {}
        () = tokio::time::sleep(ARRIVAL * 3) => {}
    }
    done.fire();
    while tasks.join_next().await.is_some() {}
    let got = seen.lock().unwrap().len();
    assert_eq!(
        got,
        MESSAGES,
        "{}: {} of {MESSAGES} messages arrived at {SUBSCRIPTIONS} subscriptions",
        backend.name(),
        got
    );
}

/// Checks that messages with the same key arrive in publish order, across
/// several consumers of one group.
pub async fn order_per_key(backend: &dyn MqBackend) {
    const KEYS: usize = 4;
    const PER_KEY: usize = 100;
    let topic = topic("order");
    let subscriber = subscriber(backend).await;
    let log: Arc<Mutex<BTreeMap<String, Vec<usize>>>> = Arc::default();
    let done = Signal::new();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let mut subscription = subscribe(backend, &*subscriber, &topic, "ordered").await;
        let log = log.clone();
        let done = done.clone();
        tasks.spawn(async move {
            loop {
                let delivery = tokio::select! {
                    delivery = receive(&mut subscription, ARRIVAL) => delivery,
                    () = done.fired() => return,
                };
                let Some(delivery) = delivery else { return };
                let message = delivery.message();
                let key = message.key.clone().expect("keyed message");
                let seq: usize = std::str::from_utf8(&message.payload)
                    .unwrap()
                    .parse()
                    .unwrap();
                {
                    let mut log = log.lock().unwrap();
                    log.entry(key).or_default().push(seq);
                    if log.values().map(Vec::len).sum::<usize>() == KEYS * PER_KEY {
                        done.fire();
                    }
                }
                // Yield before the ack, so that another consumer gets a
                // chance to take the key's next message too early.
                tokio::task::yield_now().await;
                delivery.ack().await.expect("ack failed");
            }
        });
    }

    let messages: Vec<Message> = (0..PER_KEY)
        .flat_map(|seq| {
            (0..KEYS).map(move |key| {
                Message::new(format!("o-{key}-{seq}"), seq.to_string())
                    .with_key(format!("key-{key}"))
            })
        })
        .collect();
    publisher(backend)
        .await
        .publish_batch_boxed(&topic, messages)
        .await
        .expect("publish failed");
    tokio::select! {
        () = done.fired() => {}
        () = tokio::time::sleep(ARRIVAL) => {}
    }
    done.fire();
    while tasks.join_next().await.is_some() {}

    let log = log.lock().unwrap();
    let expected: Vec<usize> = (0..PER_KEY).collect();
    assert_eq!(
        log.len(),
        KEYS,
        "{}: messages of some keys never arrived",
        backend.name()
    );
    for (key, seqs) in log.iter() {
        assert_eq!(
            seqs,
            &expected,
            "{}: key `{key}` arrived out of order",
            backend.name()
        );
    }
}

/// Checks that a nacked message is delivered again with a higher attempt,
/// and that a nack with a delay is not redelivered before the delay.
pub async fn nack_redelivers(backend: &dyn MqBackend) {
    let topic = topic("nack");
    let subscriber = subscriber(backend).await;
    let mut subscription = subscribe(backend, &*subscriber, &topic, "g").await;
    let publisher = publisher(backend).await;
    publisher
        .publish_boxed(&topic, Message::new("n-1", "x"))
        .await
        .expect("publish failed");

    let first = receive(&mut subscription, ARRIVAL).await.expect("message");
    first.nack(None).await.expect("nack");
    let again = receive(&mut subscription, ARRIVAL)
        .await
        .unwrap_or_else(|| panic!("{}: a nacked message was not redelivered", backend.name()));
    assert_eq!(again.message().id, "n-1");
    assert_eq!(
        again.attempt(),
        2,
        "{}: the redelivery must be attempt 2",
        backend.name()
    );
    assert!(again.is_redelivery());

    if !backend.capabilities().delayed_redelivery {
        again.ack().await.expect("ack");
        return;
    }
    let delay = Duration::from_millis(300);
    let nacked_at = Instant::now();
    again.nack(Some(delay)).await.expect("nack with delay");
    let third = receive(&mut subscription, ARRIVAL)
        .await
        .unwrap_or_else(|| {
            panic!(
                "{}: a message nacked with a delay was not redelivered",
                backend.name()
            )
        });
    assert!(
        nacked_at.elapsed() >= delay,
        "{}: redelivered after {:?}, before the {delay:?} delay",
        backend.name(),
        nacked_at.elapsed()
    );
    assert_eq!(third.attempt(), 3);
    third.ack().await.expect("ack");
}

/// Checks that closing a subscriber with messages unacked, then subscribing again as
/// the same group, loses nothing: the unacked ones and those published
/// meanwhile all arrive.
pub async fn close_and_reopen(backend: &dyn MqBackend) {
    let topic = topic("reopen");
    let publisher = publisher(backend).await;
    let first = subscriber(backend).await;
    let mut subscription = subscribe(backend, &*first, &topic, "g").await;
    publisher
        .publish_batch_boxed(&topic, numbered("r", 100))
        .await
        .expect("publish failed");

    let mut acked = HashSet::new();
    for _ in 0..30 {
        let delivery = receive(&mut subscription, ARRIVAL).await.expect("message");
        delivery.ack().await.expect("ack");
        acked.insert(delivery.message().id.clone());
    }
    // Taken but never settled: the consumer "crashes" with these.
    let mut unsettled = Vec::new();
    for _ in 0..10 {
        unsettled.push(receive(&mut subscription, ARRIVAL).await.expect("message"));
    }
    drop(unsettled);
    drop(subscription);
    first.close_boxed().await.expect("close failed");

    publisher
        .publish_batch_boxed(&topic, numbered("r-late", 20))
        .await
        .expect("publish failed");
    let second = subscriber(backend).await;
    let mut subscription = subscribe(backend, &*second, &topic, "g").await;
    let wait = ARRIVAL + backend.redelivery_bound();
    let rest = drain_ids(&mut subscription, 90, wait).await;
    let missing: Vec<String> = numbered("r", 100)
        .into_iter()
        .chain(numbered("r-late", 20))
        .map(|m| m.id)
        .filter(|id| !acked.contains(id) && !rest.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{}: lost across close and reopen: {missing:?}",
        backend.name()
    );
    second.close_boxed().await.expect("close failed");
}

/// Checks that everything published before a publisher's close arrives,
/// and that publishing after it fails with `Closed`.
pub async fn publisher_close_flushes(backend: &dyn MqBackend) {
    let topic = topic("flush");
    let subscriber = subscriber(backend).await;
    let mut subscription = subscribe(backend, &*subscriber, &topic, "g").await;
    let publisher = publisher(backend).await;
    for message in numbered("f", 200) {
        publisher
            .publish_boxed(&topic, message)
            .await
            .expect("publish failed");
    }
    publisher.close_boxed().await.expect("close failed");
    let err = publisher
        .publish_boxed(&topic, Message::new("late", "x"))
        .await
        .expect_err("publishing after close must fail");
    assert_eq!(err.kind(), ErrorKind::Closed, "{}: {err}", backend.name());

    let seen = drain_ids(&mut subscription, 200, ARRIVAL).await;
    assert_eq!(
        seen.len(),
        200,
        "{}: only {} of 200 messages arrived after the publisher closed",
        backend.name(),
        seen.len()
    );
}

/// Checks that a subscriber of one topic never receives another topic's
/// messages.
pub async fn topic_isolation(backend: &dyn MqBackend) {
    let (a, b) = (topic("iso-a"), topic("iso-b"));
    let subscriber = subscriber(backend).await;
    let mut on_a = subscribe(backend, &*subscriber, &a, "g").await;
    let mut on_b = subscribe(backend, &*subscriber, &b, "g").await;
    let publisher = publisher(backend).await;
    publisher
        .publish_boxed(&a, Message::new("only-a", "x"))
        .await
        .expect("publish failed");
    publisher
        .publish_boxed(&b, Message::new("only-b", "x"))
        .await
        .expect("publish failed");

    let got_a = receive(&mut on_a, ARRIVAL).await.expect("message on a");
    assert_eq!(
        got_a.message().id,
        "only-a",
        "{}: topic a got another topic's message",
        backend.name()
    );
    got_a.ack().await.expect("ack");
    let got_b = receive(&mut on_b, ARRIVAL).await.expect("message on b");
    assert_eq!(
        got_b.message().id,
        "only-b",
        "{}: topic b got another topic's message",
        backend.name()
    );
    got_b.ack().await.expect("ack");
    assert!(
        receive(&mut on_a, Duration::from_millis(300))
            .await
            .is_none(),
        "{}: topic a got a second message",
        backend.name()
    );
}

/// Checks that two consumer groups each receive every message.
pub async fn two_groups(backend: &dyn MqBackend) {
    let topic = topic("groups");
    let subscriber = subscriber(backend).await;
    let mut first = subscribe(backend, &*subscriber, &topic, "first").await;
    let mut second = subscribe(backend, &*subscriber, &topic, "second").await;
    publisher(backend)
        .await
        .publish_batch_boxed(&topic, numbered("g", 100))
        .await
        .expect("publish failed");

    let first_ids = drain_ids(&mut first, 100, ARRIVAL).await;
    let second_ids = drain_ids(&mut second, 100, ARRIVAL).await;
    assert_eq!(
        first_ids.len(),
        100,
        "{}: group `first` got {} of 100",
        backend.name(),
        first_ids.len()
    );
    assert_eq!(
        second_ids.len(),
        100,
        "{}: group `second` got {} of 100",
        backend.name(),
        second_ids.len()
    );
}

/// Checks that a group created after messages were published reads them.
pub async fn replays_old_messages(backend: &dyn MqBackend) {
    let topic = topic("replay");
    let subscriber = subscriber(backend).await;
    let mut early = subscribe(backend, &*subscriber, &topic, "early").await;
    publisher(backend)
        .await
        .publish_batch_boxed(&topic, numbered("old", 10))
        .await
        .expect("publish failed");
    assert_eq!(drain_ids(&mut early, 10, ARRIVAL).await.len(), 10);

    let mut late = subscribe(backend, &*subscriber, &topic, "late").await;
    let seen = drain_ids(&mut late, 10, ARRIVAL).await;
    assert_eq!(
        seen.len(),
        10,
        "{}: a new group read {} of 10 old messages",
        backend.name(),
        seen.len()
    );
}

/// Checks that cutting every connection through the testkit proxy for a while loses no
/// message: publishes that failed are retried by the caller, and the
/// subscription resumes once the connection is back.
pub async fn connection_cut(backend: &dyn MqBackend) {
    const MESSAGES: usize = 300;
    let upstream = backend.server_addr().expect("a server address");
    let proxy = Arc::new(
        Proxy::start(upstream)
            .await
            .expect("starting the proxy failed"),
    );
    let topic = topic("cut");
    let publisher = backend
        .publisher(Some(proxy.addr()))
        .await
        .expect("publisher through the proxy");
    let subscriber = backend
        .subscriber(Some(proxy.addr()))
        .await
        .expect("subscriber through the proxy");
    let mut subscription = subscribe(backend, &*subscriber, &topic, "g").await;

    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let consumer = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + ARRIVAL * 3;
            while seen.lock().unwrap().len() < MESSAGES && Instant::now() < deadline {
                let Some(delivery) = receive(&mut subscription, Duration::from_secs(1)).await
                else {
                    continue;
                };
                // An ack lost in the cut only means a redelivery later.
                let _ = delivery.ack().await;
                seen.lock().unwrap().insert(delivery.message().id.clone());
            }
        })
    };

    for (i, message) in numbered("cut", MESSAGES).into_iter().enumerate() {
        if i == MESSAGES / 3 {
            // Cut for one second while both sides are busy.
            proxy.cut();
            let proxy = proxy.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                proxy.restore();
            });
        }
        // At-least-once publishing: retry until the broker accepted it.
        let deadline = Instant::now() + ARRIVAL;
        while let Err(err) = publisher.publish_boxed(&topic, message.clone()).await {
            assert!(
                Instant::now() < deadline,
                "{}: publishing never recovered after the cut: {err}",
                backend.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    consumer.await.expect("consumer task panicked");
    let got = seen.lock().unwrap().len();
    assert_eq!(
        got,
        MESSAGES,
        "{}: {got} of {MESSAGES} messages arrived across a connection cut",
        backend.name()
    );
}

/// Checks the delivery count that drives dead-lettering. A consumer nacks
/// until the attempt reaches 3 and then publishes the message on a
/// dead-letter topic, so it receives 3 deliveries and the dead-letter topic
/// exactly one message, which carries the reason.
pub async fn dead_letter_after_nacks(backend: &dyn MqBackend) {
    const MAX_DELIVERIES: u32 = 3;
    let topic = topic("dlq-source");
    let dead = topic.replace("source", "dead");
    let subscriber = subscriber(backend).await;
    let mut source = subscribe(backend, &*subscriber, &topic, "g").await;
    let mut dead_letters = subscribe(backend, &*subscriber, &dead, "g").await;
    let publisher = publisher(backend).await;
    publisher
        .publish_boxed(&topic, Message::new("poison", "x"))
        .await
        .expect("publish failed");

    let mut deliveries = 0;
    loop {
        let delivery = receive(&mut source, ARRIVAL + backend.redelivery_bound())
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{}: attempt {} never arrived",
                    backend.name(),
                    deliveries + 1
                )
            });
        deliveries += 1;
        assert_eq!(
            delivery.attempt(),
            deliveries,
            "{}: wrong attempt count",
            backend.name()
        );
        if delivery.attempt() < MAX_DELIVERIES {
            delivery.nack(None).await.expect("nack");
            continue;
        }
        let dead_message = delivery
            .message()
            .clone()
            .with_header("dead-letter-reason", "handler failed 3 times")
            .with_header("original-topic", &topic);
        publisher
            .publish_boxed(&dead, dead_message)
            .await
            .expect("dead-letter publish failed");
        delivery.ack().await.expect("ack");
        break;
    }
    assert_eq!(deliveries, MAX_DELIVERIES);

    let dead_delivery = receive(&mut dead_letters, ARRIVAL)
        .await
        .expect("dead-lettered message");
    assert_eq!(dead_delivery.message().id, "poison");
    assert_eq!(
        dead_delivery.message().header("dead-letter-reason"),
        Some("handler failed 3 times")
    );
    dead_delivery.ack().await.expect("ack");
    assert!(
        receive(&mut source, Duration::from_millis(300))
            .await
            .is_none(),
        "{}: the dead-lettered message was redelivered",
        backend.name()
    );
    assert!(
        receive(&mut dead_letters, Duration::from_millis(100))
            .await
            .is_none(),
        "{}: more than one dead letter",
        backend.name()
    );
}
