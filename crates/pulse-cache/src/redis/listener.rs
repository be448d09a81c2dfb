//! The invalidation listener: one dedicated connection per store that turns
//! Redis tracking messages or pub/sub messages into [`Invalidation`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_redis::redis::AsyncConnectionConfig;
use deadpool_redis::redis::{self, ConnectionInfo, ProtocolVersion, PushKind, Value};
use futures_util::StreamExt;
use pulse_core::cache::{Invalidation, Invalidations};
use pulse_core::signal::Signal;
use tokio::sync::{broadcast, mpsc};

use super::{Inner, InvalidationMode};

/// Maximum wait between two reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a tracking connection is pinged to notice a dead peer.
const PING_EVERY: Duration = Duration::from_secs(1);

pub(super) fn is_live(inner: &Inner) -> bool {
    inner.live.load(Ordering::SeqCst)
}

/// Subscribes to the stream, starting the listener on first use.
pub(super) fn subscribe(inner: &Inner) -> Option<Invalidations> {
    let client = inner.listener_client.as_ref()?;
    let info = inner.listener_info.clone()?;
    let receiver = inner.sender.subscribe();

    if inner.listener_started.swap(true, Ordering::SeqCst) {
        // A late subscriber missed the first `All`. The stream is live, so a
        // fresh `All` lets it keep copies (other subscribers flush once more).
        if is_live(inner) {
            let _ = inner.sender.send(Invalidation::All);
        }
        return Some(Invalidations::new(receiver));
    }

    let task = Listener {
        client: client.clone(),
        info,
        mode: inner.mode,
        value_prefix: inner.value_prefix.clone(),
        channel: inner.channel.clone(),
        sender: inner.sender.clone(),
        live: inner.live.clone(),
    };
    if let Err(err) = inner
        .background
        .spawn("invalidation-listener", move |stop| task.run(stop))
    {
        inner.listener_started.store(false, Ordering::SeqCst);
        tracing::error!(target: "pulse_cache", error = %err, "invalidation listener not started; the store has no invalidation stream");
        return None;
    }
    Some(Invalidations::new(receiver))
}

struct Listener {
    client: redis::Client,
    info: ConnectionInfo,
    mode: InvalidationMode,
    value_prefix: String,
    channel: String,
    sender: broadcast::Sender<Invalidation>,
    live: Arc<AtomicBool>,
}

/// The reason a listening session ended.
enum Ended {
    Stopped,
    /// The server does not support this mode.
    Unsupported(String),
    Lost(String),
}

impl Listener {
    async fn run(mut self, stop: Signal) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let mode = self.mode;
            let ended = match mode {
                InvalidationMode::PubSub => self.pubsub_session(&stop).await,
                InvalidationMode::Tracking | InvalidationMode::Auto => {
                    self.tracking_session(&stop).await
                }
            };
            let was_live = self.live.swap(false, Ordering::SeqCst);
            if was_live {
                let _ = self.sender.send(Invalidation::Interrupted);
            }
            match ended {
                Ended::Stopped => break,
                Ended::Unsupported(reason) if mode == InvalidationMode::Auto => {
                    tracing::info!(target: "pulse_cache", %reason, "client tracking unavailable; invalidating through pub/sub");
                    self.mode = InvalidationMode::PubSub;
                    continue;
                }
                Ended::Unsupported(reason) | Ended::Lost(reason) => {
                    tracing::warn!(target: "pulse_cache", %reason, retry_in = ?backoff, "invalidation stream lost; local copies dropped until it is back");
                }
            }
            if was_live {
                backoff = Duration::from_millis(50);
            }
            tokio::select! {
                _ = stop.fired() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        tracing::debug!(target: "pulse_cache", "invalidation listener stopped");
    }

    fn went_live(&self, how: &'static str) {
        self.live.store(true, Ordering::SeqCst);
        let _ = self.sender.send(Invalidation::All);
        tracing::debug!(target: "pulse_cache", mode = how, "invalidation stream live");
    }

    async fn tracking_session(&self, stop: &Signal) -> Ended {
        let settings = self
            .info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = self.info.clone().set_redis_settings(settings);
        let client = match redis::Client::open(info) {
            Ok(client) => client,
            Err(err) => return Ended::Unsupported(err.to_string()),
        };
        let (pushes, mut received) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_push_sender(pushes)
            .set_response_timeout(Some(Duration::from_secs(5)));
        let mut conn = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => conn,
            Err(err) if err.is_io_error() || err.is_timeout() => {
                return Ended::Lost(err.to_string());
            }
            Err(err) => return Ended::Unsupported(err.to_string()),
        };
        let tracking = redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.value_prefix)
            .query_async::<()>(&mut conn)
            .await;
        match tracking {
            Ok(()) => {}
            Err(err) if err.is_io_error() || err.is_timeout() => {
                return Ended::Lost(err.to_string());
            }
            Err(err) => return Ended::Unsupported(err.to_string()),
        }
        self.went_live("tracking");

        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.fired() => return Ended::Stopped,
                push = received.recv() => {
                    let Some(push) = push else { return Ended::Lost("push channel closed".into()) };
                    match push.kind {
                        PushKind::Invalidate => self.forward_tracking(push.data),
                        PushKind::Disconnection => return Ended::Lost("connection closed".into()),
                        _ => {}
                    }
                }
                _ = ping.tick() => {
                    if let Err(err) = redis::cmd("PING").query_async::<()>(&mut conn).await {
                        return Ended::Lost(err.to_string());
                    }
                }
            }
        }
    }

    fn forward_tracking(&self, data: Vec<Value>) {
        // `invalidate` carries an array of keys, or nil when the whole
        // database was flushed.
        match data.into_iter().next() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    let key = match key {
                        Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                        Value::SimpleString(text) => text,
                        _ => continue,
                    };
                    if let Some(user_key) = key.strip_prefix(&self.value_prefix) {
                        let _ = self.sender.send(Invalidation::Key(user_key.to_owned()));
                    }
                }
            }
            _ => {
                let _ = self.sender.send(Invalidation::All);
            }
        }
    }

    async fn pubsub_session(&self, stop: &Signal) -> Ended {
        let mut pubsub = match self.client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(err) => return Ended::Lost(err.to_string()),
        };
        if let Err(err) = pubsub.subscribe(&self.channel).await {
            return Ended::Lost(err.to_string());
        }
        self.went_live("pubsub");

        let mut messages = pubsub.into_on_message();
        loop {
            tokio::select! {
                _ = stop.fired() => return Ended::Stopped,
                message = messages.next() => {
                    let Some(message) = message else { return Ended::Lost("connection closed".into()) };
                    let key = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                    let _ = self.sender.send(Invalidation::Key(key));
                }
            }
        }
    }
}
