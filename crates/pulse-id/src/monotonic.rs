//! The shared state of the UUIDv7 and ULID generators: a millisecond and a
//! counter in one atomic word.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counter bits below the millisecond in the state word. 22 bits give
/// 4,194,304 IDs per millisecond; the 42 bits above hold Unix milliseconds
/// up to the year 2109.
pub(crate) const COUNTER_BITS: u32 = 22;
pub(crate) const COUNTER_MAX: u64 = (1 << COUNTER_BITS) - 1;

/// The largest Unix millisecond the state word holds.
pub(crate) const MAX_MS: u64 = (1 << (64 - COUNTER_BITS)) - 1;

/// `(unix_ms << 22) | counter`, advanced by compare-and-swap.
///
/// The word only grows: a new millisecond replaces it when the clock is
/// ahead, and otherwise the counter goes up by one. Because the counter sits
/// below the millisecond, a counter that runs over carries into the next
/// millisecond, which still sorts higher.
#[derive(Debug, Default)]
pub(crate) struct MonotonicState {
    word: AtomicU64,
}

/// The outcome of [`MonotonicState::advance`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Advance {
    /// The millisecond and counter the ID uses.
    Issued { ms: u64, counter: u64 },
    /// The counter of `ms` is used up and carrying was not allowed.
    Exhausted { ms: u64 },
}

impl MonotonicState {
    /// Takes the next (millisecond, counter) pair for a clock reading of
    /// `now_ms`. `seed` gives the first counter of a new millisecond; it is
    /// called at most once per attempt.
    #[inline]
    pub(crate) fn advance(&self, now_ms: u64, carry: bool, seed: impl Fn() -> u64) -> Advance {
        let fresh = now_ms.min(MAX_MS) << COUNTER_BITS;
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let next = if fresh > current {
                fresh | (seed() & COUNTER_MAX)
            } else if current & COUNTER_MAX == COUNTER_MAX && !carry {
                return Advance::Exhausted {
                    ms: current >> COUNTER_BITS,
                };
            } else {
                current + 1
            };

            match self.word.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Advance::Issued {
                        ms: next >> COUNTER_BITS,
                        counter: next & COUNTER_MAX,
                    };
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Sets the state as if `(ms, counter)` had just been issued, for tests
    /// of the edge cases.
    #[cfg(test)]
    pub(crate) fn set(&self, ms: u64, counter: u64) {
        self.word.store(
            (ms << COUNTER_BITS) | (counter & COUNTER_MAX),
            Ordering::Release,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_millisecond_takes_seed() {
        let state = MonotonicState::default();
        assert_eq!(
            state.advance(10, false, || 5),
            Advance::Issued { ms: 10, counter: 5 }
        );
        assert_eq!(
            state.advance(10, false, || 0),
            Advance::Issued { ms: 10, counter: 6 }
        );
    }

    #[test]
    fn clock_behind_continues_counter() {
        let state = MonotonicState::default();
        state.advance(10, false, || 0);
        assert_eq!(
            state.advance(3, false, || 0),
            Advance::Issued { ms: 10, counter: 1 }
        );
    }

    #[test]
    fn exhausted_counter_errors_or_carries() {
        let state = MonotonicState::default();
        state.set(10, COUNTER_MAX);
        assert_eq!(
            state.advance(10, false, || 0),
            Advance::Exhausted { ms: 10 }
        );
        assert_eq!(
            state.advance(10, true, || 0),
            Advance::Issued { ms: 11, counter: 0 }
        );
    }
}
