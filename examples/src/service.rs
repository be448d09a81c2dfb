//! An HTTP order service on axum that combines the primitives the way a
//! real service does. It puts the tower rate-limit layer in front of each
//! tenant's orders and a circuit breaker (as a tower layer) around a flaky
//! payment gateway. Product lookups go through a near cache, orders get
//! Snowflake ids, and each order publishes an event.
//!
//! | route | what it does |
//! | --- | --- |
//! | `GET /health` | `ok` |
//! | `GET /products/{id}` | the product, read through the near cache |
//! | `POST /orders?product=ID` | places an order for the tenant in the `x-tenant` header: 201 with the order, 429 with `Retry-After` over the tenant's rate, 503 with `Retry-After` while the payment breaker is open |
//! | `POST /admin/payments/down`, `POST /admin/payments/up` | make the simulated payment gateway fail or recover |
//! | `GET /stats` | orders placed and events consumed |
//!
//! By default everything is in-process. [`Backends::redis`] puts the cache
//! and the events on Redis, so several instances share them.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use pulse_cache::redis::RedisStore;
use pulse_cache::{LocalCache, NearCache};
use pulse_conc::layer::{CircuitBreakerLayer, CircuitBreakerService};
use pulse_conc::{CircuitBreaker, Error as ConcError};
use pulse_core::cache::DynCacheStore;
use pulse_core::mq::{DynPublisher, DynSubscriber, Message};
use pulse_core::signal::Signal;
use pulse_id::{Layout, Snowflake};
use pulse_mq::MemoryBroker;
use pulse_mq::redis::RedisStreams;
use pulse_ratelimit::tower::RateLimitLayer;
use pulse_ratelimit::{KeyedGcra, Quota};
use serde::Deserialize;
use tower::{Layer, ServiceExt};

use crate::tour::{BoxError, Product};

/// The topic order events go to.
pub const ORDERS_TOPIC: &str = "orders.created";

/// The backends of the cache and the events.
pub struct Backends {
    store: Arc<dyn DynCacheStore>,
    publisher: Arc<dyn DynPublisher>,
    subscriber: Arc<dyn DynSubscriber>,
}

impl Backends {
    /// Everything in this process.
    pub fn memory() -> Result<Backends, BoxError> {
        let store = LocalCache::<String, Bytes>::builder()
            .max_entries(100_000)
            .build()?;
        let broker = MemoryBroker::new();
        Ok(Backends {
            store: Arc::new(store),
            publisher: Arc::new(broker.publisher()),
            subscriber: Arc::new(broker.subscriber()),
        })
    }

    /// Puts the cache and the events on the Redis server at `url`, under
    /// `prefix`.
    pub fn redis(url: &str, prefix: &str) -> Result<Backends, BoxError> {
        let store = RedisStore::builder()
            .url(url)
            .prefix(format!("{prefix}:cache"))
            .build()?;
        let streams = RedisStreams::from_url(url)?.prefix(format!("{prefix}:mq"));
        Ok(Backends {
            store: Arc::new(store),
            publisher: Arc::new(streams.publisher()),
            subscriber: Arc::new(streams.subscriber()),
        })
    }
}

/// A simulated payment gateway client: a tower service that charges an
/// order id and fails while `down` is set.
#[derive(Clone)]
struct PaymentGateway {
    down: Arc<AtomicBool>,
}

impl tower::Service<u64> for PaymentGateway {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _order: u64) -> Self::Future {
        if self.down.load(Ordering::SeqCst) {
            std::future::ready(Err("the payment gateway returned 502".into()))
        } else {
            std::future::ready(Ok(()))
        }
    }
}

/// The payment gateway behind its circuit breaker.
type Payments = CircuitBreakerService<PaymentGateway>;

struct AppState {
    ids: Snowflake,
    products: NearCache<Product, Arc<dyn DynCacheStore>>,
    publisher: Arc<dyn DynPublisher>,
    payments: Payments,
    payments_down: Arc<AtomicBool>,
    orders: AtomicU64,
    consumed: Arc<AtomicU64>,
}

/// A running service's router and the handle that stops its consumer.
pub struct Service {
    /// The axum router, ready for `axum::serve`.
    pub router: Router,
    stop: Signal,
    consumer: tokio::task::JoinHandle<()>,
}

impl Service {
    /// Builds the router and starts the event consumer on the current tokio
    /// runtime. `quota` is each tenant's order rate.
    pub async fn start(backends: Backends, quota: Quota) -> Result<Service, BoxError> {
        let payments_down = Arc::new(AtomicBool::new(false));
        let consumed = Arc::new(AtomicU64::new(0));
        let stop = Signal::new();
        let consumer = start_consumer(&backends, Arc::clone(&consumed), stop.clone()).await?;

        let state = Arc::new(AppState {
            ids: Snowflake::builder(Layout::twitter()).worker_id(1).build()?,
            products: NearCache::builder(Arc::clone(&backends.store))
                .max_entries(10_000)
                .build()?,
            publisher: backends.publisher,
            payments: payment_gateway(Arc::clone(&payments_down))?,
            payments_down,
            orders: AtomicU64::new(0),
            consumed,
        });

        let limiter = Arc::new(
            KeyedGcra::<String>::builder(quota)
                .max_keys(100_000)
                .build()?,
        );
        let orders = post(place_order).route_layer(RateLimitLayer::new(limiter, tenant));

        let router = Router::new()
            .route("/health", get(|| async { "ok\n" }))
            .route("/products/{id}", get(product))
            .route("/orders", orders)
            .route("/admin/payments/down", post(payments_down_handler))
            .route("/admin/payments/up", post(payments_up_handler))
            .route("/stats", get(stats))
            .with_state(state);
        Ok(Service {
            router,
            stop,
            consumer,
        })
    }

    /// Stops the event consumer.
    pub async fn shutdown(self) {
        self.stop.fire();
        let _ = self.consumer.await;
    }
}

/// Extracts the rate-limit key: the `x-tenant` header, or `anonymous`.
fn tenant(request: &Request<Body>) -> Option<String> {
    let tenant = request
        .headers()
        .get("x-tenant")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("anonymous");
    Some(tenant.to_owned())
}

/// Wraps the payment gateway in a breaker that opens after three failures
/// in a row and tries again after 5 s.
fn payment_gateway(down: Arc<AtomicBool>) -> Result<Payments, BoxError> {
    let breaker = CircuitBreaker::builder("payments")
        .consecutive_failures(3)
        .wait_in_open(Duration::from_secs(5))
        .half_open_trials(1)
        .build()?;
    Ok(CircuitBreakerLayer::new(breaker).layer(PaymentGateway { down }))
}

async fn start_consumer(
    backends: &Backends,
    consumed: Arc<AtomicU64>,
    stop: Signal,
) -> Result<tokio::task::JoinHandle<()>, BoxError> {
    let mut subscription = backends
        .subscriber
        .subscribe_boxed(ORDERS_TOPIC, "stats")
        .await?;
    Ok(tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = stop.fired() => break,
                next = subscription.next_boxed() => next,
            };
            match next {
                Some(Ok(delivery)) => {
                    consumed.fetch_add(1, Ordering::Relaxed);
                    if let Err(err) = delivery.ack().await {
                        tracing::warn!(target: "gopulse_examples", error = %err, "acking an order event failed");
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!(target: "gopulse_examples", error = %err, "receiving an order event failed");
                }
                None => break,
            }
        }
    }))
}

async fn product(State(state): State<Arc<AppState>>, Path(id): Path<u32>) -> Response {
    match load_product(&state, id).await {
        Ok(product) => json(StatusCode::OK, &product_json(&product)),
        Err(err) => error(StatusCode::BAD_GATEWAY, &err.to_string()),
    }
}

async fn load_product(state: &AppState, id: u32) -> Result<Product, BoxError> {
    let key = format!("product:{id}");
    let product = state
        .products
        .get_or_load(&key, || async move { Ok(Some(Product::load(id))) })
        .await?
        .ok_or("the catalogue returned nothing")?;
    Ok(product)
}

/// The query of `POST /orders`.
#[derive(Deserialize)]
struct OrderQuery {
    product: u32,
}

async fn place_order(
    State(state): State<Arc<AppState>>,
    Query(query): Query<OrderQuery>,
) -> Response {
    let product = match load_product(&state, query.product).await {
        Ok(product) => product,
        Err(err) => return error(StatusCode::BAD_GATEWAY, &err.to_string()),
    };
    let id = match state.ids.next_id() {
        Ok(id) => id,
        Err(err) => return error(StatusCode::SERVICE_UNAVAILABLE, &err.to_string()),
    };

    match state.payments.clone().oneshot(id).await {
        Ok(()) => {}
        Err(err) => {
            if let Some(ConcError::CircuitOpen { retry_after, .. }) =
                err.downcast_ref::<ConcError>()
            {
                let seconds = retry_after.map_or(1, |after| after.as_secs().max(1));
                let mut response = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "payments are unavailable; try again later",
                );
                if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                return response;
            }
            return error(StatusCode::BAD_GATEWAY, &err.to_string());
        }
    }

    let body = format!(
        "{{\"order\":{id},\"product\":{},\"price_cents\":{}}}",
        product.id, product.price_cents
    );
    let event = Message::new(id.to_string(), body.clone());
    if let Err(err) = state.publisher.publish_boxed(ORDERS_TOPIC, event).await {
        tracing::warn!(target: "gopulse_examples", order = id, error = %err, "publishing an order event failed");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the order event could not be published",
        );
    }
    state.orders.fetch_add(1, Ordering::Relaxed);
    json(StatusCode::CREATED, &body)
}

async fn payments_down_handler(State(state): State<Arc<AppState>>) -> &'static str {
    state.payments_down.store(true, Ordering::SeqCst);
    "the payment gateway now fails\n"
}

async fn payments_up_handler(State(state): State<Arc<AppState>>) -> &'static str {
    state.payments_down.store(false, Ordering::SeqCst);
    "the payment gateway works again\n"
}

async fn stats(State(state): State<Arc<AppState>>) -> Result<Response, Infallible> {
    let body = format!(
        "{{\"orders\":{},\"events_consumed\":{}}}",
        state.orders.load(Ordering::Relaxed),
        state.consumed.load(Ordering::Relaxed)
    );
    Ok(json(StatusCode::OK, &body))
}

fn product_json(product: &Product) -> String {
    format!(
        "{{\"id\":{},\"name\":\"{}\",\"price_cents\":{}}}",
        product.id, product.name, product.price_cents
    )
}

fn json(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    let escaped = message.replace('\\', "\\\\").replace('"', "\\\"");
    json(status, &format!("{{\"error\":\"{escaped}\"}}"))
}
