//! Allowed and rejected decisions reach the `metrics` recorder, labelled
//! with the limiter's name.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use pulse_core::clock::ManualClock;
use pulse_ratelimit::{Gcra, KeyedGcra, Quota};

#[derive(Default)]
struct Counts {
    by_key: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

struct Cell(Arc<AtomicU64>);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// Counts by `name{limiter}`; other metric kinds are ignored.
struct TestRecorder(Arc<Counts>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let limiter = key
            .labels()
            .find(|label| label.key() == "limiter")
            .map_or(String::new(), |label| label.value().to_owned());
        let name = format!("{}{{{limiter}}}", key.name());
        let cell = self
            .0
            .by_key
            .lock()
            .unwrap()
            .entry(name)
            .or_default()
            .clone();
        Counter::from_arc(Arc::new(Cell(cell)))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn count(counts: &Counts, name: &str) -> u64 {
    counts
        .by_key
        .lock()
        .unwrap()
        .get(name)
        .map_or(0, |cell| cell.load(Ordering::Relaxed))
}

#[test]
fn decisions_are_counted_per_limiter() {
    let counts = Arc::new(Counts::default());
    let recorder = TestRecorder(counts.clone());
    let quota = Quota::per_second(2).unwrap();
    let (direct, keyed) = metrics::with_local_recorder(&recorder, || {
        let direct = Gcra::with_clock(quota, ManualClock::new()).with_metrics("login");
        let keyed = KeyedGcra::<String>::builder(quota)
            .clock(ManualClock::new())
            .metrics("api")
            .build()
            .unwrap();
        (direct, keyed)
    });

    for _ in 0..3 {
        direct.check();
        keyed.check("tenant");
    }
    assert_eq!(count(&counts, "pulse_ratelimit_allowed_total{login}"), 2);
    assert_eq!(count(&counts, "pulse_ratelimit_rejected_total{login}"), 1);
    assert_eq!(count(&counts, "pulse_ratelimit_allowed_total{api}"), 2);
    assert_eq!(count(&counts, "pulse_ratelimit_rejected_total{api}"), 1);
}
