//! Threads hammering one key never make a limiter admit more than its bound,
//! and get exactly the bound when the clock is frozen.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use pulse_core::clock::ManualClock;
use pulse_ratelimit::policy::{
    FixedWindowPolicy, GcraPolicy, LeakyBucketPolicy, Policy, SlidingLogPolicy,
    SlidingWindowPolicy, TokenBucketPolicy,
};
use pulse_ratelimit::{KeyedLimiter, Limiter, Quota};

const THREADS: usize = 8;
const ATTEMPTS: usize = 2_000;
const BURST: u32 = 1_000;

fn hammer(check: impl Fn() -> bool + Sync) -> u64 {
    let admitted = AtomicU64::new(0);
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..ATTEMPTS {
                    if check() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    admitted.into_inner()
}

fn quota() -> Quota {
    Quota::per_second(10)
        .unwrap()
        .with_burst(i64::from(BURST))
        .unwrap()
}

fn direct_exact<P: Policy>() {
    let limiter = Limiter::<P, _>::with_clock(quota(), ManualClock::new());
    assert_eq!(
        hammer(|| limiter.check().allowed),
        u64::from(BURST),
        "{}",
        P::NAME
    );
}

fn keyed_exact<P: Policy>() {
    let limiter = Arc::new(
        KeyedLimiter::<u64, P>::builder(quota())
            .clock(ManualClock::new())
            .build()
            .unwrap(),
    );
    assert_eq!(
        hammer(|| limiter.check(&7).allowed),
        u64::from(BURST),
        "{}",
        P::NAME
    );
}

#[test]
fn direct_limiters_admit_exactly_burst() {
    direct_exact::<GcraPolicy>();
    direct_exact::<TokenBucketPolicy>();
    direct_exact::<LeakyBucketPolicy>();
    direct_exact::<SlidingLogPolicy>();
    direct_exact::<SlidingWindowPolicy>();
    direct_exact::<FixedWindowPolicy>();
}

#[test]
fn keyed_limiters_admit_exactly_burst() {
    keyed_exact::<GcraPolicy>();
    keyed_exact::<TokenBucketPolicy>();
    keyed_exact::<LeakyBucketPolicy>();
    keyed_exact::<SlidingLogPolicy>();
    keyed_exact::<SlidingWindowPolicy>();
    keyed_exact::<FixedWindowPolicy>();
}

/// Mixed costs from many threads still sum to exactly the burst.
#[test]
fn mixed_costs_sum_to_burst() {
    let limiter = Limiter::<GcraPolicy, _>::with_clock(quota(), ManualClock::new());
    let taken = AtomicU64::new(0);
    thread::scope(|scope| {
        for thread_index in 0..THREADS {
            let limiter = &limiter;
            let taken = &taken;
            scope.spawn(move || {
                for attempt in 0..ATTEMPTS {
                    let cost = 1 + ((thread_index + attempt) % 3) as u32;
                    if limiter.check_n(cost).allowed {
                        taken.fetch_add(u64::from(cost), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    // Costs of 1 keep being tried after 2s and 3s stop fitting, so the
    // last permit is always taken.
    assert_eq!(taken.into_inner(), u64::from(BURST));
}
