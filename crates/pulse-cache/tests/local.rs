//! The local tier: bounds, expiry, listener causes, statistics and bad
//! input.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_cache::{CacheError, LocalCache, RemovalCause};
use pulse_core::ErrorKind;
use pulse_core::clock::ManualClock;

type Events = Arc<Mutex<Vec<(String, String, RemovalCause)>>>;

fn recording() -> (
    Events,
    impl Fn(String, String, RemovalCause) + Send + Sync + 'static,
) {
    let events: Events = Arc::default();
    let sink = events.clone();
    (events, move |k, v, cause| {
        sink.lock().unwrap().push((k, v, cause))
    })
}

#[test]
fn weight_within_capacity_as_entry_grows() {
    let cache = LocalCache::<String, String>::builder()
        .max_weight(10)
        .weigher(|_k, v: &String| v.len() as u64)
        .build()
        .unwrap();

    cache.insert("grow".into(), String::new()).unwrap();
    for len in 1..=8 {
        cache.insert("grow".into(), "x".repeat(len)).unwrap();
        assert!(
            cache.weighted_size() <= 10,
            "weight {}",
            cache.weighted_size()
        );
    }
    for i in 0..50 {
        cache.insert(format!("k{i}"), "yy".into()).unwrap();
        assert!(
            cache.weighted_size() <= 10,
            "weight {}",
            cache.weighted_size()
        );
    }
}

#[test]
fn replace_then_invalidate_all() {
    let cache = LocalCache::<String, String>::builder()
        .max_entries(4)
        .build()
        .unwrap();
    for i in 0..4 {
        cache.insert(format!("fill{i}"), "x".into()).unwrap();
    }
    cache.insert("k".into(), "v1".into()).unwrap();
    cache.insert("k".into(), "v2".into()).unwrap();
    let read = cache.get("k");
    cache.invalidate_all();
    assert_eq!(read.as_deref(), Some("v2"));
    assert_eq!(cache.entry_count(), 0);
}

#[test]
fn ttl_expires_entries_through_the_clock() {
    let clock = ManualClock::new();
    let (events, listener) = recording();
    let cache = LocalCache::<String, String>::builder()
        .max_entries(100)
        .ttl(Duration::from_secs(10))
        .clock(clock.clone())
        .eviction_listener(listener)
        .build()
        .unwrap();

    cache.insert("a".into(), "1".into()).unwrap();
    clock.advance(Duration::from_secs(9));
    assert_eq!(cache.get("a").as_deref(), Some("1"));
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get("a"), None);
    assert_eq!(
        events.lock().unwrap().as_slice(),
        &[("a".to_owned(), "1".to_owned(), RemovalCause::Expired)]
    );
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn time_to_idle_is_extended_by_reads() {
    let clock = ManualClock::new();
    let cache = LocalCache::<u64, u64>::builder()
        .max_entries(100)
        .time_to_idle(Duration::from_secs(5))
        .clock(clock.clone())
        .build()
        .unwrap();

    cache.insert(1, 1).unwrap();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(4));
        assert_eq!(cache.get(&1), Some(1));
    }
    clock.advance(Duration::from_secs(5));
    assert_eq!(cache.get(&1), None);
}

#[test]
fn per_entry_expiry_beats_the_default_ttl() {
    let clock = ManualClock::new();
    let cache = LocalCache::<String, u64>::builder()
        .max_entries(100)
        .ttl(Duration::from_secs(100))
        .expire_after(|key: &String, _v| key.starts_with("short").then(|| Duration::from_secs(1)))
        .clock(clock.clone())
        .build()
        .unwrap();

    cache.insert("short-1".into(), 1).unwrap();
    cache.insert("long-1".into(), 2).unwrap();
    cache
        .insert_with_ttl("explicit".into(), 3, Duration::from_secs(3))
        .unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.get("short-1"), None);
    assert_eq!(cache.get("explicit"), Some(3));
    assert_eq!(cache.get("long-1"), Some(2));
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.get("explicit"), None);
    assert_eq!(cache.purge_expired(), 0);
}

#[test]
fn purge_expired_removes_unread_entries() {
    let clock = ManualClock::new();
    let cache = LocalCache::<u64, u64>::builder()
        .max_entries(100)
        .ttl(Duration::from_secs(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        cache.insert(i, i).unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.purge_expired(), 10);
    assert_eq!(cache.entry_count(), 0);
}

#[test]
fn listener_reports_each_cause() {
    let (events, listener) = recording();
    let cache = LocalCache::<String, String>::builder()
        .max_entries(2)
        .eviction_listener(listener)
        .build()
        .unwrap();

    cache.insert("a".into(), "1".into()).unwrap();
    cache.insert("a".into(), "2".into()).unwrap();
    assert_eq!(cache.remove("a").as_deref(), Some("2"));
    for i in 0..10 {
        cache.insert(format!("k{i}"), "v".into()).unwrap();
    }
    let events = events.lock().unwrap();
    assert_eq!(events[0], ("a".into(), "1".into(), RemovalCause::Replaced));
    assert_eq!(events[1], ("a".into(), "2".into(), RemovalCause::Removed));
    assert!(
        events[2..].iter().all(|e| e.2 == RemovalCause::Evicted),
        "{events:?}"
    );
    assert!(events.len() >= 2 + 8, "{events:?}");
    assert_eq!(cache.stats().evictions as usize, events.len() - 2);
}

#[test]
fn stats_count_hits_and_misses() {
    let cache = LocalCache::<u64, u64>::builder()
        .max_entries(10)
        .build()
        .unwrap();
    cache.insert(1, 1).unwrap();
    for _ in 0..3 {
        cache.get(&1);
    }
    cache.get(&2);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (3, 1, 1));
}

fn cache_error(err: &pulse_core::Error) -> &CacheError {
    err.downcast_ref::<CacheError>()
        .expect("a CacheError source")
}

#[test]
fn bad_input_gets_typed_errors() {
    let zero = LocalCache::<u64, u64>::builder().max_entries(0).build();
    assert_eq!(zero.unwrap_err().kind(), ErrorKind::InvalidConfig);

    let no_capacity = LocalCache::<u64, u64>::builder().build();
    assert_eq!(no_capacity.unwrap_err().kind(), ErrorKind::InvalidConfig);

    let zero_ttl = LocalCache::<u64, u64>::builder()
        .max_entries(1)
        .ttl(Duration::ZERO)
        .build();
    let err = zero_ttl.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("ttl"), "{err}");

    let weighted = LocalCache::<String, String>::builder()
        .max_weight(10)
        .weigher(|_k, v: &String| v.len() as u64)
        .build()
        .unwrap();
    let err = weighted.insert("big".into(), "x".repeat(11)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(matches!(
        cache_error(&err),
        CacheError::TooHeavy {
            weight: 11,
            capacity: 10
        }
    ));
    assert_eq!(weighted.entry_count(), 0);

    let err = weighted
        .insert_with_ttl("k".into(), "v".into(), Duration::ZERO)
        .unwrap_err();
    assert!(matches!(cache_error(&err), CacheError::ZeroTtl { .. }));
}

#[test]
fn blocking_loader_runs_once_and_retries_after_failure() {
    let cache = LocalCache::<u64, u64>::builder()
        .max_entries(10)
        .build()
        .unwrap();
    let err = cache
        .get_or_insert_with(1, || Err(pulse_core::Error::new(ErrorKind::Other, "boom")))
        .unwrap_err();
    assert_eq!(err.message(), "boom");
    assert_eq!(cache.get_or_insert_with(1, || Ok(5)).unwrap(), 5);
    assert_eq!(cache.get_or_insert_with(1, || Ok(6)).unwrap(), 5);
}

#[test]
fn memory_per_entry_is_bounded() {
    let cache = LocalCache::<u64, u64>::builder()
        .max_entries(100_000)
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    for i in 0..100_000 {
        cache.insert(i, i).unwrap();
    }
    let per_entry = cache.memory_used() as f64 / cache.entry_count() as f64;
    eprintln!("memory per u64 -> u64 entry: {per_entry:.1} bytes");
    // Key, value and expiry data take 40 bytes; the tables add their share.
    assert!(per_entry < 128.0, "{per_entry} bytes per entry");
}
