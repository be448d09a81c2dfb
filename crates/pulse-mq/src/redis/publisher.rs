//! Publishing with `XADD`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_redis::redis::{self, Cmd};
use pulse_core::error::Result;
use pulse_core::mq::{Message, Publisher};

use super::{Settings, Trim, backend_error, wire};
use crate::error::MqError;

/// Publishes to Redis Streams: one `XADD` per message, pipelined for a
/// batch, so a publish returns once Redis has stored the entry.
#[derive(Clone)]
pub struct StreamsPublisher {
    settings: Arc<Settings>,
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for StreamsPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsPublisher")
            .field("prefix", &self.settings.prefix)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl StreamsPublisher {
    pub(crate) fn new(settings: Arc<Settings>) -> Self {
        StreamsPublisher {
            settings,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn check(&self, topic: &str, messages: &[Message]) -> std::result::Result<(), MqError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(MqError::Closed { what: "publisher" });
        }
        self.settings.limits.check_topic(topic)?;
        for message in messages {
            self.settings.limits.check_message(message)?;
        }
        Ok(())
    }

    fn xadd(&self, key: &str, message: &Message) -> Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key);
        match self.settings.trim {
            Trim::None => {}
            Trim::MaxLen(n) => {
                cmd.arg("MAXLEN").arg("~").arg(n);
            }
            Trim::MaxAge(age) => {
                let oldest = self.settings.clock.wall().saturating_sub(age).as_millis();
                cmd.arg("MINID").arg("~").arg(oldest);
            }
        }
        cmd.arg("*");
        wire::append_fields(&mut cmd, message);
        cmd
    }
}

impl Publisher for StreamsPublisher {
    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        self.check(topic, std::slice::from_ref(&message))?;
        let key = self.settings.stream_key(topic);
        let mut conn = self.settings.conn.get().await?;
        let _: redis::Value = self
            .xadd(&key, &message)
            .query_async(&mut conn)
            .await
            .map_err(|err| {
                self.settings.conn.check(&err);
                backend_error(format!("XADD to `{key}`"), err)
            })?;
        Ok(())
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        // A bad message anywhere rejects the whole batch before anything is sent.
        self.check(topic, &messages)?;
        if messages.is_empty() {
            return Ok(());
        }
        let key = self.settings.stream_key(topic);
        let mut pipe = redis::pipe();
        for message in &messages {
            pipe.add_command(self.xadd(&key, message)).ignore();
        }
        let mut conn = self.settings.conn.get().await?;
        let _: () = pipe.query_async(&mut conn).await.map_err(|err| {
            self.settings.conn.check(&err);
            backend_error(
                format!("XADD of {} messages to `{key}`", messages.len()),
                err,
            )
        })?;
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        // Every publish waits for its XADD reply, so nothing is buffered.
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
