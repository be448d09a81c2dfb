//! The lock conformance suite on the in-process backend.

use std::sync::Arc;
use std::time::Duration;

use pulse_core::clock::SystemClock;
use pulse_lock::{LeaseOptions, MemoryLock};
use pulse_testkit::suites::lock::{LockSetup, run_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_lock_passes_suite() {
    let clock = SystemClock::new();
    let lock = MemoryLock::with_options(
        LeaseOptions::new()
            .clock(clock)
            .drift_margin(Duration::from_millis(20)),
    );
    let setup = LockSetup::new(
        "memory",
        Arc::new(lock),
        Arc::new(clock),
        pulse_testkit::unique_prefix("lock"),
    );
    let report = run_all(&setup).await;
    assert!(report.skipped.is_empty(), "{report:?}");
}
