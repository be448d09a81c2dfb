//! The closed-path call of a circuit breaker allocates nothing.
//!
//! A counting global allocator lives in this test binary alone; it counts
//! only on the thread that turned counting on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;

use pulse_conc::breaker::{CircuitBreaker, SlidingWindow};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with` because the thread-local may already be gone while a
        // thread exits.
        let _ = COUNTING.try_with(|counting| {
            if counting.get() {
                ALLOCATIONS.with(|count| count.set(count.get() + 1));
            }
        });
        // SAFETY: forwards the caller's layout unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn closed_path_allocates_nothing() {
    let breaker = CircuitBreaker::builder("alloc")
        .sliding_window(SlidingWindow::CountBased(100))
        .build()
        .unwrap();

    // Warm up once, then count.
    breaker.call_sync(|| Ok::<_, io::Error>(())).unwrap();
    COUNTING.with(|counting| counting.set(true));
    for _ in 0..10_000 {
        breaker.call_sync(|| Ok::<_, io::Error>(())).unwrap();
        let permit = breaker.try_acquire().unwrap();
        permit.record_success();
    }
    COUNTING.with(|counting| counting.set(false));

    assert_eq!(ALLOCATIONS.with(Cell::get), 0);
}
