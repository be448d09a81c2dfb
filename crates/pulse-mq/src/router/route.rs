//! One route: its settings, and the worker that consumes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::clock::Clock;
use pulse_core::error::Result;
use pulse_core::mq::{
    BoxSubscription, Delivery, DynPublisher, DynSubscriber, Message, Subscription,
};
use pulse_core::signal::Signal;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::handler::{Context, Handler, HandlerError, HandlerErrorKind, Middleware};
use super::middleware::Backoff;
use crate::message::headers;

/// A handler bound to an input topic, with its output and dead-letter
/// topics and its own middleware.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use pulse_mq::MemoryBroker;
/// use pulse_mq::router::{handler, Route};
///
/// let broker = MemoryBroker::new();
/// let route = Route::new("audit", "orders", Arc::new(broker.subscriber()))
///     .group("audit-v2")
///     .concurrency(4)
///     .handler(handler(|_message, _context| async { Ok(Vec::new()) }));
/// # drop(route);
/// ```
#[derive(Clone)]
pub struct Route {
    pub(crate) name: String,
    pub(crate) topic: String,
    group: Option<String>,
    pub(crate) subscriber: Arc<dyn DynSubscriber>,
    output: Option<(String, Arc<dyn DynPublisher>)>,
    dead_letter: Option<DeadLetter>,
    concurrency: usize,
    redelivery: Backoff,
    pub(crate) middleware: Vec<Middleware>,
    pub(crate) handler: Option<Handler>,
}

#[derive(Clone)]
struct DeadLetter {
    topic: String,
    publisher: Arc<dyn DynPublisher>,
    max_deliveries: u32,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .field("group", &self.group_name())
            .field("output", &self.output.as_ref().map(|(topic, _)| topic))
            .field(
                "dead_letter",
                &self
                    .dead_letter
                    .as_ref()
                    .map(|d| (&d.topic, d.max_deliveries)),
            )
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl Route {
    /// Creates a route named `name` that consumes `topic` from `subscriber`,
    /// as the consumer group `name` unless [`group`](Route::group) sets
    /// another.
    pub fn new(
        name: impl Into<String>,
        topic: impl Into<String>,
        subscriber: Arc<dyn DynSubscriber>,
    ) -> Self {
        Route {
            name: name.into(),
            topic: topic.into(),
            group: None,
            subscriber,
            output: None,
            dead_letter: None,
            concurrency: 8,
            redelivery: Backoff::new(Duration::from_millis(200)).max(Duration::from_secs(60)),
            middleware: Vec::new(),
            handler: None,
        }
    }

    /// Sets the consumer group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Publishes the handler's output messages on `topic`. Without an output
    /// topic, a handler that returns messages fails.
    pub fn publish_to(
        mut self,
        topic: impl Into<String>,
        publisher: Arc<dyn DynPublisher>,
    ) -> Self {
        self.output = Some((topic.into(), publisher));
        self
    }

    /// Publishes a message on `topic` instead of nacking it once its
    /// delivery attempt reaches `max_deliveries` (a value of 0 is treated as
    /// 1), or at once when the handler's error is permanent.
    ///
    /// The dead-lettered message keeps its id, key, headers and payload, and
    /// gains the headers `dead-letter-reason`, `original-topic` and
    /// `delivery-attempts`.
    pub fn dead_letter(
        mut self,
        topic: impl Into<String>,
        publisher: Arc<dyn DynPublisher>,
        max_deliveries: u32,
    ) -> Self {
        self.dead_letter = Some(DeadLetter {
            topic: topic.into(),
            publisher,
            max_deliveries: max_deliveries.max(1),
        });
        self
    }

    /// Sets how many messages the handler works on at once (default 8; 0 is
    /// treated as 1).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// Sets the delay of the nack after a failed delivery, by attempt
    /// (default: from 200 ms, doubling, at most 60 s, 20 % jitter).
    pub fn redelivery(mut self, backoff: Backoff) -> Self {
        self.redelivery = backoff;
        self
    }

    /// Adds middleware for this route only, inside the router's.
    pub fn middleware(mut self, middleware: Middleware) -> Self {
        self.middleware.push(middleware);
        self
    }

    /// Sets the handler.
    pub fn handler(mut self, handler: Handler) -> Self {
        self.handler = Some(handler);
        self
    }

    pub(crate) fn group_name(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.name)
    }

    pub(crate) fn closer(&self) -> Closer {
        Closer {
            subscriber: self.subscriber.clone(),
            publishers: self
                .output
                .iter()
                .map(|(_, publisher)| publisher.clone())
                .chain(self.dead_letter.iter().map(|d| d.publisher.clone()))
                .collect(),
        }
    }
}

/// Closes what a route used, at the end of a shutdown.
pub(crate) struct Closer {
    subscriber: Arc<dyn DynSubscriber>,
    publishers: Vec<Arc<dyn DynPublisher>>,
}

impl Closer {
    pub(crate) async fn close(&self) -> Result<()> {
        let mut result = self.subscriber.close_boxed().await;
        for publisher in &self.publishers {
            let closed = publisher.close_boxed().await;
            if result.is_ok() {
                result = closed;
            }
        }
        result
    }
}

/// Consumes one route until the router stops.
pub(crate) struct Worker {
    route: Arc<Route>,
    handler: Handler,
    clock: Arc<dyn Clock>,
    stop: Signal,
    shutdown_timeout: Duration,
}

type InFlight = Arc<Mutex<HashMap<u64, Arc<Delivery>>>>;

impl Worker {
    pub(crate) fn new(
        route: Route,
        handler: Handler,
        clock: Arc<dyn Clock>,
        stop: Signal,
        shutdown_timeout: Duration,
    ) -> Self {
        Worker {
            route: Arc::new(route),
            handler,
            clock,
            stop,
            shutdown_timeout,
        }
    }

    pub(crate) async fn run(self, mut subscription: BoxSubscription) {
        let limit = Arc::new(Semaphore::new(self.route.concurrency));
        let in_flight: InFlight = Arc::default();
        let mut tasks = JoinSet::new();
        let mut next_ticket = 0u64;
        let mut failures = 0u32;

        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                permit = limit.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = self.stop.fired() => break,
            };
            let next = tokio::select! {
                next = subscription.next() => next,
                () = self.stop.fired() => break,
            };
            let delivery = match next {
                None => {
                    tracing::info!(target: "pulse_mq", route = %self.route.name, "subscription ended");
                    break;
                }
                Some(Err(err)) => {
                    failures = failures.saturating_add(1);
                    let delay = Backoff::new(Duration::from_millis(50))
                        .max(Duration::from_secs(5))
                        .delay(failures);
                    tracing::warn!(target: "pulse_mq", route = %self.route.name, error = %err, ?delay, "receiving failed; retrying");
                    tokio::select! {
                        () = self.clock.sleep(delay) => continue,
                        () = self.stop.fired() => break,
                    }
                }
                Some(Ok(delivery)) => Arc::new(delivery),
            };
            failures = 0;

            let ticket = next_ticket;
            next_ticket += 1;
            lock(&in_flight).insert(ticket, delivery.clone());
            let process = Process {
                route: self.route.clone(),
                handler: self.handler.clone(),
                clock: self.clock.clone(),
                stop: self.stop.clone(),
            };
            let registry = in_flight.clone();
            tasks.spawn(async move {
                process.handle(&delivery).await;
                lock(&registry).remove(&ticket);
                drop(permit);
            });
        }

        self.drain(tasks, in_flight).await;
    }

    /// Waits for in-flight messages up to the shutdown timeout, then stops
    /// their handlers and nacks them.
    async fn drain(&self, mut tasks: JoinSet<()>, in_flight: InFlight) {
        let finished = async { while tasks.join_next().await.is_some() {} };
        let timed_out = tokio::select! {
            () = finished => false,
            () = self.clock.sleep(self.shutdown_timeout) => true,
        };
        if !timed_out {
            return;
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let left: Vec<Arc<Delivery>> = lock(&in_flight).drain().map(|(_, d)| d).collect();
        tracing::warn!(target: "pulse_mq", route = %self.route.name, unfinished = left.len(), "shutdown timed out; nacking unfinished messages");
        for delivery in left {
            if let Err(err) = delivery.nack(None).await {
                tracing::warn!(target: "pulse_mq", route = %self.route.name, id = %delivery.message().id, error = %err, "nack at shutdown failed; the message returns after the visibility timeout");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Handles one delivery: handler, output, then ack, nack or dead letter.
struct Process {
    route: Arc<Route>,
    handler: Handler,
    clock: Arc<dyn Clock>,
    stop: Signal,
}

impl Process {
    async fn handle(&self, delivery: &Delivery) {
        let context = Context {
            handler: Arc::from(self.route.name.as_str()),
            topic: Arc::from(delivery.topic()),
            attempt: delivery.attempt(),
            clock: self.clock.clone(),
            stop: self.stop.clone(),
        };
        let message = delivery.message().clone();
        let outcome = match (self.handler)(message, context).await {
            Ok(outputs) => self.publish_outputs(delivery, outputs).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => self.settle(delivery, delivery.ack().await, "ack"),
            Err(err) => self.fail(delivery, err).await,
        }
    }

    async fn publish_outputs(
        &self,
        delivery: &Delivery,
        outputs: Vec<Message>,
    ) -> Result<(), HandlerError> {
        if outputs.is_empty() {
            return Ok(());
        }
        let Some((topic, publisher)) = &self.route.output else {
            return Err(HandlerError::permanent(format!(
                "handler of route `{}` returned {} messages for message `{}`, but the route has no output topic; call `Route::publish_to`",
                self.route.name,
                outputs.len(),
                delivery.message().id
            )));
        };
        publisher
            .publish_batch_boxed(topic, outputs)
            .await
            .map_err(|err| HandlerError::msg(format!("publishing to `{topic}` failed: {err}")))
    }

    async fn fail(&self, delivery: &Delivery, err: HandlerError) {
        let attempt = delivery.attempt();
        let id = &delivery.message().id;
        if let Some(dead) = &self.route.dead_letter {
            let exhausted = attempt >= dead.max_deliveries;
            if exhausted || err.kind() == HandlerErrorKind::Permanent {
                let message = delivery
                    .message()
                    .clone()
                    .with_header(headers::DEAD_LETTER_REASON, one_line(&err.to_string()))
                    .with_header(headers::ORIGINAL_TOPIC, delivery.topic())
                    .with_header(headers::DELIVERY_ATTEMPTS, attempt.to_string());
                match dead.publisher.publish_boxed(&dead.topic, message).await {
                    Ok(()) => {
                        tracing::warn!(target: "pulse_mq", route = %self.route.name, id = %id, attempt, dead_letter = %dead.topic, error = %err, "message dead-lettered");
                        self.settle(delivery, delivery.ack().await, "ack after dead-lettering");
                        return;
                    }
                    Err(publish_err) => {
                        tracing::warn!(target: "pulse_mq", route = %self.route.name, id = %id, dead_letter = %dead.topic, error = %publish_err, "dead-lettering failed; nacking instead");
                    }
                }
            }
        }
        let delay = self.route.redelivery.delay(attempt);
        tracing::warn!(target: "pulse_mq", route = %self.route.name, id = %id, attempt, ?delay, error = %err, "handler failed; message nacked for redelivery");
        self.settle(delivery, delivery.nack(Some(delay)).await, "nack");
    }

    fn settle(&self, delivery: &Delivery, result: Result<()>, action: &str) {
        if let Err(err) = result {
            tracing::warn!(target: "pulse_mq", route = %self.route.name, id = %delivery.message().id, action, error = %err, "settling a message failed; it returns after the visibility timeout");
        }
    }
}

/// Header values carry no line breaks, so an error text is folded onto one
/// line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n', '\0'], " ")
}
