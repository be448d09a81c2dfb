//! The tour: a small order service that uses every gopulse primitive in one
//! process, on in-process backends or on real servers.
//!
//! [`run`] sends a seeded stream of order requests from several tenants
//! through a keyed rate limiter; each admitted order gets an ID, a cached
//! product lookup, a per-order lock and an order event; a consumer handles
//! the events on a worker pool behind a circuit breaker; and a delayed
//! follow-up job runs per order. The [`Summary`] counts what happened.

pub mod args;
mod report;
mod stack;
pub mod workload;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pulse_conc::CircuitBreaker;
use pulse_conc::pool::{PoolConfig, Shutdown, WorkerPool};
use pulse_core::clock::WallTime;
use pulse_core::mq::{Delivery, Message, Subscription};
use pulse_core::sched::{JobStore, NewJob};
use pulse_core::signal::Signal;
use pulse_sched::{JobWorker, WorkerOptions};

pub use args::{Backend, Config};
pub use report::{Progress, Summary, TenantCounts};
pub use stack::{LOCK_TTL, Product, Stack};

/// The error type of the tour: any failure of any primitive.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long after its order a follow-up job is due.
const FOLLOW_UP_DELAY: Duration = Duration::from_millis(100);

/// How long the tour waits for the last events and follow-ups.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Handled {
    handled: AtomicU64,
    duplicates: AtomicU64,
    fired: AtomicU64,
    seen: Mutex<HashSet<u64>>,
}

impl Handled {
    fn record_event(&self, id: u64) {
        let first = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
        if !first {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        self.handled.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the tour and returns its counts.
pub async fn run(config: &Config) -> Result<Summary, BoxError> {
    let started = Instant::now();
    let namespace = format!("tour-{}-{:08x}", config.seed, run_nonce());
    let stack = Stack::build(config.backend, &namespace).await?;
    tracing::info!(target: "gopulse_examples", backend = %config.backend, namespace, "tour started");

    let handled = Arc::new(Handled::default());
    let stop = Signal::new();
    let consumer = start_consumer(&stack, Arc::clone(&handled), stop.clone()).await?;
    let worker = start_follow_ups(&stack, Arc::clone(&handled))?;

    let requests = workload::generate(config.seed, config.requests, config.tenants);
    let tenant_names: Vec<String> = (0..config.tenants).map(|k| format!("tenant-{k}")).collect();
    let mut summary = Summary::new(config, &stack.choices, &tenant_names);
    let mut progress = Progress::new(config.progress, config.requests);

    let mut elapsed_ms = 0;
    for (index, request) in requests.iter().enumerate() {
        pace(config.pace, started, index as u64).await;

        // The limiter's clock follows the workload's own time, so the
        // decisions depend on the seed and not on how fast this loop runs.
        stack
            .clock
            .advance(Duration::from_millis(request.at_ms - elapsed_ms));
        elapsed_ms = request.at_ms;

        let tenant = &tenant_names[request.tenant as usize];
        let decision = stack.limiter.check_n_boxed(tenant, 1).await?;
        summary.tenants[request.tenant as usize].record(decision.allowed);
        if decision.allowed {
            place_order(&stack, &mut summary, tenant, request.product).await?;
        }
        progress.update(index as u64 + 1);
    }
    progress.finish();

    let drained = drain(&summary, &handled).await;
    stop.fire();
    let _ = consumer.await;
    worker.shutdown().await;
    let _ = stack.subscriber.close_boxed().await;
    let _ = stack.publisher.close_boxed().await;
    stack.shutdown().await;

    summary.handled = handled.handled.load(Ordering::Relaxed);
    summary.duplicates = handled.duplicates.load(Ordering::Relaxed);
    summary.follow_ups_fired = handled.fired.load(Ordering::Relaxed);
    summary.elapsed = started.elapsed();
    if !drained {
        tracing::warn!(target: "gopulse_examples", "tour stopped waiting for events after {DRAIN_LIMIT:?}");
    }
    tracing::info!(target: "gopulse_examples", backend = %config.backend, "tour finished");
    Ok(summary)
}

/// Runs the steps of one admitted order: ID, product lookup, lock, event,
/// follow-up.
async fn place_order(
    stack: &Stack,
    summary: &mut Summary,
    tenant: &str,
    product: u32,
) -> Result<(), BoxError> {
    let id = stack.ids.next_id()?;
    summary.ids_issued += 1;

    let (product, hit) = stack.products.get(product).await?;
    summary.cache_lookups += 1;
    summary.cache_hits += u64::from(hit);

    let key = format!("order:{id}");
    let lease = stack
        .locks
        .try_acquire_boxed(&key, LOCK_TTL)
        .await?
        .ok_or_else(|| format!("lock `{key}` is held by someone else"))?;
    summary.locks_taken += 1;

    let payload = format!(
        "{{\"order\":{id},\"tenant\":\"{tenant}\",\"product\":{},\"price_cents\":{}}}",
        product.id, product.price_cents
    );
    let event = Message::new(id.to_string(), payload).with_key(tenant);
    stack.publisher.publish_boxed(&stack.topic, event).await?;
    summary.published += 1;
    stack.locks.release_boxed(lease).await?;

    let due = WallTime::from_system_time(SystemTime::now()).saturating_add(FOLLOW_UP_DELAY);
    let follow_up = NewJob {
        id: format!("follow-up-{id}"),
        payload: Bytes::from(id.to_string()),
        run_at: due,
    };
    stack.followups.push(follow_up).await?;
    summary.follow_ups_scheduled += 1;
    Ok(())
}

/// Subscribes to the order events and hands each to a worker pool, where a
/// circuit breaker guards the handler.
async fn start_consumer(
    stack: &Stack,
    handled: Arc<Handled>,
    stop: Signal,
) -> Result<tokio::task::JoinHandle<()>, BoxError> {
    let mut subscription = stack
        .subscriber
        .subscribe_boxed(&stack.topic, "billing")
        .await?;
    let pool = Arc::new(WorkerPool::new(
        PoolConfig::fixed(4).queue_capacity(1_024).name("billing"),
    )?);
    let breaker = Arc::new(CircuitBreaker::builder("billing").build()?);

    Ok(tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = stop.fired() => break,
                next = subscription.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(err)) => {
                    tracing::warn!(target: "gopulse_examples", error = %err, "receiving an order event failed");
                    continue;
                }
                None => break,
            };
            let handled = Arc::clone(&handled);
            let breaker = Arc::clone(&breaker);
            let job = handle_event(delivery, handled, breaker);
            if let Err(err) = pool.submit(job).await {
                tracing::warn!(target: "gopulse_examples", error = %err, "the billing pool rejected an event");
            }
        }
        pool.shutdown(Shutdown::Drain).await;
    }))
}

async fn handle_event(delivery: Delivery, handled: Arc<Handled>, breaker: Arc<CircuitBreaker>) {
    let id = delivery.message().id.parse::<u64>();
    let outcome = breaker
        .call(|| async {
            match id {
                Ok(id) => {
                    handled.record_event(id);
                    Ok::<(), Infallible>(())
                }
                Err(_) => Ok(()),
            }
        })
        .await;
    let settled = match outcome {
        Ok(()) => delivery.ack().await,
        Err(_) => delivery.nack(Some(Duration::from_millis(100))).await,
    };
    if let Err(err) = settled {
        tracing::warn!(target: "gopulse_examples", message_id = %delivery.message().id, error = %err, "settling an order event failed");
    }
}

fn start_follow_ups(stack: &Stack, handled: Arc<Handled>) -> Result<JobWorker, BoxError> {
    let options = WorkerOptions::default().poll_every(Duration::from_millis(20));
    let worker = JobWorker::start(Arc::clone(&stack.followups), options, move |_job| {
        let handled = Arc::clone(&handled);
        async move {
            handled.fired.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })?;
    Ok(worker)
}

/// Waits until every event was handled and every follow-up fired, or the
/// drain limit passed. Returns whether everything arrived.
async fn drain(summary: &Summary, handled: &Handled) -> bool {
    let deadline = Instant::now() + DRAIN_LIMIT;
    while Instant::now() < deadline {
        let events_done = handled.handled.load(Ordering::Relaxed) >= summary.published;
        let follow_ups_done = handled.fired.load(Ordering::Relaxed) >= summary.follow_ups_scheduled;
        if events_done && follow_ups_done {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Sleeps until request `index` is due at `pace` requests per second.
async fn pace(pace: u32, started: Instant, index: u64) {
    if pace == 0 {
        return;
    }
    let due = started + Duration::from_micros(index * 1_000_000 / u64::from(pace));
    tokio::time::sleep_until(due.into()).await;
}

/// A value that differs between runs, so that repeated runs against the
/// same servers use fresh keys, streams and queues.
fn run_nonce() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.subsec_nanos())
        .unwrap_or_default();
    nanos ^ std::process::id().rotate_left(16)
}
