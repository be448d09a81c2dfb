//! An axum service that reads stock levels from a flaky upstream through a
//! circuit breaker, retries and a time limit, with a bulkhead in front of
//! the whole router.
//!
//! - Each upstream call may take up to 200 ms. A failed call is retried
//!   twice with exponential backoff and full jitter, within a retry budget
//!   shared by all requests.
//! - After 3 failed requests in a row the breaker opens, and requests get
//!   `503 Service Unavailable` with `Retry-After` at once instead of waiting
//!   on the upstream.
//! - At most 8 requests run at once; a ninth waits up to 50 ms for a slot,
//!   then gets `503`.
//!
//! `cargo run -p gopulse-examples --example conc_axum` sends requests to the
//! router in-process, takes the upstream down halfway, and prints the
//! status of each. `cargo run -p gopulse-examples --example conc_axum --
//! --serve` serves on 127.0.0.1:3000 instead; try
//! `curl -i http://127.0.0.1:3000/stock/sku-1` and
//! `curl -X POST http://127.0.0.1:3000/upstream/down`.
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Router};
use pulse_conc::breaker::{CircuitBreaker, State as BreakerState};
use pulse_conc::layer::BulkheadLayer;
use pulse_conc::retry::{Backoff, Jitter, Retry, RetryBudget};
use pulse_conc::{Bulkhead, CallError, Error, TimeLimiter};
use tower::{ServiceBuilder, ServiceExt};

/// The upstream inventory service, simulated: it fails while `down` is set.
#[derive(Default)]
struct Upstream {
    down: AtomicBool,
}

impl Upstream {
    async fn stock(&self, sku: &str) -> Result<u32, std::io::Error> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if self.down.load(Ordering::SeqCst) {
            return Err(std::io::Error::other(
                "inventory upstream: connection refused",
            ));
        }
        Ok(sku.len() as u32 * 10)
    }
}

struct AppState {
    upstream: Upstream,
    breaker: CircuitBreaker,
    retry: Retry,
    time_limit: TimeLimiter,
}

async fn stock(State(state): State<Arc<AppState>>, Path(sku): Path<String>) -> Response {
    let result = state
        .breaker
        .call(|| {
            state.retry.call(|_attempt| async {
                match state.time_limit.call(state.upstream.stock(&sku)).await {
                    Ok(count) => Ok(count),
                    Err(CallError::Inner(err)) => Err(err),
                    Err(CallError::Rejected(err)) => Err(std::io::Error::other(err)),
                }
            })
        })
        .await;

    match result {
        Ok(count) => format!("{sku}: {count} in stock\n").into_response(),
        Err(CallError::Rejected(Error::CircuitOpen { retry_after, .. })) => {
            // Rounded up, so a client that waits this long finds the breaker
            // ready for a trial call.
            let seconds = retry_after.map_or(1, |after| {
                (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1)
            });
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, seconds.to_string())],
                "inventory is unavailable; try again later\n",
            )
                .into_response()
        }
        Err(err) => (StatusCode::BAD_GATEWAY, format!("{err}\n")).into_response(),
    }
}

/// Turns the bulkhead's rejection into a response, because axum routes
/// only take services that cannot fail.
async fn overloaded(err: BoxError) -> (StatusCode, String) {
    match err.downcast_ref::<Error>() {
        Some(Error::BulkheadFull { .. }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight\n".to_owned(),
        ),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")),
    }
}

fn app() -> Result<(Router, Arc<AppState>), Error> {
    let backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(200))?
        .jitter(Jitter::Full);
    let state = Arc::new(AppState {
        upstream: Upstream::default(),
        breaker: CircuitBreaker::builder("inventory")
            .consecutive_failures(3)
            .wait_in_open(Duration::from_secs(5))
            .half_open_trials(1)
            .on_state_change(|change| println!("  breaker: {} -> {}", change.from, change.to))
            .build()?,
        retry: Retry::new(3, backoff)?.budget(RetryBudget::new(0.2, 10)?),
        time_limit: TimeLimiter::new(Duration::from_millis(200))?,
    });
    let bulkhead = Bulkhead::builder("api")
        .max_concurrent(8)
        .max_wait(Duration::from_millis(50))
        .build()?;

    let router = Router::new()
        .route("/stock/{sku}", get(stock))
        .route(
            "/upstream/down",
            post(|State(state): State<Arc<AppState>>| async move {
                state.upstream.down.store(true, Ordering::SeqCst);
                "upstream is down\n"
            }),
        )
        .with_state(Arc::clone(&state))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .layer(BulkheadLayer::new(bulkhead)),
        );
    Ok((router, state))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (app, state) = app()?;

    if std::env::args().any(|arg| arg == "--serve") {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
        println!("listening on http://127.0.0.1:3000");
        axum::serve(listener, app).await?;
        return Ok(());
    }

    for request_number in 1..=8 {
        if request_number == 4 {
            println!("taking the upstream down");
            state.upstream.down.store(true, Ordering::SeqCst);
        }
        let request = Request::builder()
            .uri("/stock/sku-42")
            .body(Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        println!(
            "request {request_number}: {} (Retry-After: {retry_after})",
            response.status()
        );
    }

    assert_eq!(
        state.breaker.state(),
        BreakerState::Open,
        "three failed requests in a row open the breaker"
    );
    Ok(())
}
