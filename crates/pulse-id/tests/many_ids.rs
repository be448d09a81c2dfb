//! Millions of IDs from several threads: unique, and increasing in each
//! thread's order.

use std::sync::Arc;

use pulse_id::{Layout, MonotonicUlid, MonotonicUuidV7, Snowflake};

const THREADS: usize = 4;

/// Runs `per_thread` calls of `next` on each of several threads and returns
/// each thread's IDs in call order.
fn collect<T: Send + 'static>(
    per_thread: usize,
    next: impl Fn() -> T + Send + Sync + 'static,
) -> Vec<Vec<T>> {
    let next = Arc::new(next);
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let next = Arc::clone(&next);
            std::thread::spawn(move || (0..per_thread).map(|_| next()).collect::<Vec<T>>())
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn assert_increasing_and_unique<T: Ord + Copy + std::fmt::Debug>(
    per_thread: Vec<Vec<T>>,
    total: usize,
) {
    for ids in &per_thread {
        for pair in ids.windows(2) {
            assert!(
                pair[0] < pair[1],
                "{:?} then {:?} in one thread",
                pair[0],
                pair[1]
            );
        }
    }
    let mut all: Vec<T> = per_thread.into_iter().flatten().collect();
    assert_eq!(all.len(), total);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total, "duplicate IDs");
}

#[test]
fn snowflake_10m_ids_four_threads() {
    // The Twitter layout issues at most 4096 IDs per ms, so this takes at
    // least 2.5 s of wall time.
    let total = 10_000_000;
    let ids = Snowflake::builder(Layout::twitter())
        .worker_id(1)
        .build()
        .unwrap();
    let per_thread = collect(total / THREADS, move || ids.next_id().unwrap());
    assert_increasing_and_unique(per_thread, total);
}

#[test]
fn uuid_v7_2m_ids_four_threads() {
    let total = 2_000_000;
    let ids = MonotonicUuidV7::new();
    let per_thread = collect(total / THREADS, move || ids.next_uuid());
    assert_increasing_and_unique(per_thread, total);
}

#[test]
fn ulid_2m_ids_four_threads() {
    let total = 2_000_000;
    let ids = MonotonicUlid::new();
    let per_thread = collect(total / THREADS, move || {
        loop {
            // A 4M-per-ms overflow cannot happen at this rate, but retry anyway.
            if let Ok(ulid) = ids.next_ulid() {
                break ulid;
            }
        }
    });
    assert_increasing_and_unique(per_thread, total);
}
