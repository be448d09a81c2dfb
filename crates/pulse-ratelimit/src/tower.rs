//! A tower layer that rate-limits requests by key and responds with
//! `429 Too Many Requests` and a `Retry-After` header.
//!
//! The layer works with any [`AsyncRateLimiter`]: an in-process
//! [`KeyedLimiter`](crate::KeyedLimiter), a
//! [`RedisLimiter`](crate::redis::RedisLimiter), or a trait object chosen at
//! run time. A request for which the key extractor returns `None` is passed
//! through without a check; return a fixed key instead to limit those too.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use pulse_ratelimit::tower::RateLimitLayer;
//! use pulse_ratelimit::{KeyedGcra, Quota};
//!
//! let limiter = Arc::new(KeyedGcra::<String>::builder(Quota::per_second(10)?).build()?);
//! let layer: RateLimitLayer<_, _, String> = RateLimitLayer::new(limiter, |request: &http::Request<()>| {
//!     request
//!         .headers()
//!         .get("x-api-key")
//!         .and_then(|value| value.to_str().ok())
//!         .map(str::to_owned)
//! });
//! # let _ = layer;
//! # Ok::<(), pulse_ratelimit::RateLimitError>(())
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use pulse_core::ratelimit::{AsyncRateLimiter, Decision};
use tower_layer::Layer;
use tower_service::Service;

/// The layer: wraps a service in a [`RateLimit`].
pub struct RateLimitLayer<L, F, K> {
    limiter: Arc<L>,
    key: Arc<F>,
    marker: PhantomData<fn() -> K>,
}

impl<L, F, K> RateLimitLayer<L, F, K> {
    /// Creates a layer that checks `limiter` with the key that `key`
    /// extracts from each request.
    pub fn new(limiter: Arc<L>, key: F) -> Self {
        RateLimitLayer {
            limiter,
            key: Arc::new(key),
            marker: PhantomData,
        }
    }
}

impl<L, F, K> Clone for RateLimitLayer<L, F, K> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            marker: PhantomData,
        }
    }
}

impl<L, F, K> fmt::Debug for RateLimitLayer<L, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer").finish_non_exhaustive()
    }
}

impl<S, L, F, K> Layer<S> for RateLimitLayer<L, F, K> {
    type Service = RateLimit<S, L, F, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            marker: PhantomData,
        }
    }
}

/// The service made by [`RateLimitLayer`].
pub struct RateLimit<S, L, F, K> {
    inner: S,
    limiter: Arc<L>,
    key: Arc<F>,
    marker: PhantomData<fn() -> K>,
}

impl<S: Clone, L, F, K> Clone for RateLimit<S, L, F, K> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            marker: PhantomData,
        }
    }
}

impl<S, L, F, K> fmt::Debug for RateLimit<S, L, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

/// The response future of [`RateLimit`].
pub type ResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, L, F, K, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, L, F, K>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    L: AsyncRateLimiter<K> + 'static,
    F: Fn(&Request<ReqBody>) -> Option<K> + Send + Sync + 'static,
    K: Send + Sync + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone is not ready yet; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        let key = (self.key)(&request);

        Box::pin(async move {
            let Some(key) = key else {
                return inner.call(request).await;
            };
            match limiter.check(&key).await {
                Ok(decision) if decision.allowed => inner.call(request).await,
                Ok(decision) => Ok(too_many_requests(&decision)),
                Err(err) => {
                    tracing::warn!(target: "pulse_ratelimit", error = %err, "rate limiter failed; responding with 503");
                    let mut response = Response::new(ResBody::default());
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    Ok(response)
                }
            }
        })
    }
}

/// Builds the 429 response: `Retry-After` in whole seconds, rounded up and
/// at least 1, because HTTP allows no fractions there, and the exact wait in
/// `x-ratelimit-retry-after-ms`. A cost that can never be admitted gets no
/// `Retry-After`.
fn too_many_requests<B: Default>(decision: &Decision) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    if decision.retry_after != std::time::Duration::MAX {
        let millis = decision.retry_after.as_millis();
        let seconds = millis.div_ceil(1000).max(1);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds as u64));
        headers.insert(
            "x-ratelimit-retry-after-ms",
            HeaderValue::from(millis as u64),
        );
    }
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    response
}
