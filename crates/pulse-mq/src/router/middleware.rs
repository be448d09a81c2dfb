//! The middleware that ships with the router.
//!
//! Middleware wraps a [`Handler`] into another. The router applies its
//! middleware list in order, so the first one is the outermost: with
//! `[recover_panics(), retry(..), timeout(..)]` each retry attempt gets its
//! own timeout and a panic in any attempt is caught.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use pulse_core::clock::MonoTime;
use rand::Rng;

use super::dedup::DedupStore;
use super::handler::{Context, Handler, HandlerError, HandlerErrorKind, Middleware};
use crate::message::headers;

/// Exponential backoff with jitter, for [`retry`] and for the delay of a
/// nack.
///
/// The delay before retry `n` (from 1) is `initial × multiplier^(n-1)`,
/// capped at `max`, then reduced by a random share of up to `jitter` of
/// itself, so that consumers that failed together do not retry together.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_mq::router::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100)).jitter(0.0);
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(5), Duration::from_millis(1600));
/// assert_eq!(backoff.delay(10_000), Duration::from_secs(30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// Creates a backoff starting at `initial`, doubling, capped at 30 s,
    /// with up to 20 % jitter.
    pub fn new(initial: Duration) -> Self {
        Backoff {
            initial,
            multiplier: 2.0,
            max: Duration::from_secs(30),
            jitter: 0.2,
        }
    }

    /// Sets the growth factor (values below 1 are treated as 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Sets the largest delay.
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Sets the jitter as a share of the delay, from 0 (none) to 1 (full
    /// jitter); values outside are clamped.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Returns the delay before retry `attempt` (from 1). Never panics, also
    /// for huge attempt numbers.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(1024) as i32;
        let factor = self.multiplier.powi(exponent);
        let max = self.max.as_secs_f64();
        let raw = (self.initial.as_secs_f64() * factor).min(max);
        let base = if raw.is_finite() { raw } else { max };
        let cut = if self.jitter > 0.0 {
            rand::rng().random_range(0.0..=self.jitter)
        } else {
            0.0
        };
        Duration::from_secs_f64((base * (1.0 - cut)).max(0.0))
    }
}

/// Retries a failing handler up to `max_retries` times inside one delivery,
/// waiting `backoff` between attempts. Permanent errors are not retried, and
/// the waiting stops when the router shuts down.
pub fn retry(max_retries: u32, backoff: Backoff) -> Middleware {
    Arc::new(move |next: Handler| {
        Arc::new(move |message, context: Context| {
            let next = next.clone();
            Box::pin(async move {
                let mut retry = 0;
                loop {
                    let error = match next(message.clone(), context.clone()).await {
                        Ok(outputs) => return Ok(outputs),
                        Err(error) => error,
                    };
                    if retry >= max_retries || !error.is_retryable() {
                        return Err(error);
                    }
                    retry += 1;
                    let delay = backoff.delay(retry);
                    tracing::debug!(target: "pulse_mq", handler = context.handler(), id = %message.id, retry, ?delay, error = %error, "handler failed; retrying");
                    tokio::select! {
                        () = context.clock.sleep(delay) => {}
                        () = context.stop.fired() => return Err(error),
                    }
                }
            })
        })
    })
}

/// Fails a handler call that takes longer than `limit`, with
/// [`HandlerErrorKind::TimedOut`]. The call's future is dropped.
pub fn timeout(limit: Duration) -> Middleware {
    Arc::new(move |next: Handler| {
        Arc::new(move |message, context: Context| {
            let next = next.clone();
            Box::pin(async move {
                let id = message.id.clone();
                let clock = context.clock.clone();
                tokio::select! {
                    result = next(message, context) => result,
                    () = clock.sleep(limit) => Err(HandlerError::with_kind(
                        HandlerErrorKind::TimedOut,
                        format!("handler timed out after {limit:?} on message `{id}`"),
                    )),
                }
            })
        })
    })
}

/// Turns a panic in the handler into an error of kind
/// [`HandlerErrorKind::Panicked`], so that the message is retried or
/// dead-lettered like any other failure.
pub fn recover_panics() -> Middleware {
    Arc::new(move |next: Handler| {
        Arc::new(move |message, context: Context| {
            let next = next.clone();
            Box::pin(async move {
                let id = message.id.clone();
                let handler = context.handler.clone();
                match AssertUnwindSafe(next(message, context))
                    .catch_unwind()
                    .await
                {
                    Ok(result) => result,
                    Err(panic) => {
                        let text = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "non-string panic payload".to_owned());
                        tracing::error!(target: "pulse_mq", handler = &*handler, id = %id, panic = %text, "handler panicked");
                        Err(HandlerError::with_kind(
                            HandlerErrorKind::Panicked,
                            format!("handler panicked: {text}"),
                        ))
                    }
                }
            })
        })
    })
}

/// Copies the input message's correlation id (its `correlation-id` header,
/// or its id when it has none) to every output message that has none.
pub fn correlation_id() -> Middleware {
    Arc::new(move |next: Handler| {
        Arc::new(move |message, context| {
            let next = next.clone();
            Box::pin(async move {
                let correlation = message
                    .header(headers::CORRELATION_ID)
                    .unwrap_or(&message.id)
                    .to_owned();
                let mut outputs = next(message, context).await?;
                for output in &mut outputs {
                    output
                        .headers
                        .entry(headers::CORRELATION_ID.to_owned())
                        .or_insert_with(|| correlation.clone());
                }
                Ok(outputs)
            })
        })
    })
}

/// Lets at most `count` handler calls start per `period`, spaced evenly;
/// the others wait their turn.
pub fn throttle(count: u32, period: Duration) -> Middleware {
    let spacing = period / count.max(1);
    let next_slot = Arc::new(Mutex::new(MonoTime::ZERO));
    Arc::new(move |next: Handler| {
        let next_slot = next_slot.clone();
        Arc::new(move |message, context: Context| {
            let next = next.clone();
            let next_slot = next_slot.clone();
            Box::pin(async move {
                let slot = {
                    let mut guard = next_slot.lock().unwrap_or_else(|p| p.into_inner());
                    let slot = (*guard).max(context.clock.now());
                    *guard = slot.saturating_add(spacing);
                    slot
                };
                tokio::select! {
                    () = context.clock.sleep_until(slot) => {}
                    () = context.stop.fired() => {
                        return Err(HandlerError::msg("router shut down while the message waited for the throttle"));
                    }
                }
                next(message, context).await
            })
        })
    })
}

/// Skips messages whose id this handler has already handled, remembered in
/// `store` for `ttl`. A failed call forgets the id again, so that the
/// redelivery is handled.
///
/// The id is recorded when handling starts: a duplicate that arrives while
/// the first copy is still being handled is acked and skipped, and if that
/// first copy then fails, its own redelivery carries the message.
pub fn deduplicate(store: Arc<dyn DedupStore>, ttl: Duration) -> Middleware {
    Arc::new(move |next: Handler| {
        let store = store.clone();
        Arc::new(move |message, context: Context| {
            let next = next.clone();
            let store = store.clone();
            Box::pin(async move {
                let key = format!("{}:{}", context.handler(), message.id);
                let first = store.claim(&key, ttl).await.map_err(|err| {
                    HandlerError::msg(format!("deduplication store failed: {err}"))
                })?;
                if !first {
                    tracing::debug!(target: "pulse_mq", handler = context.handler(), id = %message.id, "duplicate message skipped");
                    return Ok(Vec::new());
                }
                let result = next(message, context.clone()).await;
                if result.is_err() {
                    if let Err(err) = store.release(&key).await {
                        tracing::warn!(target: "pulse_mq", handler = context.handler(), key = %key, error = %err, "failed to forget a failed message in the deduplication store; its redelivery is skipped until the entry expires");
                    }
                }
                result
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_never_panics() {
        let backoff = Backoff::new(Duration::from_millis(100)).jitter(0.0);
        assert_eq!(backoff.delay(0), Duration::from_millis(100));
        assert_eq!(backoff.delay(64), Duration::from_secs(30));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_below_delay() {
        let backoff = Backoff::new(Duration::from_millis(100)).jitter(1.0);
        for _ in 0..100 {
            assert!(backoff.delay(1) <= Duration::from_millis(100));
        }
    }
}
