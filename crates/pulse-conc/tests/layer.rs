//! Tower layers over the breaker and the bulkhead.
#![cfg(feature = "tower")]

use std::time::Duration;

use pulse_conc::breaker::{CircuitBreaker, State};
use pulse_conc::layer::{BulkheadLayer, CircuitBreakerLayer};
use pulse_conc::{Bulkhead, Error};
use tower::{Layer, Service, ServiceExt};

#[tokio::test]
async fn breaker_layer_opens_and_rejects() {
    let breaker = CircuitBreaker::builder("layer")
        .consecutive_failures(2)
        .build()
        .unwrap();
    let inner = tower::service_fn(|fail: bool| async move {
        if fail {
            Err(std::io::Error::other("upstream 500"))
        } else {
            Ok("ok")
        }
    });
    let mut service = CircuitBreakerLayer::new(breaker.clone()).layer(inner);

    assert_eq!(
        service.ready().await.unwrap().call(false).await.unwrap(),
        "ok"
    );
    for _ in 0..2 {
        assert!(service.ready().await.unwrap().call(true).await.is_err());
    }
    assert_eq!(breaker.state(), State::Open);

    let err = service
        .ready()
        .await
        .unwrap()
        .call(false)
        .await
        .unwrap_err();
    assert!(matches!(
        err.downcast_ref::<Error>(),
        Some(Error::CircuitOpen { .. })
    ));
}

#[tokio::test]
async fn bulkhead_layer_rejects_when_full() {
    let bulkhead = Bulkhead::builder("layer")
        .max_concurrent(1)
        .max_wait(Duration::ZERO)
        .build()
        .unwrap();
    let inner = tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
    let mut service = BulkheadLayer::new(bulkhead.clone()).layer(inner);

    let held = bulkhead.try_acquire().unwrap();
    let err = service.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(matches!(
        err.downcast_ref::<Error>(),
        Some(Error::BulkheadFull { .. })
    ));

    drop(held);
    assert_eq!(service.ready().await.unwrap().call(2).await.unwrap(), 2);
}
