//! The router: handlers from topic to topic, with middleware, retries,
//! dead-lettering and graceful shutdown.
//!
//! A [`Route`] consumes one topic as one consumer group, passes each message
//! through its middleware to its handler, publishes what the handler returns
//! on its output topic, and then acks. When the handler fails:
//!
//! 1. middleware such as [`retry`] may try again inside the same delivery;
//! 2. if the error is permanent, or the delivery's attempt reached the
//!    route's [`dead_letter`](Route::dead_letter) limit, the message is
//!    published on the dead-letter topic with the reason, the original topic
//!    and the attempt count as headers, and acked;
//! 3. otherwise it is nacked with a delay from the route's redelivery
//!    [`Backoff`], so a handler that fails forever is retried ever more
//!    slowly, never in a hot loop.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pulse_core::mq::{Publisher, Subscriber, Subscription};
//! use pulse_mq::router::{self, Backoff, Route, Router};
//! use pulse_mq::{MemoryBroker, MessageExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let broker = MemoryBroker::new();
//! let publisher = Arc::new(broker.publisher());
//! let subscriber = Arc::new(broker.subscriber());
//!
//! let router = Router::builder()
//!     .middleware(router::recover_panics())
//!     .middleware(router::correlation_id())
//!     .middleware(router::retry(3, Backoff::new(Duration::from_millis(10))))
//!     .build();
//! let running = router
//!     .run(vec![
//!         Route::new("invoice", "orders", subscriber.clone())
//!             .publish_to("invoices", publisher.clone())
//!             .dead_letter("orders.dead", publisher.clone(), 5)
//!             .handler(router::handler(|order, _context| async move {
//!                 let total: u64 = order.decode_json()?;
//!                 Ok(vec![pulse_core::mq::Message::from_json(&(total * 2))?])
//!             })),
//!     ])
//!     .await?;
//!
//! let mut invoices = broker.subscriber().subscribe("invoices", "mailer").await?;
//! let order = pulse_core::mq::Message::from_json(&21u64)?;
//! let order_id = order.id.clone();
//! publisher.publish("orders", order).await?;
//!
//! let invoice = invoices.next().await.expect("open")?;
//! assert_eq!(invoice.message().decode_json::<u64>()?, 42);
//! assert_eq!(invoice.message().header("correlation-id"), Some(order_id.as_str()));
//! invoice.ack().await?;
//! running.shutdown().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod dedup;
mod handler;
mod middleware;
mod route;

pub use dedup::{DedupStore, MemoryDedupStore};
pub use handler::{
    Context, Handler, HandlerError, HandlerErrorKind, HandlerResult, Middleware, handler,
};
pub use middleware::{
    Backoff, correlation_id, deduplicate, recover_panics, retry, throttle, timeout,
};
pub use route::Route;

use std::sync::Arc;
use std::time::Duration;

use pulse_core::clock::{Clock, SystemClock};
use pulse_core::error::{Error, ErrorKind, Result};
use pulse_core::signal::Signal;
use tokio::task::JoinSet;

/// Runs routes. Built with [`Router::builder`], started with
/// [`Router::run`].
#[derive(Clone)]
pub struct Router {
    middleware: Vec<Middleware>,
    clock: Arc<dyn Clock>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("middleware", &self.middleware.len())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

/// Settings of a [`Router`].
#[derive(Clone)]
pub struct RouterBuilder {
    router: Router,
}

impl std::fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.router.fmt(f)
    }
}

impl RouterBuilder {
    /// Adds middleware that wraps every route's handler. The first added is
    /// the outermost.
    pub fn middleware(mut self, middleware: Middleware) -> Self {
        self.router.middleware.push(middleware);
        self
    }

    /// Sets the clock for backoff, timeouts and throttling.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.router.clock = clock;
        self
    }

    /// Sets how long shutdown waits for in-flight messages before it nacks
    /// them (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.router.shutdown_timeout = timeout;
        self
    }

    /// Creates the router.
    pub fn build(self) -> Router {
        self.router
    }
}

impl Router {
    /// Starts a builder with no middleware, the system clock and a 30 s
    /// shutdown timeout.
    pub fn builder() -> RouterBuilder {
        RouterBuilder {
            router: Router {
                middleware: Vec::new(),
                clock: Arc::new(SystemClock::new()),
                shutdown_timeout: Duration::from_secs(30),
            },
        }
    }

    /// Subscribes every route and starts consuming. Fails, starting nothing,
    /// when a route has no handler or a subscription fails.
    pub async fn run(&self, routes: Vec<Route>) -> Result<RunningRouter> {
        let stop = Signal::new();
        let mut started = Vec::with_capacity(routes.len());
        for route in routes {
            let Some(handler) = route.handler.clone() else {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "route `{}` has no handler; call `Route::handler`",
                        route.name
                    ),
                ));
            };
            let handler = self.wrap(&route, handler);
            let subscription = route
                .subscriber
                .subscribe_boxed(&route.topic, route.group_name())
                .await?;
            started.push((route, handler, subscription));
        }

        let mut tasks = JoinSet::new();
        let mut closers = Vec::new();
        for (route, handler, subscription) in started {
            tracing::info!(target: "pulse_mq", route = %route.name, topic = %route.topic, group = route.group_name(), "route started");
            closers.push(route.closer());
            let worker = route::Worker::new(
                route,
                handler,
                self.clock.clone(),
                stop.clone(),
                self.shutdown_timeout,
            );
            tasks.spawn(worker.run(subscription));
        }
        Ok(RunningRouter {
            stop,
            tasks: tokio::sync::Mutex::new(tasks),
            closers,
        })
    }

    fn wrap(&self, route: &Route, handler: Handler) -> Handler {
        // Route middleware is inside the router's, so the router's wraps all.
        let all = self.middleware.iter().chain(route.middleware.iter());
        let layers: Vec<&Middleware> = all.collect();
        layers
            .into_iter()
            .rev()
            .fold(handler, |inner, layer| layer(inner))
    }
}

/// A started router. [`shutdown`](RunningRouter::shutdown) stops it; dropping
/// it stops taking messages too, without waiting.
pub struct RunningRouter {
    stop: Signal,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
    closers: Vec<route::Closer>,
}

impl std::fmt::Debug for RunningRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningRouter")
            .field("stopping", &self.stop.is_fired())
            .finish()
    }
}

impl RunningRouter {
    /// Stops taking messages, lets in-flight ones finish within the shutdown
    /// timeout and nacks the rest, then closes every route's subscriber and
    /// publishers. Returns the first close error, after trying all.
    pub async fn shutdown(&self) -> Result<()> {
        self.stop.fire();
        let mut tasks = self.tasks.lock().await;
        while let Some(joined) = tasks.join_next().await {
            if let Err(err) = joined {
                tracing::error!(target: "pulse_mq", error = %err, "route task failed");
            }
        }
        let mut first_error = None;
        for closer in &self.closers {
            if let Err(err) = closer.close().await {
                tracing::warn!(target: "pulse_mq", error = %err, "closing a route failed");
                first_error.get_or_insert(err);
            }
        }
        tracing::info!(target: "pulse_mq", "router stopped");
        first_error.map_or(Ok(()), Err)
    }

    /// Returns the signal that fires when shutdown starts.
    pub fn stop_signal(&self) -> Signal {
        self.stop.clone()
    }
}

impl Drop for RunningRouter {
    fn drop(&mut self) {
        self.stop.fire();
    }
}
