//! A consumer killed mid-batch without acking loses nothing: every message
//! it held is redelivered to another consumer of its group.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulse_core::mq::{DynPublisher, DynSubscriber, Message, Subscription};
use pulse_mq::MemoryBroker;

const MESSAGES: usize = 10_000;
/// How many messages the victim takes before it is killed.
const VICTIM_TAKES: usize = 600;

struct Outcome {
    handled: HashSet<String>,
    held_by_victim: HashSet<String>,
    redelivered: HashSet<String>,
}

async fn crash_mid_batch(
    publisher: Arc<dyn DynPublisher>,
    subscriber: Arc<dyn DynSubscriber>,
    topic: &str,
    wait: Duration,
) -> Outcome {
    let handled: Arc<Mutex<HashSet<String>>> = Arc::default();
    let held: Arc<Mutex<HashSet<String>>> = Arc::default();
    let redelivered: Arc<Mutex<HashSet<String>>> = Arc::default();

    // The victim acks every third message and holds the rest unsettled.
    let mut victim_subscription = subscriber.subscribe_boxed(topic, "workers").await.unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let victim = {
        let (handled, held) = (handled.clone(), held.clone());
        tokio::spawn(async move {
            let mut unsettled = Vec::new();
            for taken in 0..VICTIM_TAKES {
                let delivery = victim_subscription.next().await.unwrap().unwrap();
                let id = delivery.message().id.clone();
                if taken % 3 == 0 {
                    delivery.ack().await.unwrap();
                    handled.lock().unwrap().insert(id);
                } else {
                    held.lock().unwrap().insert(id);
                    unsettled.push(delivery);
                }
            }
            let _ = ready_tx.send(());
            // Killed here, mid-batch, with deliveries in hand.
            std::future::pending::<()>().await;
            drop(unsettled);
        })
    };

    let messages: Vec<Message> = (0..MESSAGES)
        .map(|i| Message::new(format!("m-{i}"), &b"0123456789abcdef"[..]))
        .collect();
    for chunk in messages.chunks(500) {
        publisher
            .publish_batch_boxed(topic, chunk.to_vec())
            .await
            .unwrap();
    }
    ready_rx.await.expect("victim took its batch");
    victim.abort();
    let _ = victim.await;

    let deadline = Instant::now() + wait;
    let mut survivors = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let mut subscription = subscriber.subscribe_boxed(topic, "workers").await.unwrap();
        let (handled, redelivered) = (handled.clone(), redelivered.clone());
        survivors.spawn(async move {
            while handled.lock().unwrap().len() < MESSAGES && Instant::now() < deadline {
                let Ok(Some(next)) =
                    tokio::time::timeout(Duration::from_millis(500), subscription.next()).await
                else {
                    continue;
                };
                let delivery = next.unwrap();
                delivery.ack().await.unwrap();
                let id = delivery.message().id.clone();
                if delivery.is_redelivery() {
                    redelivered.lock().unwrap().insert(id.clone());
                }
                handled.lock().unwrap().insert(id);
            }
        });
    }
    while survivors.join_next().await.is_some() {}

    let take = |set: &Arc<Mutex<HashSet<String>>>| std::mem::take(&mut *set.lock().unwrap());
    Outcome {
        handled: take(&handled),
        held_by_victim: take(&held),
        redelivered: take(&redelivered),
    }
}

fn check(outcome: &Outcome) {
    assert_eq!(
        outcome.handled.len(),
        MESSAGES,
        "messages lost after a consumer crash"
    );
    assert_eq!(
        outcome.held_by_victim.len(),
        VICTIM_TAKES - VICTIM_TAKES.div_ceil(3)
    );
    let missing: Vec<&String> = outcome
        .held_by_victim
        .difference(&outcome.redelivered)
        .collect();
    assert!(
        missing.is_empty(),
        "held by the killed consumer and never redelivered: {} ids, first {:?}",
        missing.len(),
        missing.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_consumer_crash_loses_nothing() {
    let broker = MemoryBroker::builder()
        .visibility_timeout(Duration::from_secs(1))
        .build();
    let outcome = crash_mid_batch(
        Arc::new(broker.publisher()),
        Arc::new(broker.subscriber()),
        "crash",
        Duration::from_secs(60),
    )
    .await;
    check(&outcome);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_consumer_crash_loses_nothing() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("mq");
    let streams = pulse_mq::redis::RedisStreams::from_url(&url)
        .unwrap()
        .prefix(prefix.clone())
        .visibility_timeout(Duration::from_secs(1))
        .claim_interval(Duration::from_millis(200));
    let outcome = crash_mid_batch(
        Arc::new(streams.publisher()),
        Arc::new(streams.subscriber()),
        "crash",
        Duration::from_secs(90),
    )
    .await;

    let mut conn = streams.pool().get().await.unwrap();
    let _: i64 = deadpool_redis::redis::cmd("DEL")
        .arg(streams.stream_key("crash"))
        .query_async(&mut conn)
        .await
        .unwrap();
    check(&outcome);
}
