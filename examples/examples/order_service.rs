//! An HTTP order service on axum that uses the gopulse primitives together:
//! the tower rate-limit layer per tenant, a circuit breaker around a flaky
//! payment gateway, a near cache, Snowflake ids and order events.
//!
//! ```text
//! cargo run --example order_service                                  # in-process
//! cargo run --example order_service -- --redis redis://127.0.0.1:6379
//! curl -i -X POST -H 'x-tenant: acme' 'http://127.0.0.1:3000/orders?product=7'
//! ```
//!
//! The crate README has the whole walk-through with curl.

use std::io::IsTerminal;

use gopulse_examples::service::{Backends, Service};
use pulse_ratelimit::Quota;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let mut address = "127.0.0.1:3000".to_owned();
    let mut redis = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                address = args
                    .next()
                    .ok_or("--addr needs a value such as 127.0.0.1:3000")?
            }
            "--redis" => {
                redis = Some(
                    args.next()
                        .ok_or("--redis needs a URL such as redis://127.0.0.1:6379")?,
                )
            }
            "-h" | "--help" => {
                eprintln!("order_service [--addr HOST:PORT] [--redis URL]");
                return Ok(());
            }
            other => return Err(format!("unknown option `{other}`; see --help").into()),
        }
    }

    let backends = match &redis {
        Some(url) => Backends::redis(url, "order-service")?,
        None => Backends::memory()?,
    };
    // Five orders per second per tenant, in bursts of up to five.
    let service = Service::start(backends, Quota::per_second(5)?.with_burst(5)?).await?;
    let listener = tokio::net::TcpListener::bind(&address).await?;
    tracing::info!(target: "gopulse_examples", address, redis = redis.is_some(), "order service listening");
    axum::serve(listener, service.router.clone())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    service.shutdown().await;
    Ok(())
}
