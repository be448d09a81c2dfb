//! Conformance suite for rate limiters: admission bounds, exact
//! retry-after, no over-admission under concurrency.
//!
//! A backend implements [`RateLimitBackend`], a factory for fresh limiters
//! driven by a [`ManualClock`], and runs [`run_all`] (or the checks one by
//! one). Every limiter the factory returns must start empty: use a fresh key
//! prefix for a remote backend.
//!
//! | check | what the limiter must do |
//! | --- | --- |
//! | [`burst_then_reject`] | a fresh key admits its burst at once and rejects the next request |
//! | [`retry_after_is_exact`] | a rejected request is still rejected 1 ms before `retry_after` and admitted at it |
//! | [`cost_above_burst`] | a cost above the burst is rejected with `retry_after == Duration::MAX` and takes nothing |
//! | [`keys_are_isolated`] | one key's use does not touch another's |
//! | [`bound_holds`] | the algorithm's own bound over a pseudo-random schedule (see [`Bound`]) |
//! | [`under_rate_never_rejected`] | a caller at one permit per emission interval is never rejected ([`Bound::Refill`] and [`Bound::Spacing`]) |
//! | [`concurrent_callers_exact`] | 8 tasks hammering one key at a frozen clock get exactly the burst |
//!
//! The checks panic with a message naming the backend and the broken
//! promise, as test assertions do.

use std::sync::Arc;
use std::time::Duration;

use pulse_core::BoxFuture;
use pulse_core::clock::ManualClock;
use pulse_core::error::Result;
use pulse_core::ratelimit::{Decision, DynAsyncRateLimiter};

/// The bound an algorithm promises, which decides what [`bound_holds`]
/// checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// GCRA, token bucket, leaky bucket as a meter, sliding log: at most
    /// `burst + rate × elapsed ÷ period` in any span, and a caller at the rate
    /// is never rejected.
    Refill,
    /// A leaky bucket as a queue: as [`Bound::Refill`], but a fresh key
    /// admits one request at once (the output is spaced, not bursty).
    Spacing,
    /// At most `burst` per aligned window of `burst × period ÷ rate`.
    FixedWindow,
    /// At most `burst` per aligned window and below `2 × burst` in any span
    /// of one window.
    SlidingCounter,
}

/// The quota a check asks the factory for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Permits per period.
    pub rate: u32,
    /// The period the rate is counted over.
    pub period: Duration,
    /// The largest burst.
    pub burst: u32,
}

impl Spec {
    fn interval(&self) -> Duration {
        self.period / self.rate
    }

    fn window(&self) -> Duration {
        self.interval() * self.burst
    }
}

/// A rate-limiter backend under test.
pub trait RateLimitBackend: Send + Sync {
    /// A short name for failure messages ("gcra", "redis-gcra").
    fn name(&self) -> &str;

    /// The bound the algorithm promises.
    fn bound(&self) -> Bound;

    /// Creates a fresh limiter for `spec` that reads time from `clock`.
    fn limiter(
        &self,
        spec: Spec,
        clock: ManualClock,
    ) -> BoxFuture<'_, Result<Arc<dyn DynAsyncRateLimiter<str>>>>;
}

/// The checks that ran.
#[derive(Debug, Default)]
pub struct Report {
    /// Names of the checks that ran and passed.
    pub passed: Vec<&'static str>,
}

/// Runs every check on `backend`.
pub async fn run_all(backend: &dyn RateLimitBackend) -> Report {
    let mut report = Report::default();
    burst_then_reject(backend).await;
    report.passed.push("burst_then_reject");
    retry_after_is_exact(backend).await;
    report.passed.push("retry_after_is_exact");
    cost_above_burst(backend).await;
    report.passed.push("cost_above_burst");
    keys_are_isolated(backend).await;
    report.passed.push("keys_are_isolated");
    bound_holds(backend).await;
    report.passed.push("bound_holds");
    under_rate_never_rejected(backend).await;
    report.passed.push("under_rate_never_rejected");
    concurrent_callers_exact(backend).await;
    report.passed.push("concurrent_callers_exact");
    report
}

const SPEC: Spec = Spec {
    rate: 10,
    period: Duration::from_secs(1),
    burst: 5,
};

async fn make(
    backend: &dyn RateLimitBackend,
    spec: Spec,
) -> (Arc<dyn DynAsyncRateLimiter<str>>, ManualClock) {
    let clock = ManualClock::new();
    let limiter = backend
        .limiter(spec, clock.clone())
        .await
        .unwrap_or_else(|err| panic!("{}: creating a limiter failed: {err}", backend.name()));
    (limiter, clock)
}

async fn decide(
    backend: &dyn RateLimitBackend,
    limiter: &dyn DynAsyncRateLimiter<str>,
    key: &str,
    cost: u32,
) -> Decision {
    limiter
        .check_n_boxed(key, cost)
        .await
        .unwrap_or_else(|err| panic!("{}: check of `{key}` failed: {err}", backend.name()))
}

fn burst_of(backend: &dyn RateLimitBackend, spec: Spec) -> u32 {
    if backend.bound() == Bound::Spacing {
        1
    } else {
        spec.burst
    }
}

/// A fresh key admits its burst at once and rejects the next request.
pub async fn burst_then_reject(backend: &dyn RateLimitBackend) {
    let name = backend.name();
    let (limiter, _clock) = make(backend, SPEC).await;
    let burst = burst_of(backend, SPEC);
    for taken in 1..=burst {
        let decision = decide(backend, &*limiter, "a", 1).await;
        assert!(
            decision.allowed,
            "{name}: request {taken} of a burst of {burst} was rejected: {decision:?}"
        );
        assert_eq!(
            decision.retry_after,
            Duration::ZERO,
            "{name}: an admitted request has a retry_after"
        );
    }
    let decision = decide(backend, &*limiter, "a", 1).await;
    assert!(
        !decision.allowed,
        "{name}: request {} after a burst of {burst} was admitted",
        burst + 1
    );
    assert!(
        decision.retry_after > Duration::ZERO,
        "{name}: a rejection has no retry_after"
    );
    assert_eq!(
        decision.remaining, 0,
        "{name}: a rejection after the burst reports remaining permits"
    );
}

/// A rejected request is still rejected 1 ms before its `retry_after` and
/// admitted once it has passed.
pub async fn retry_after_is_exact(backend: &dyn RateLimitBackend) {
    let name = backend.name();
    let (limiter, clock) = make(backend, SPEC).await;
    clock.advance(Duration::from_millis(1234));
    for round in 0..3 {
        // Take what is left, up to the first rejection.
        let mut rejected = decide(backend, &*limiter, "a", 1).await;
        for _ in 0..SPEC.burst {
            if !rejected.allowed {
                break;
            }
            rejected = decide(backend, &*limiter, "a", 1).await;
        }
        assert!(
            !rejected.allowed,
            "{name}: round {round}: more than the burst was admitted"
        );
        let wait = rejected.retry_after;
        assert!(
            wait >= Duration::from_millis(1) && wait < Duration::from_secs(3600),
            "{name}: retry_after {wait:?} is out of range"
        );

        clock.advance(wait - Duration::from_millis(1));
        let early = decide(backend, &*limiter, "a", 1).await;
        assert!(
            !early.allowed,
            "{name}: round {round}: admitted 1 ms before retry_after {wait:?}"
        );

        clock.advance(Duration::from_millis(1));
        let on_time = decide(backend, &*limiter, "a", 1).await;
        assert!(
            on_time.allowed,
            "{name}: round {round}: rejected at retry_after {wait:?}: {on_time:?}"
        );
    }
}

/// A cost above the burst is never admitted and takes nothing.
pub async fn cost_above_burst(backend: &dyn RateLimitBackend) {
    let name = backend.name();
    let (limiter, _clock) = make(backend, SPEC).await;
    let decision = decide(backend, &*limiter, "a", SPEC.burst + 1).await;
    assert!(
        !decision.allowed,
        "{name}: a cost above the burst was admitted"
    );
    assert_eq!(
        decision.retry_after,
        Duration::MAX,
        "{name}: a cost that can never pass needs retry_after == MAX"
    );
    let after = decide(backend, &*limiter, "a", 1).await;
    assert!(
        after.allowed,
        "{name}: the rejected oversized cost took permits"
    );
}

/// One key's use does not touch another's.
pub async fn keys_are_isolated(backend: &dyn RateLimitBackend) {
    let name = backend.name();
    let (limiter, _clock) = make(backend, SPEC).await;
    let burst = burst_of(backend, SPEC);
    for _ in 0..burst {
        decide(backend, &*limiter, "first", 1).await;
    }
    assert!(
        !decide(backend, &*limiter, "first", 1).await.allowed,
        "{name}: key `first` is not exhausted"
    );
    assert!(
        decide(backend, &*limiter, "second", 1).await.allowed,
        "{name}: key `second` was limited by `first`"
    );
}

/// A small deterministic generator, so that failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// Checks the algorithm's own bound over a pseudo-random schedule of
/// requests of mixed cost.
pub async fn bound_holds(backend: &dyn RateLimitBackend) {
    let name = backend.name();
    let spec = Spec {
        rate: 4,
        period: Duration::from_secs(1),
        burst: 6,
    };
    let (limiter, clock) = make(backend, spec).await;
    let mut random = Lcg(0x5eed);
    let interval_ms = spec.interval().as_millis() as u64;
    let mut admitted: Vec<(u64, u64)> = Vec::new();
    let mut now_ms = 0;

    for _ in 0..400 {
        let step = random.below(interval_ms * 2);
        clock.advance(Duration::from_millis(step));
        now_ms += step;
        let cost = 1 + random.below(3) as u32;
        if decide(backend, &*limiter, "k", cost).await.allowed {
            admitted.push((now_ms, u64::from(cost)));
        }
    }
    assert!(!admitted.is_empty(), "{name}: nothing was admitted");

    let window_ms = spec.window().as_millis() as u64;
    let burst = u64::from(spec.burst);
    match backend.bound() {
        Bound::Refill | Bound::Spacing => {
            for (i, &(start, _)) in admitted.iter().enumerate() {
                let mut sum = 0;
                for &(at, cost) in &admitted[i..] {
                    sum += cost;
                    let allowed = burst
                        + u64::from(spec.rate) * (at - start) / spec.period.as_millis() as u64;
                    assert!(
                        sum <= allowed,
                        "{name}: {sum} permits in [{start} ms, {at} ms], bound {allowed}"
                    );
                }
            }
        }
        Bound::FixedWindow | Bound::SlidingCounter => {
            let mut per_window = std::collections::BTreeMap::new();
            for &(at, cost) in &admitted {
                *per_window.entry(at / window_ms).or_insert(0) += cost;
            }
            for (window, sum) in per_window {
                assert!(
                    sum <= burst,
                    "{name}: {sum} permits in aligned window {window}, limit {burst}"
                );
            }
            if backend.bound() == Bound::SlidingCounter {
                for (i, &(start, _)) in admitted.iter().enumerate() {
                    let sum: u64 = admitted[i..]
                        .iter()
                        .take_while(|(at, _)| *at < start + window_ms)
                        .map(|(_, cost)| cost)
                        .sum();
                    assert!(
                        sum < 2 * burst,
                        "{name}: {sum} permits within one window from {start} ms, bound below {}",
                        2 * burst
                    );
                }
            }
        }
    }
}

/// A caller that takes one permit per emission interval, or slower, is
/// never rejected.
pub async fn under_rate_never_rejected(backend: &dyn RateLimitBackend) {
    if !matches!(backend.bound(), Bound::Refill | Bound::Spacing) {
        return;
    }
    let name = backend.name();
    let (limiter, clock) = make(backend, SPEC).await;
    let mut random = Lcg(7);
    for request in 0..200 {
        let decision = decide(backend, &*limiter, "k", 1).await;
        assert!(
            decision.allowed,
            "{name}: request {request} at or under the rate was rejected: {decision:?}"
        );
        let jitter = Duration::from_millis(random.below(30));
        clock.advance(SPEC.interval() + jitter);
    }
}

/// Eight tasks hammering one key at a frozen clock get exactly the burst.
pub async fn concurrent_callers_exact(backend: &dyn RateLimitBackend) {
    let name = backend.name().to_owned();
    let spec = Spec {
        rate: 10,
        period: Duration::from_secs(1),
        burst: 25,
    };
    let (limiter, _clock) = make(backend, spec).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0u32;
            for _ in 0..20 {
                if limiter
                    .check_n_boxed("hot", 1)
                    .await
                    .map(|d| d.allowed)
                    .unwrap_or(false)
                {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("task panicked");
    }
    let expected = burst_of(backend, spec);
    assert_eq!(
        total, expected,
        "{name}: 8 tasks at a frozen clock got {total} permits, burst {expected}"
    );
}
