//! Lock-free sliding windows of call outcomes.
//!
//! Both windows are updated with a few atomic operations and no lock. Under
//! concurrent updates the totals can lag by the calls in flight, which only
//! shifts the moment a threshold is crossed by those few calls.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use pulse_core::clock::MonoTime;

use super::config::SlidingWindow;

/// Outcome bits stored per call in the count-based window.
pub(crate) const RECORDED: u8 = 1;
pub(crate) const FAILED: u8 = 2;
pub(crate) const SLOW: u8 = 4;

/// Totals over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(config: SlidingWindow) -> Window {
        match config {
            SlidingWindow::CountBased(size) => Window::Count(CountWindow::new(size)),
            SlidingWindow::TimeBased(seconds) => Window::Time(TimeWindow::new(seconds)),
        }
    }

    /// Returns whether recording needs the current time.
    pub(crate) fn needs_time(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    /// Records one outcome (bits above) and returns the totals after it.
    #[inline]
    pub(crate) fn record(&self, outcome: u8, now: MonoTime) -> Totals {
        match self {
            Window::Count(window) => window.record(outcome),
            Window::Time(window) => window.record(outcome, now),
        }
    }

    pub(crate) fn totals(&self, now: MonoTime) -> Totals {
        match self {
            Window::Count(window) => window.totals(),
            Window::Time(window) => window.totals(now),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Window::Count(window) => window.reset(),
            Window::Time(window) => window.reset(),
        }
    }
}

/// The last `size` outcomes in a ring, with running totals.
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    size: u32,
    /// Lemire's fast-modulo constant for `size`, so that picking a slot
    /// needs no division.
    modulo_magic: u64,
    next: AtomicU64,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl CountWindow {
    fn new(size: u32) -> CountWindow {
        CountWindow {
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
            size,
            modulo_magic: (u64::MAX / u64::from(size)).wrapping_add(1),
            next: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            slow: AtomicU32::new(0),
        }
    }

    #[inline]
    fn slot_of(&self, index: u64) -> usize {
        let low = self.modulo_magic.wrapping_mul(u64::from(index as u32));
        ((u128::from(low) * u128::from(self.size)) >> 64) as usize
    }

    #[inline]
    fn record(&self, outcome: u8) -> Totals {
        let index = self.next.fetch_add(1, Relaxed);

        // The index wraps at 2^32 for the slot choice; the ring then restarts
        // at slot 0 once, which only replaces a few outcomes early.
        let slot = &self.slots[self.slot_of(index)];

        // In a steady state most slots already hold the new outcome, and
        // reading first spares the write. Only the swap decides the
        // counters, so they always match the slots.
        let mut old = slot.load(Relaxed);
        if old != outcome {
            old = slot.swap(outcome, Relaxed);
        }

        let failures = adjust(&self.failures, old & FAILED != 0, outcome & FAILED != 0);
        let slow = adjust(&self.slow, old & SLOW != 0, outcome & SLOW != 0);
        Totals {
            calls: (index + 1).min(u64::from(self.size)),
            failures,
            slow,
        }
    }

    fn totals(&self) -> Totals {
        Totals {
            calls: self.next.load(Relaxed).min(u64::from(self.size)),
            failures: u64::from(self.failures.load(Relaxed)),
            slow: u64::from(self.slow.load(Relaxed)),
        }
    }

    fn reset(&self) {
        for slot in self.slots.iter() {
            slot.store(0, Relaxed);
        }
        self.next.store(0, Relaxed);
        self.failures.store(0, Relaxed);
        self.slow.store(0, Relaxed);
    }
}

/// Moves a counter by the change of one slot's flag and returns its new
/// value. A slot whose flag stays the same writes nothing.
#[inline]
fn adjust(counter: &AtomicU32, was: bool, is: bool) -> u64 {
    let value = match (was, is) {
        (false, true) => counter.fetch_add(1, Relaxed).wrapping_add(1),
        (true, false) => counter.fetch_sub(1, Relaxed).wrapping_sub(1),
        _ => counter.load(Relaxed),
    };
    u64::from(value)
}

const SECOND_BITS: u32 = 20;
const COUNT_BITS: u32 = 22;
const SECOND_MASK: u64 = (1 << SECOND_BITS) - 1;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// One-second buckets, each one word: the second it belongs to (20 bits),
/// then two 22-bit counters. A bucket from an older second is reset by the
/// first call that lands in it.
pub(crate) struct TimeWindow {
    /// Calls and failures.
    calls: Box<[AtomicU64]>,
    /// Slow calls (the second counter is unused).
    slow: Box<[AtomicU64]>,
    seconds: u32,
}

impl TimeWindow {
    fn new(seconds: u32) -> TimeWindow {
        TimeWindow {
            calls: (0..seconds).map(|_| AtomicU64::new(0)).collect(),
            slow: (0..seconds).map(|_| AtomicU64::new(0)).collect(),
            seconds,
        }
    }

    fn record(&self, outcome: u8, now: MonoTime) -> Totals {
        let second = now.as_nanos() / NANOS_PER_SECOND;
        let bucket = (second % u64::from(self.seconds)) as usize;

        let stamp = stamp_of(second);
        add(
            &self.calls[bucket],
            stamp,
            1,
            u64::from(outcome & FAILED != 0),
        );
        if outcome & SLOW != 0 {
            add(&self.slow[bucket], stamp, 1, 0);
        }
        self.totals(now)
    }

    fn totals(&self, now: MonoTime) -> Totals {
        let second = now.as_nanos() / NANOS_PER_SECOND;
        let mut totals = Totals::default();
        for (calls, slow) in self.calls.iter().zip(self.slow.iter()) {
            let (stamp, count, failures) = unpack(calls.load(Relaxed));
            if count > 0 && self.is_current(stamp, second) {
                totals.calls += count;
                totals.failures += failures;
            }
            let (stamp, count, _) = unpack(slow.load(Relaxed));
            if count > 0 && self.is_current(stamp, second) {
                totals.slow += count;
            }
        }
        totals
    }

    /// Returns whether a bucket stamped `stamp` belongs to the window that
    /// ends at `second`. An unused bucket contains zero calls, so its stamp is
    /// never consulted.
    fn is_current(&self, stamp: u64, second: u64) -> bool {
        (stamp_of(second).wrapping_sub(stamp) & SECOND_MASK) < u64::from(self.seconds)
    }

    fn reset(&self) {
        for bucket in self.calls.iter().chain(self.slow.iter()) {
            bucket.store(0, Relaxed);
        }
    }
}

/// Returns the 20-bit stamp of a second. Stamps repeat every 2^20 seconds (about 12
/// days), far longer than the largest window.
fn stamp_of(second: u64) -> u64 {
    second & SECOND_MASK
}

fn unpack(word: u64) -> (u64, u64, u64) {
    let stamp = word >> (2 * COUNT_BITS);
    let first = (word >> COUNT_BITS) & COUNT_MASK;
    let second = word & COUNT_MASK;
    (stamp, first, second)
}

/// Adds to a bucket's two counters, starting it afresh when it belongs to an older second. Counters saturate at 2^22 - 1 calls per second.
fn add(bucket: &AtomicU64, stamp: u64, first: u64, second: u64) {
    let mut current = bucket.load(Relaxed);
    loop {
        let (old_stamp, old_first, old_second) = unpack(current);
        let (base_first, base_second) = if old_stamp == stamp {
            (old_first, old_second)
        } else {
            (0, 0)
        };
        let next = stamp << (2 * COUNT_BITS)
            | (base_first + first).min(COUNT_MASK) << COUNT_BITS
            | (base_second + second).min(COUNT_MASK);
        match bucket.compare_exchange_weak(current, next, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn count_window_keeps_last_calls() {
        let window = CountWindow::new(3);
        window.record(RECORDED | FAILED);
        window.record(RECORDED);
        let totals = window.record(RECORDED | FAILED);
        assert_eq!(
            totals,
            Totals {
                calls: 3,
                failures: 2,
                slow: 0
            }
        );

        // The first failure drops out of the window.
        let totals = window.record(RECORDED);
        assert_eq!(
            totals,
            Totals {
                calls: 3,
                failures: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn count_window_slot_choice_matches_modulo() {
        for size in [1u32, 2, 3, 7, 100, 1000] {
            let window = CountWindow::new(size);
            for index in [0u64, 1, 99, 1000, u64::from(u32::MAX)] {
                assert_eq!(window.slot_of(index), (index as u32 % size) as usize);
            }
        }
    }

    #[test]
    fn time_window_forgets_old_seconds() {
        let window = TimeWindow::new(2);
        let start = MonoTime::from_nanos(5 * NANOS_PER_SECOND);
        window.record(RECORDED | FAILED, start);
        let later = start.saturating_add(Duration::from_secs(1));
        let totals = window.record(RECORDED | SLOW, later);
        assert_eq!(
            totals,
            Totals {
                calls: 2,
                failures: 1,
                slow: 1
            }
        );

        // Two seconds on, the first bucket has left the window.
        let totals = window.totals(start.saturating_add(Duration::from_secs(2)));
        assert_eq!(
            totals,
            Totals {
                calls: 1,
                failures: 0,
                slow: 1
            }
        );
        let totals = window.totals(start.saturating_add(Duration::from_secs(10)));
        assert_eq!(totals, Totals::default());
    }
}
