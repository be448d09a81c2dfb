//! Tower layers for the circuit breaker and the bulkhead.
//!
//! Both services return [`BoxError`]: the inner service's error, or this
//! crate's [`Error`](crate::Error) when the guard stopped the request. With
//! axum, put a `HandleErrorLayer` in front that maps them to a response
//! (503 for [`Error::CircuitOpen`](crate::Error::CircuitOpen) and
//! [`Error::BulkheadFull`](crate::Error::BulkheadFull)).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;

/// The error type of the services of this module.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Wraps a service in a [`CircuitBreaker`]: a request is rejected while the
/// breaker is open, and each response or error is recorded. An `Ok`
/// response counts as a success; an error is a failure unless the breaker's
/// failure predicate returns `false` for it.
///
/// # Examples
///
/// ```
/// use pulse_conc::breaker::CircuitBreaker;
/// use pulse_conc::layer::CircuitBreakerLayer;
/// use tower::{Layer, Service, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let breaker = CircuitBreaker::builder("search").build().unwrap();
/// let service = tower::service_fn(|query: String| async move {
///     Ok::<_, std::io::Error>(query.len())
/// });
/// let mut service = CircuitBreakerLayer::new(breaker).layer(service);
/// let length = service.ready().await.unwrap().call("rust".to_owned()).await.unwrap();
/// assert_eq!(length, 4);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    breaker: CircuitBreaker,
}

impl CircuitBreakerLayer {
    /// Creates a layer whose services share `breaker`.
    pub fn new(breaker: CircuitBreaker) -> Self {
        CircuitBreakerLayer { breaker }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// The service made by [`CircuitBreakerLayer`].
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S, Request> Service<Request> for CircuitBreakerService<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let permit = match self.breaker.try_acquire_owned() {
            Ok(permit) => permit,
            Err(err) => return Box::pin(std::future::ready(Err(err.into()))),
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            match response.await {
                Ok(response) => {
                    permit.record_success();
                    Ok(response)
                }
                Err(err) => {
                    let err: BoxError = err.into();
                    permit.record_error(&*err);
                    Err(err)
                }
            }
        })
    }
}

/// Wraps a service in a [`Bulkhead`]: each request holds a slot while the
/// inner service handles it, waiting up to the bulkhead's maximum wait for
/// one.
///
/// The inner service is cloned per request, as tower's own middleware that
/// waits in `call` does, so it must be cheap to clone.
///
/// # Examples
///
/// ```
/// use pulse_conc::Bulkhead;
/// use pulse_conc::layer::BulkheadLayer;
/// use tower::{Layer, Service, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let bulkhead = Bulkhead::builder("exports").max_concurrent(4).build().unwrap();
/// let service = tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) });
/// let mut service = BulkheadLayer::new(bulkhead).layer(service);
/// assert_eq!(service.ready().await.unwrap().call(21).await.unwrap(), 42);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// Creates a layer whose services share `bulkhead`.
    pub fn new(bulkhead: Bulkhead) -> Self {
        BulkheadLayer { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// The service made by [`BulkheadLayer`].
#[derive(Clone, Debug)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S, Request> Service<Request> for BulkheadService<S>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
    Request: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The ready inner service goes into the future; a fresh clone stays
        // behind and is driven to readiness by the next `poll_ready`.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let bulkhead = self.bulkhead.clone();
        Box::pin(async move {
            let _permit = bulkhead.acquire().await?;
            inner.call(request).await.map_err(Into::into)
        })
    }
}
