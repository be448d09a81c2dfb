//! Out-of-range keyed-limiter settings are typed errors or work; none
//! panics, in the builder or in the sweep thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pulse_core::clock::ManualClock;
use pulse_ratelimit::{KeyedGcra, Quota, RateLimitError};

fn quota() -> Quota {
    Quota::per_second(10).unwrap()
}

#[test]
fn shards_above_limit_rejected() {
    for shards in [(1 << 16) + 1, usize::MAX / 2 + 2, usize::MAX] {
        let err = KeyedGcra::<String>::builder(quota())
            .shards(shards)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                RateLimitError::InvalidSetting {
                    field: "shards",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(&shards.to_string()), "{err}");
    }
    let largest = KeyedGcra::<String>::builder(quota())
        .shards(1 << 16)
        .build()
        .unwrap();
    assert!(largest.check("key").allowed);
}

/// A sweep interval too long for `Instant` leaves idle keys in place; the
/// sweep thread stays alive and the limiter keeps deciding.
#[tokio::test]
async fn max_sweep_interval_no_panic() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&panics);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));

    let clock = ManualClock::new();
    let limiter = KeyedGcra::<String>::builder(quota())
        .clock(clock.clone())
        .sweep_interval(Duration::MAX)
        .build()
        .unwrap();
    assert!(limiter.check("key").allowed);

    // A sweep thread that cannot compute its first deadline panics at once.
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(
        panics.load(Ordering::SeqCst),
        0,
        "the sweep thread panicked"
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(limiter.sweep(), 1, "a manual sweep still drops idle keys");
    limiter.shutdown().await;
}
