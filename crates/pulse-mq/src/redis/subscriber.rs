//! Consuming with `XREADGROUP`, batched `XACK`, and reclaim with
//! `XAUTOCLAIM`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use deadpool_redis::redis::{self, Value};
use pulse_core::BoxFuture;
use pulse_core::clock::MonoTime;
use pulse_core::error::{Error, Result};
use pulse_core::mq::{Acknowledge, Capabilities, Delivery, Subscriber, Subscription};
use pulse_core::signal::Signal;
use pulse_core::task::Background;

use super::wire::{self, EntryId};
use super::{ConnSlot, GroupStart, Settings, backend_error};
use crate::drain::Tracker;
use crate::error::MqError;
use crate::router::Backoff;

/// Subscribes to Redis Streams as members of consumer groups.
///
/// Acks are queued and sent in batches by the subscriptions and by a
/// background task that runs while the subscriber has subscriptions;
/// [`close`](Subscriber::close) sends what is queued.
#[derive(Clone)]
pub struct StreamsSubscriber {
    settings: Arc<Settings>,
    inner: Arc<Inner>,
}

struct Inner {
    closed: Signal,
    tracker: Tracker,
    queues: Mutex<Vec<Arc<AckQueue>>>,
    /// The monotonic time, in nanoseconds, at which a nacked message becomes
    /// claimable; subscriptions run `XAUTOCLAIM` once it has passed.
    claim_at: AtomicU64,
    flusher: Background,
    flusher_started: AtomicBool,
}

impl std::fmt::Debug for StreamsSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsSubscriber")
            .field("prefix", &self.settings.prefix)
            .field("closed", &self.inner.closed.is_fired())
            .finish()
    }
}

/// The acks of one subscription waiting to be sent.
struct AckQueue {
    key: String,
    group: String,
    ids: Mutex<Vec<EntryId>>,
    alive: AtomicBool,
}

impl AckQueue {
    fn push(&self, entry_id: EntryId) -> usize {
        let mut ids = lock(&self.ids);
        ids.push(entry_id);
        ids.len()
    }

    fn take(&self) -> Vec<EntryId> {
        std::mem::take(&mut *lock(&self.ids))
    }

    fn put_back(&self, mut taken: Vec<EntryId>) {
        lock(&self.ids).append(&mut taken);
    }

    fn xack(&self, ids: &[EntryId]) -> redis::Cmd {
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.key).arg(&self.group).arg(ids);
        cmd
    }

    async fn flush(&self, settings: &Settings) -> Result<()> {
        let ids = self.take();
        if ids.is_empty() {
            return Ok(());
        }
        let sent = async {
            let mut conn = settings.conn.get().await?;
            let _: i64 = self
                .xack(&ids)
                .query_async(&mut conn)
                .await
                .map_err(|err| {
                    settings.conn.check(&err);
                    backend_error(format!("XACK on `{}`", self.key), err)
                })?;
            Ok::<(), Error>(())
        };
        if let Err(err) = sent.await {
            self.put_back(ids);
            return Err(err);
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl StreamsSubscriber {
    pub(crate) fn new(settings: Arc<Settings>) -> Self {
        StreamsSubscriber {
            settings,
            inner: Arc::new(Inner {
                closed: Signal::new(),
                tracker: Tracker::default(),
                queues: Mutex::new(Vec::new()),
                claim_at: AtomicU64::new(u64::MAX),
                flusher: Background::new("pulse_mq::redis"),
                flusher_started: AtomicBool::new(false),
            }),
        }
    }

    async fn create_group(&self, key: &str, group: &str) -> Result<()> {
        let start = match self.settings.group_start {
            GroupStart::Oldest => "0",
            GroupStart::Latest => "$",
        };
        let mut conn = self.settings.conn.get().await?;
        let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            Err(err) => {
                self.settings.conn.check(&err);
                Err(backend_error(
                    format!("XGROUP CREATE `{group}` on `{key}`"),
                    err,
                ))
            }
        }
    }

    fn start_flusher(&self) -> Result<()> {
        if self.inner.flusher_started.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        let settings = self.settings.clone();
        self.inner
            .flusher
            .spawn("ack-flush", move |stop| async move {
                loop {
                    tokio::select! {
                        () = stop.fired() => return,
                        () = settings.clock.sleep(settings.ack_interval) => {}
                    }
                    let Some(inner) = inner.upgrade() else { return };
                    inner.flush_all(&settings).await;
                }
            })
    }
}

impl Inner {
    async fn flush_all(&self, settings: &Settings) {
        let queues: Vec<Arc<AckQueue>> = lock(&self.queues).clone();
        for queue in &queues {
            if let Err(err) = queue.flush(settings).await {
                tracing::warn!(target: "pulse_mq", stream = %queue.key, group = %queue.group, error = %err, "sending queued acks failed; retrying later");
            }
        }
        // A dropped subscription's queue goes once its acks are sent.
        lock(&self.queues).retain(|q| q.alive.load(Ordering::Acquire) || !lock(&q.ids).is_empty());
    }

    fn request_claim(&self, at: MonoTime) {
        self.claim_at.fetch_min(at.as_nanos(), Ordering::AcqRel);
    }

    fn claim_due(&self, now: MonoTime) -> bool {
        self.claim_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |at| {
                (at <= now.as_nanos()).then_some(u64::MAX)
            })
            .is_ok()
    }
}

impl Subscriber for StreamsSubscriber {
    type Subscription = StreamsSubscription;

    async fn subscribe(&self, topic: &str, group: &str) -> Result<StreamsSubscription> {
        if self.inner.closed.is_fired() {
            return Err(MqError::Closed { what: "subscriber" }.into());
        }
        self.settings.limits.check_topic(topic)?;
        self.settings.limits.check_group(group)?;
        let key = self.settings.stream_key(topic);
        self.create_group(&key, group).await?;
        self.start_flusher()?;

        let consumer = format!("{group}-{}", uuid::Uuid::now_v7().simple());
        let queue = Arc::new(AckQueue {
            key: key.clone(),
            group: group.to_owned(),
            ids: Mutex::new(Vec::new()),
            alive: AtomicBool::new(true),
        });
        lock(&self.inner.queues).push(queue.clone());
        tracing::debug!(target: "pulse_mq", stream = %key, group, consumer = %consumer, "Redis Streams subscription started");
        Ok(StreamsSubscription {
            settings: self.settings.clone(),
            inner: self.inner.clone(),
            topic: Arc::from(topic),
            key,
            group: group.to_owned(),
            consumer: Arc::from(consumer.as_str()),
            queue: queue.clone(),
            reader: ConnSlot::new(self.settings.pool.clone()),
            ack_context: Arc::new(AckContext {
                settings: self.settings.clone(),
                inner: self.inner.clone(),
                queue: queue.clone(),
                consumer: Arc::from(consumer.as_str()),
            }),
            buffer: VecDeque::new(),
            next_claim: MonoTime::ZERO,
            claim_cursor: "0-0".to_owned(),
            failures: 0,
        })
    }

    fn capabilities(&self) -> Capabilities {
        self.settings.capabilities()
    }

    async fn close(&self) -> Result<()> {
        self.inner.closed.fire();
        self.inner
            .tracker
            .drain(&*self.settings.clock, self.settings.drain_timeout)
            .await;
        self.inner.flusher.shutdown().await;
        self.inner.flush_all(&self.settings).await;
        let left: usize = lock(&self.inner.queues)
            .iter()
            .map(|q| lock(&q.ids).len())
            .sum();
        if left > 0 {
            return Err(MqError::Backend {
                action: "sending queued acks at close".to_owned(),
                source: format!("{left} acks could not be sent; those messages are redelivered")
                    .into(),
            }
            .into());
        }
        tracing::debug!(target: "pulse_mq", "Redis Streams subscriber closed");
        Ok(())
    }
}

/// A stream of deliveries from one consumer group of a stream, as one
/// consumer of that group.
///
/// Dropping it leaves the messages it took and did not settle pending under
/// its consumer name; another consumer takes them over with `XAUTOCLAIM`
/// after the visibility timeout.
pub struct StreamsSubscription {
    settings: Arc<Settings>,
    inner: Arc<Inner>,
    topic: Arc<str>,
    key: String,
    group: String,
    consumer: Arc<str>,
    queue: Arc<AckQueue>,
    ack_context: Arc<AckContext>,
    /// The subscription's own connection, because a blocking read holds
    /// its connection until it returns.
    reader: ConnSlot,
    buffer: VecDeque<Buffered>,
    next_claim: MonoTime,
    claim_cursor: String,
    failures: u32,
}

impl std::fmt::Debug for StreamsSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsSubscription")
            .field("stream", &self.key)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl Subscription for StreamsSubscription {
    async fn next(&mut self) -> Option<Result<Delivery>> {
        loop {
            // A closed subscriber hands out nothing more; buffered entries
            // stay pending and are reclaimed after the visibility timeout.
            if self.inner.closed.is_fired() {
                return None;
            }
            if let Some(entry) = self.buffer.pop_front() {
                return Some(Ok(self.hand_out(entry)));
            }
            match self.fill().await {
                Ok(()) => self.failures = 0,
                Err(err) => {
                    self.failures = self.failures.saturating_add(1);
                    let delay = Backoff::new(Duration::from_millis(50))
                        .max(Duration::from_secs(5))
                        .delay(self.failures);
                    tracing::warn!(target: "pulse_mq", stream = %self.key, group = %self.group, error = %err, ?delay, "reading from Redis failed; retrying");
                    tokio::select! {
                        () = self.settings.clock.sleep(delay) => {}
                        () = self.inner.closed.fired() => return None,
                    }
                }
            }
        }
    }
}

impl StreamsSubscription {
    async fn fill(&mut self) -> Result<()> {
        let now = self.settings.clock.now();
        let nacked = self.inner.claim_due(now);
        if nacked {
            self.claim_cursor = "0-0".to_owned();
        }
        if nacked || now >= self.next_claim {
            self.claim(now).await?;
            if !self.buffer.is_empty() {
                return Ok(());
            }
        }
        self.read().await
    }

    /// Reads new entries, sending queued acks in the same round trip.
    async fn read(&mut self) -> Result<()> {
        let acks = TakenAcks {
            ids: self.queue.take(),
            queue: self.queue.clone(),
        };
        let mut pipe = redis::pipe();
        if !acks.ids.is_empty() {
            pipe.add_command(self.queue.xack(&acks.ids)).ignore();
        }
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&*self.consumer)
            .arg("COUNT")
            .arg(self.settings.batch)
            .arg("BLOCK")
            .arg(self.settings.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">");

        let mut conn = self.reader.get().await?;
        let reply: redis::RedisResult<(Value,)> = pipe.query_async(&mut conn).await;
        let (value,) = match reply {
            Ok(value) => {
                acks.sent();
                value
            }
            Err(err) => {
                drop(acks);
                self.reader.check(&err);
                if err.code() == Some("NOGROUP") {
                    // The stream or group was deleted: create it again and read on.
                    tracing::warn!(target: "pulse_mq", stream = %self.key, group = %self.group, "consumer group missing; creating it again");
                    StreamsSubscriber {
                        settings: self.settings.clone(),
                        inner: self.inner.clone(),
                    }
                    .create_group(&self.key, &self.group)
                    .await?;
                }
                return Err(backend_error(format!("XREADGROUP on `{}`", self.key), err));
            }
        };
        for entry in wire::read_reply(value) {
            self.accept(entry, 1);
        }
        Ok(())
    }

    /// Takes over entries idle for longer than the visibility timeout.
    async fn claim(&mut self, now: MonoTime) -> Result<()> {
        let settings = self.settings.clone();
        let mut conn = self.reader.get().await?;
        let min_idle = settings.visibility_timeout.as_millis() as u64;
        let value: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&*self.consumer)
            .arg(min_idle)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(settings.batch)
            .query_async(&mut conn)
            .await
            .map_err(|err| {
                self.reader.check(&err);
                backend_error(format!("XAUTOCLAIM on `{}`", self.key), err)
            })?;
        let (cursor, claimed, deleted) = wire::autoclaim_reply(value);
        if cursor == "0-0" {
            self.next_claim = now.saturating_add(settings.claim_interval);
        }
        self.claim_cursor = cursor;
        if !deleted.is_empty() {
            tracing::warn!(target: "pulse_mq", stream = %self.key, group = %self.group, lost = deleted.len(), "pending entries were trimmed from the stream before they were acked; they are lost");
        }
        if claimed.is_empty() {
            return Ok(());
        }

        // The delivery count lives in the pending list, which XAUTOCLAIM
        // has just incremented for each claimed entry.
        let (Some(first), Some(last)) = (
            claimed.first().map(|e| e.entry_id),
            claimed.last().map(|e| e.entry_id),
        ) else {
            return Ok(());
        };
        let value: Value = redis::cmd("XPENDING")
            .arg(&self.key)
            .arg(&self.group)
            .arg(first)
            .arg(last)
            .arg(claimed.len() + self.settings.batch)
            .arg(&*self.consumer)
            .query_async(&mut conn)
            .await
            .map_err(|err| {
                self.reader.check(&err);
                backend_error(format!("XPENDING on `{}`", self.key), err)
            })?;
        let counts: HashMap<EntryId, u64> = wire::pending_counts(value).into_iter().collect();
        tracing::warn!(target: "pulse_mq", stream = %self.key, group = %self.group, consumer = %self.consumer, claimed = claimed.len(), "took over messages idle past the visibility timeout");
        for entry in claimed {
            let attempt = counts.get(&entry.entry_id).copied().unwrap_or(2);
            self.accept(entry, u32::try_from(attempt).unwrap_or(u32::MAX));
        }
        Ok(())
    }

    fn accept(&mut self, entry: wire::Entry, attempt: u32) {
        let Some(message) = entry.message else {
            tracing::warn!(target: "pulse_mq", stream = %self.key, entry = %entry.entry_id, "entry without a pulse-mq `id` field skipped and acked");
            self.queue.push(entry.entry_id);
            return;
        };
        self.buffer.push_back(Buffered {
            entry_id: entry.entry_id,
            message,
            attempt,
        });
    }

    /// Turns a buffered entry into a delivery; only from here on does it
    /// count as unsettled for the drain of [`Subscriber::close`].
    fn hand_out(&self, entry: Buffered) -> Delivery {
        self.inner.tracker.start();
        let acker = StreamsAck {
            context: self.ack_context.clone(),
            entry_id: entry.entry_id,
            open: AtomicBool::new(true),
        };
        Delivery::new(
            self.topic.clone(),
            entry.message,
            entry.attempt,
            Arc::new(acker),
        )
    }
}

/// An entry read and not handed out yet.
struct Buffered {
    entry_id: EntryId,
    message: pulse_core::mq::Message,
    attempt: u32,
}

/// Acks taken from the queue for one round trip. They go back to the queue
/// unless the round trip succeeded, also when the read is cancelled.
struct TakenAcks {
    ids: Vec<EntryId>,
    queue: Arc<AckQueue>,
}

impl TakenAcks {
    fn sent(mut self) {
        self.ids.clear();
    }
}

impl Drop for TakenAcks {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            self.queue.put_back(std::mem::take(&mut self.ids));
        }
    }
}

impl Drop for StreamsSubscription {
    fn drop(&mut self) {
        // Buffered deliveries were never handed out; they stay pending and
        // are reclaimed after the visibility timeout.
        self.buffer.clear();
        self.queue.alive.store(false, Ordering::Release);
    }
}

/// What every ack handle of one subscription shares, behind one `Arc` so
/// that a delivery costs one reference count, not four.
struct AckContext {
    settings: Arc<Settings>,
    inner: Arc<Inner>,
    queue: Arc<AckQueue>,
    consumer: Arc<str>,
}

struct StreamsAck {
    context: Arc<AckContext>,
    entry_id: EntryId,
    open: AtomicBool,
}

impl StreamsAck {
    fn finish(&self) {
        if self.open.swap(false, Ordering::AcqRel) {
            self.context.inner.tracker.done();
        }
    }

    async fn xclaim_idle(&self, idle: Duration) -> Result<()> {
        let mut conn = self.context.settings.conn.get().await?;
        let _: Value = redis::cmd("XCLAIM")
            .arg(&self.context.queue.key)
            .arg(&self.context.queue.group)
            .arg(&*self.context.consumer)
            .arg(0)
            .arg(self.entry_id)
            .arg("IDLE")
            .arg(idle.as_millis() as u64)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await
            .map_err(|err| {
                self.context.settings.conn.check(&err);
                backend_error(format!("XCLAIM on `{}`", self.context.queue.key), err)
            })?;
        Ok(())
    }
}

impl Acknowledge for StreamsAck {
    fn ack(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let queued = self.context.queue.push(self.entry_id);
            self.finish();
            // Acks normally ride on the next read; this bounds the queue of a
            // consumer that stops reading.
            if queued >= self.context.settings.batch * 4 {
                self.context.queue.flush(&self.context.settings).await?;
            }
            Ok(())
        })
    }

    fn nack(&self, delay: Option<Duration>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            // An entry that has been idle for the visibility timeout is
            // claimable, so making it look idle for (timeout - delay) makes it
            // claimable after the delay.
            let visibility = self.context.settings.visibility_timeout;
            let delay = delay.unwrap_or(Duration::ZERO).min(visibility);
            self.xclaim_idle(visibility - delay).await?;
            self.context
                .inner
                .request_claim(self.context.settings.clock.now().saturating_add(delay));
            self.finish();
            Ok(())
        })
    }

    fn in_progress(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.xclaim_idle(Duration::ZERO))
    }
}

impl Drop for StreamsAck {
    fn drop(&mut self) {
        self.finish();
    }
}
