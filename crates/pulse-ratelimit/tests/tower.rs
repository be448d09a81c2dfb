//! The tower layer responds with 429 with Retry-After once a key is over its
//! limit, and keeps keys apart.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use pulse_core::clock::ManualClock;
use pulse_ratelimit::tower::RateLimitLayer;
use pulse_ratelimit::{KeyedGcra, Quota};
use tower::{Service, ServiceBuilder, ServiceExt};

fn request(key: Option<&str>) -> Request<()> {
    let mut builder = Request::builder().uri("/");
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    builder.body(()).unwrap()
}

#[tokio::test]
async fn over_limit_gets_429_with_retry_after() {
    let clock = ManualClock::new();
    let quota = Quota::new(2, Duration::from_secs(3)).unwrap();
    let limiter = Arc::new(
        KeyedGcra::<String>::builder(quota)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let layer = RateLimitLayer::new(limiter, |request: &Request<()>| {
        request
            .headers()
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    });
    let mut service = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(|_request: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        }));

    for _ in 0..2 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request(Some("a")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let limited = service
        .ready()
        .await
        .unwrap()
        .call(request(Some("a")))
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    // One permit every 1.5 s: 1500 ms, which HTTP rounds up to 2 s.
    assert_eq!(limited.headers()[header::RETRY_AFTER], "2");
    assert_eq!(limited.headers()["x-ratelimit-retry-after-ms"], "1500");
    assert_eq!(limited.body(), "");

    let other = service
        .ready()
        .await
        .unwrap()
        .call(request(Some("b")))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK, "keys are limited apart");
    let unkeyed = service
        .ready()
        .await
        .unwrap()
        .call(request(None))
        .await
        .unwrap();
    assert_eq!(
        unkeyed.status(),
        StatusCode::OK,
        "requests without a key pass"
    );

    clock.advance(Duration::from_millis(1500));
    let again = service
        .ready()
        .await
        .unwrap()
        .call(request(Some("a")))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}
