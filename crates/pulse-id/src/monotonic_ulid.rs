//! ULID generation, monotonic and shared across threads.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use pulse_core::clock::{Clock, FastClock};
use pulse_core::id::IdGenerator;
use ulid::Ulid;

use crate::error::{IdError, Result};
use crate::monotonic::{Advance, MonotonicState};

/// The random part of a millisecond's first ULID stays below 2^79, so adding
/// a 22-bit counter never wraps the 80-bit field.
const RANDOM_BASE_MASK: u128 = (1 << 79) - 1;

/// The behaviour of a [`MonotonicUlid`] when one millisecond's IDs are used up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UlidOverflow {
    /// Return [`IdError::UlidOverflow`] and keep the millisecond: the caller
    /// retries once the clock reaches the next one. The default, as the ULID
    /// specification asks.
    #[default]
    Error,
    /// Carry into the next millisecond: the ULID takes a timestamp one
    /// millisecond ahead of the clock and still sorts higher.
    Carry,
}

/// Tells generators apart in the per-thread cache.
static NEXT_GENERATOR: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The random base of the last millisecond this thread used:
    /// (generator, millisecond, base).
    static BASE_CACHE: Cell<(u64, u64, u128)> = const { Cell::new((0, 0, 0)) };
}

/// A ULID generator that is monotonic across every thread sharing it.
///
/// # How it works
///
/// ULIDs are 48 bits of Unix milliseconds and 80 random bits. Within one
/// millisecond the random part of each ULID is the previous one plus one, as
/// the ULID specification's monotonic mode says. The generator keeps only a
/// millisecond and a 22-bit counter in one `AtomicU64`, advanced by
/// compare-and-swap, and derives the random part as `base(ms) + counter`,
/// where `base(ms)` is a 79-bit keyed SipHash-1-3 of the millisecond under a
/// key the operating system's random source gives each generator. Every
/// thread therefore computes the same base for a millisecond without
/// sharing it, and each thread caches the base of its last millisecond.
///
/// # Guarantees and cost
///
/// - ULIDs from one generator strictly increase in the order the calls took
///   effect, from any thread.
/// - One millisecond holds 4,194,304 ULIDs. The next call in that
///   millisecond returns [`IdError::UlidOverflow`] and keeps the timestamp,
///   unless [`UlidOverflow::Carry`] is set. The base stays below 2^79, so
///   the 80-bit random field itself never wraps.
/// - A wall clock that steps back is ridden out: the generator goes on from
///   its last millisecond.
/// - Lock-free: one clock reading, one compare-and-swap, and two SipHash
///   computations per thread per millisecond.
/// - The random part is unpredictable only as far as SipHash with a secret
///   key is: do not use ULIDs as secrets. ULIDs of one millisecond are
///   consecutive numbers, as in every monotonic ULID generator.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use pulse_id::MonotonicUlid;
///
/// let ids = Arc::new(MonotonicUlid::new());
/// let other = Arc::clone(&ids);
/// let from_thread = std::thread::spawn(move || other.next_ulid().unwrap()).join().unwrap();
/// let here = ids.next_ulid().unwrap();
/// assert!(here > from_thread);
/// ```
#[derive(Debug)]
pub struct MonotonicUlid<C: Clock = FastClock> {
    clock: C,
    state: MonotonicState,
    key: RandomState,
    id: u64,
    overflow: UlidOverflow,
}

impl MonotonicUlid<FastClock> {
    /// Creates a generator on the cheap clock that reports overflow as an
    /// error.
    pub fn new() -> Self {
        Self::with_clock(FastClock::new())
    }
}

impl Default for MonotonicUlid<FastClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> MonotonicUlid<C> {
    /// Creates a generator that reads time from `clock`.
    pub fn with_clock(clock: C) -> Self {
        MonotonicUlid {
            clock,
            state: MonotonicState::default(),
            key: RandomState::new(),
            id: NEXT_GENERATOR.fetch_add(1, Ordering::Relaxed),
            overflow: UlidOverflow::Error,
        }
    }

    /// Sets what happens when one millisecond's ULIDs are used up.
    pub fn with_overflow(mut self, overflow: UlidOverflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Issues the next ULID. It never waits; it fails only with
    /// [`IdError::UlidOverflow`], and only under [`UlidOverflow::Error`].
    #[inline]
    pub fn next_ulid(&self) -> Result<Ulid> {
        let now_ms = self.clock.wall().as_millis();
        let carry = self.overflow == UlidOverflow::Carry;
        match self.state.advance(now_ms, carry, || 0) {
            Advance::Issued { ms, counter } => {
                let random = self.base(ms) + u128::from(counter);
                Ok(Ulid::from_parts(ms, random))
            }
            Advance::Exhausted { ms } => Err(IdError::UlidOverflow { timestamp_ms: ms }),
        }
    }

    /// Returns the random part of the first ULID of millisecond `ms`.
    #[inline]
    fn base(&self, ms: u64) -> u128 {
        BASE_CACHE.with(|cache| {
            let (generator, cached_ms, base) = cache.get();
            if generator == self.id && cached_ms == ms {
                return base;
            }
            let high = u128::from(self.key.hash_one((ms, 0u8)));
            let low = u128::from(self.key.hash_one((ms, 1u8)));
            let base = ((high << 64) | low) & RANDOM_BASE_MASK;
            cache.set((self.id, ms, base));
            base
        })
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &MonotonicState {
        &self.state
    }
}

impl<C: Clock> IdGenerator for MonotonicUlid<C> {
    type Id = Ulid;

    #[inline]
    fn next_id(&self) -> pulse_core::Result<Ulid> {
        self.next_ulid().map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monotonic::COUNTER_MAX;
    use pulse_core::clock::ManualClock;
    use pulse_core::error::ErrorKind;
    use std::time::Duration;

    #[test]
    fn same_millisecond_increments_by_one() {
        let clock = ManualClock::new();
        let ids = MonotonicUlid::with_clock(clock.clone());
        let first = ids.next_ulid().unwrap();
        let second = ids.next_ulid().unwrap();
        assert_eq!(first.timestamp_ms(), clock.wall().as_millis());
        assert_eq!(second.timestamp_ms(), first.timestamp_ms());
        assert_eq!(second.random(), first.random() + 1);
    }

    #[test]
    fn overflow_errors_and_keeps_timestamp() {
        let clock = ManualClock::new();
        let ids = MonotonicUlid::with_clock(clock.clone());
        let ms = clock.wall().as_millis();
        ids.state().set(ms, COUNTER_MAX - 1);

        let largest = ids.next_ulid().unwrap();
        assert_eq!(largest.timestamp_ms(), ms);

        let err = ids.next_ulid().unwrap_err();
        assert!(matches!(err, IdError::UlidOverflow { timestamp_ms } if timestamp_ms == ms));
        assert_eq!(err.kind(), ErrorKind::WouldBlock);

        // The failed call moved nothing: the next millisecond starts fresh.
        clock.advance(Duration::from_millis(1));
        let next = ids.next_ulid().unwrap();
        assert_eq!(next.timestamp_ms(), ms + 1);
        assert!(next > largest);
    }

    #[test]
    fn overflow_carry_moves_to_next_millisecond() {
        let clock = ManualClock::new();
        let ids = MonotonicUlid::with_clock(clock.clone()).with_overflow(UlidOverflow::Carry);
        let ms = clock.wall().as_millis();
        ids.state().set(ms, COUNTER_MAX - 1);
        let largest = ids.next_ulid().unwrap();
        let carried = ids.next_ulid().unwrap();
        assert_eq!(carried.timestamp_ms(), ms + 1);
        assert!(carried > largest);

        // When the clock reaches that millisecond, IDs go on from the carry.
        clock.advance(Duration::from_millis(1));
        let next = ids.next_ulid().unwrap();
        assert_eq!(next.timestamp_ms(), ms + 1);
        assert_eq!(next.random(), carried.random() + 1);
    }

    #[test]
    fn generators_have_independent_bases() {
        let clock = ManualClock::new();
        let one = MonotonicUlid::with_clock(clock.clone());
        let two = MonotonicUlid::with_clock(clock.clone());
        assert_ne!(one.next_ulid().unwrap(), two.next_ulid().unwrap());
    }
}
