//! The rate-limiter conformance suite from pulse-testkit, run on every
//! in-process algorithm through its keyed limiter.

use std::sync::Arc;
use std::time::Duration;

use pulse_core::BoxFuture;
use pulse_core::clock::ManualClock;
use pulse_core::error::Result;
use pulse_core::ratelimit::DynAsyncRateLimiter;
use pulse_ratelimit::policy::{
    FixedWindowPolicy, GcraPolicy, LeakyBucketPolicy, LeakyQueuePolicy, Policy, SlidingLogPolicy,
    SlidingWindowPolicy, TokenBucketPolicy,
};
use pulse_ratelimit::{KeyedLimiter, Quota};
use pulse_testkit::suites::ratelimit::{Bound, RateLimitBackend, Spec, run_all};

struct InProcess<P> {
    bound: Bound,
    marker: std::marker::PhantomData<fn() -> P>,
}

impl<P: Policy> InProcess<P> {
    fn new(bound: Bound) -> Self {
        InProcess {
            bound,
            marker: std::marker::PhantomData,
        }
    }
}

impl<P: Policy> RateLimitBackend for InProcess<P> {
    fn name(&self) -> &str {
        P::NAME
    }

    fn bound(&self) -> Bound {
        self.bound
    }

    fn limiter(
        &self,
        spec: Spec,
        clock: ManualClock,
    ) -> BoxFuture<'_, Result<Arc<dyn DynAsyncRateLimiter<str>>>> {
        Box::pin(async move {
            let quota =
                Quota::new(i64::from(spec.rate), spec.period)?.with_burst(i64::from(spec.burst))?;
            let limiter = KeyedLimiter::<String, P>::builder(quota)
                .clock(clock)
                .sweep_interval(Duration::from_millis(20))
                .build()?;
            Ok(Arc::new(limiter) as Arc<dyn DynAsyncRateLimiter<str>>)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_conforms() {
    run_all(&InProcess::<GcraPolicy>::new(Bound::Refill)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_conforms() {
    run_all(&InProcess::<TokenBucketPolicy>::new(Bound::Refill)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaky_bucket_conforms() {
    run_all(&InProcess::<LeakyBucketPolicy>::new(Bound::Refill)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaky_queue_conforms() {
    run_all(&InProcess::<LeakyQueuePolicy>::new(Bound::Spacing)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_log_conforms() {
    run_all(&InProcess::<SlidingLogPolicy>::new(Bound::Refill)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_conforms() {
    run_all(&InProcess::<SlidingWindowPolicy>::new(
        Bound::SlidingCounter,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_conforms() {
    run_all(&InProcess::<FixedWindowPolicy>::new(Bound::FixedWindow)).await;
}
