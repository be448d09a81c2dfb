//! Known failures of other rate limiters, restated as inputs with the right
//! result.

use std::time::Duration;

use pulse_core::clock::ManualClock;
use pulse_ratelimit::{FixedWindow, Gcra, Quota, TokenBucket};

/// Capacity 2, one token per second: drain at 0, then ask at 0.9 s, 1.8 s,
/// …, 9.9 s. A partial refill is never thrown away, so exactly the nine
/// requests from 1.8 s to 9.0 s pass.
#[test]
fn token_bucket_keeps_partial_refill() {
    let clock = ManualClock::new();
    let quota = Quota::per_second(1).unwrap().with_burst(2).unwrap();
    let bucket = TokenBucket::with_clock(quota, clock.clone());
    assert!(bucket.check_n(2).allowed);

    let mut admitted_at = Vec::new();
    for step in 1..=11u64 {
        clock.advance(Duration::from_millis(900));
        if bucket.check().allowed {
            admitted_at.push(step * 900);
        }
    }
    assert_eq!(
        admitted_at,
        vec![1800, 2700, 3600, 4500, 5400, 6300, 7200, 8100, 9000]
    );
}

/// GCRA with burst B and rate R per P: at most B + R·W/P in any window W,
/// checked here for a caller that asks every millisecond for 10 s.
#[test]
fn gcra_admits_burst_plus_rate() {
    let clock = ManualClock::new();
    let quota = Quota::new(7, Duration::from_secs(2))
        .unwrap()
        .with_burst(4)
        .unwrap();
    let gcra = Gcra::with_clock(quota, clock.clone());
    let mut admitted = Vec::new();
    for ms in 0..10_000u64 {
        if gcra.check().allowed {
            admitted.push(ms);
        }
        clock.advance(Duration::from_millis(1));
    }
    for (i, &start) in admitted.iter().enumerate() {
        for (j, &end) in admitted.iter().enumerate().skip(i) {
            let count = (j - i + 1) as u64;
            let bound = 4 + 7 * (end - start) / 2000;
            assert!(
                count <= bound,
                "{count} admitted in [{start}, {end}] ms, bound {bound}"
            );
        }
    }
    // The bound is reached: 4 at once, then one per 2000/7 ms.
    assert_eq!(admitted.len() as u64, 4 + 7 * 9_999 / 2000);
}

/// A fixed window of limit L passes at most L per aligned window.
#[test]
fn fixed_window_limit_per_window() {
    let clock = ManualClock::new();
    let window = FixedWindow::with_clock(Quota::per_minute(5).unwrap(), clock.clone());
    let mut per_window = [0u32; 3];
    for second in 0..180u64 {
        if window.check().allowed {
            per_window[(second / 60) as usize] += 1;
        }
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(per_window, [5, 5, 5]);
}
