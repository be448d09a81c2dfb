//! Property tests: each algorithm against its own bound, driven by a manual
//! clock over random schedules.

use std::time::Duration;

use proptest::prelude::*;
use pulse_core::clock::ManualClock;
use pulse_ratelimit::policy::{
    FixedWindowPolicy, GcraPolicy, LeakyBucketPolicy, LeakyQueuePolicy, Policy, SlidingLogPolicy,
    SlidingWindowPolicy, TokenBucketPolicy,
};
use pulse_ratelimit::{Limiter, Quota};

/// A quota whose emission interval is a whole number of milliseconds, so the
/// bounds below are exact in integer milliseconds.
fn quota_strategy() -> impl Strategy<Value = (u32, u64, u32)> {
    // (rate, interval in ms, burst)
    (1u32..8, 1u64..200, 1u32..12)
}

fn make_quota(rate: u32, interval_ms: u64, burst: u32) -> Quota {
    Quota::new(
        i64::from(rate),
        Duration::from_millis(interval_ms * u64::from(rate)),
    )
    .unwrap()
    .with_burst(i64::from(burst))
    .unwrap()
}

/// Runs a schedule and returns (time in ms, cost) of every admitted request.
fn run<P: Policy>(quota: Quota, schedule: &[(u64, u32)]) -> Vec<(u64, u64)> {
    let clock = ManualClock::new();
    let limiter = Limiter::<P, _>::with_clock(quota, clock.clone());
    let mut now = 0;
    let mut admitted = Vec::new();
    for &(step, cost) in schedule {
        clock.advance(Duration::from_millis(step));
        now += step;
        let decision = limiter.check_n(cost);
        if decision.allowed {
            admitted.push((now, u64::from(cost)));
        } else if cost > quota.burst() {
            assert_eq!(decision.retry_after, Duration::MAX);
        }
    }
    admitted
}

/// admitted ≤ burst + rate × elapsed ÷ period over every span of admitted
/// requests.
fn assert_refill_bound(quota: Quota, interval_ms: u64, admitted: &[(u64, u64)]) {
    for (i, &(start, _)) in admitted.iter().enumerate() {
        let mut sum = 0;
        for &(at, cost) in &admitted[i..] {
            sum += cost;
            let bound = u64::from(quota.burst()) + (at - start) / interval_ms;
            assert!(
                sum <= bound,
                "{sum} permits in [{start}, {at}] ms, bound {bound}"
            );
        }
    }
}

fn window_sums(window_ms: u64, admitted: &[(u64, u64)]) -> std::collections::BTreeMap<u64, u64> {
    let mut sums = std::collections::BTreeMap::new();
    for &(at, cost) in admitted {
        *sums.entry(at / window_ms).or_insert(0) += cost;
    }
    sums
}

fn schedule_strategy() -> impl Strategy<Value = Vec<(u64, u32)>> {
    prop::collection::vec((0u64..300, 0u32..5), 1..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn refill_algorithms_keep_bound((rate, interval, burst) in quota_strategy(), schedule in schedule_strategy()) {
        let quota = make_quota(rate, interval, burst);
        assert_refill_bound(quota, interval, &run::<GcraPolicy>(quota, &schedule));
        assert_refill_bound(quota, interval, &run::<TokenBucketPolicy>(quota, &schedule));
        assert_refill_bound(quota, interval, &run::<LeakyBucketPolicy>(quota, &schedule));
        assert_refill_bound(quota, interval, &run::<LeakyQueuePolicy>(quota, &schedule));
        assert_refill_bound(quota, interval, &run::<SlidingLogPolicy>(quota, &schedule));
    }

    #[test]
    fn caller_under_rate_never_rejected((rate, interval, burst) in quota_strategy(), extra in prop::collection::vec(0u64..50, 1..100)) {
        let quota = make_quota(rate, interval, burst);
        let clock = ManualClock::new();
        let gcra = Limiter::<GcraPolicy, _>::with_clock(quota, clock.clone());
        let bucket = Limiter::<TokenBucketPolicy, _>::with_clock(quota, clock.clone());
        let leaky = Limiter::<LeakyBucketPolicy, _>::with_clock(quota, clock.clone());
        let queue = Limiter::<LeakyQueuePolicy, _>::with_clock(quota, clock.clone());
        let log = Limiter::<SlidingLogPolicy, _>::with_clock(quota, clock.clone());
        for (request, wait) in extra.iter().enumerate() {
            prop_assert!(gcra.check().allowed, "gcra rejected request {}", request);
            prop_assert!(bucket.check().allowed, "token bucket rejected request {}", request);
            prop_assert!(leaky.check().allowed, "leaky bucket rejected request {}", request);
            prop_assert!(queue.check().allowed, "leaky queue rejected request {}", request);
            prop_assert!(log.check().allowed, "sliding log rejected request {}", request);
            clock.advance(Duration::from_millis(interval + wait));
        }
    }

    #[test]
    fn fixed_window_keeps_limit((rate, interval, burst) in quota_strategy(), schedule in schedule_strategy()) {
        let quota = make_quota(rate, interval, burst);
        let window_ms = interval * u64::from(burst);
        for (window, sum) in window_sums(window_ms, &run::<FixedWindowPolicy>(quota, &schedule)) {
            prop_assert!(sum <= u64::from(burst), "{} permits in window {}", sum, window);
        }
    }

    #[test]
    fn sliding_window_keeps_error_bound((rate, interval, burst) in quota_strategy(), schedule in schedule_strategy()) {
        let quota = make_quota(rate, interval, burst);
        let window_ms = interval * u64::from(burst);
        let admitted = run::<SlidingWindowPolicy>(quota, &schedule);
        for (window, sum) in window_sums(window_ms, &admitted) {
            prop_assert!(sum <= u64::from(burst), "{} permits in aligned window {}", sum, window);
        }
        for (i, &(start, _)) in admitted.iter().enumerate() {
            let sum: u64 = admitted[i..]
                .iter()
                .take_while(|(at, _)| *at < start + window_ms)
                .map(|(_, cost)| cost)
                .sum();
            prop_assert!(sum < 2 * u64::from(burst), "{} permits within one window from {} ms", sum, start);
        }
    }

    #[test]
    fn retry_after_is_exact_for_refill((rate, interval, burst) in quota_strategy(), schedule in schedule_strategy()) {
        let quota = make_quota(rate, interval, burst);
        let clock = ManualClock::new();
        let gcra = Limiter::<GcraPolicy, _>::with_clock(quota, clock.clone());
        for &(step, cost) in &schedule {
            clock.advance(Duration::from_millis(step));
            let decision = gcra.check_n(cost);
            if !decision.allowed && decision.retry_after != Duration::MAX {
                // The same request 1 ms early is rejected (check_n with a
                // rejection takes nothing), and at retry_after it passes.
                clock.advance(decision.retry_after - Duration::from_millis(1));
                prop_assert!(!gcra.check_n(cost).allowed);
                clock.advance(Duration::from_millis(1));
                prop_assert!(gcra.check_n(cost).allowed);
            }
        }
    }
}
