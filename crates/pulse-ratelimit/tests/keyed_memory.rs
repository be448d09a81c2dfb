//! A churn of a million keys gives its memory back once the keys are idle,
//! with no call from the test: the background sweep does it.
//!
//! With `u64` keys and GCRA's `AtomicU64` state every entry lives inside
//! the hash tables, so [`KeyedLimiter::table_bytes`] is all the memory the
//! keys take.
//!
//! [`KeyedLimiter::table_bytes`]: pulse_ratelimit::KeyedLimiter::table_bytes

use std::time::{Duration, Instant};

use pulse_core::clock::ManualClock;
use pulse_ratelimit::{KeyedGcra, Quota};

const KEYS: u64 = 1_000_000;

#[test]
fn million_keys_idle_back_to_five_percent() {
    let clock = ManualClock::new();
    let limiter = KeyedGcra::<u64>::builder(Quota::per_second(10).unwrap())
        .clock(clock.clone())
        .max_keys(2 * KEYS as usize)
        .sweep_interval(Duration::from_millis(50))
        .build()
        .unwrap();

    for key in 0..KEYS {
        assert!(limiter.check(&key).allowed);
    }
    let peak = limiter.table_bytes();
    assert!(
        limiter.len() as u64 >= KEYS * 9 / 10,
        "the sweep dropped keys that were not idle"
    );
    eprintln!(
        "peak: {peak} bytes for {KEYS} keys ({} bytes per key)",
        peak as u64 / KEYS
    );

    // After one emission interval every bucket is full again: each key is
    // idle and the sweep may drop it.
    clock.advance(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = usize::MAX;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = limiter.table_bytes();
        if limiter.is_empty() && after * 20 <= peak {
            break;
        }
    }
    eprintln!(
        "after idle: {after} bytes ({:.2}% of peak)",
        after as f64 * 100.0 / peak as f64
    );
    assert!(
        limiter.is_empty(),
        "{} keys left after the sweep",
        limiter.len()
    );
    assert!(
        after * 20 <= peak,
        "memory after idle {after} bytes is above 5% of the peak {peak} bytes"
    );
}
