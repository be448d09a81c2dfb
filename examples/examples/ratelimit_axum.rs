//! An axum service that limits each API key to 5 requests per second, with
//! bursts of 2, and responds with `429 Too Many Requests` and a `Retry-After` header.
//!
//! `cargo run -p gopulse-examples --example ratelimit_axum` sends requests
//! to the router in-process and prints the status of each.
//! `cargo run -p gopulse-examples --example ratelimit_axum -- --serve` serves
//! on 127.0.0.1:3000 instead; try
//! `curl -i -H 'x-api-key: alice' http://127.0.0.1:3000/` a few times.
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use pulse_ratelimit::tower::RateLimitLayer;
use pulse_ratelimit::{KeyedGcra, Quota};
use tower::ServiceExt;

/// Reads the API key that the limit applies to. Requests without one share
/// the key `anonymous`, so they are limited too.
fn api_key(request: &Request<Body>) -> Option<String> {
    let key = request
        .headers()
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("anonymous");
    Some(key.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quota = Quota::per_second(5)?.with_burst(2)?;
    let limiter = Arc::new(
        KeyedGcra::<String>::builder(quota)
            .max_keys(100_000)
            .build()?,
    );
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .layer(RateLimitLayer::new(limiter, api_key));

    if std::env::args().any(|arg| arg == "--serve") {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
        println!("listening on http://127.0.0.1:3000");
        axum::serve(listener, app).await?;
        return Ok(());
    }

    for (attempt, key) in ["alice", "alice", "alice", "bob", "alice"]
        .into_iter()
        .enumerate()
    {
        let request = Request::builder()
            .uri("/")
            .header("x-api-key", key)
            .body(Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        println!(
            "request {attempt} as {key}: {} (Retry-After: {retry_after})",
            response.status()
        );
        if attempt == 2 {
            assert_eq!(
                response.status(),
                StatusCode::TOO_MANY_REQUESTS,
                "the third request in a burst of 2 is limited"
            );
        }
    }
    Ok(())
}
