//! UUIDv7 generation, monotonic across all threads of a process.

use pulse_core::clock::{Clock, FastClock};
use pulse_core::id::IdGenerator;
use rand::RngCore;
use uuid::Uuid;

use crate::monotonic::{Advance, COUNTER_BITS, MonotonicState};

/// Counter bits that sit in the top of `rand_b`, below the 12 of `rand_a`.
const COUNTER_IN_RAND_B: u32 = COUNTER_BITS - 12;
const RANDOM_TAIL_BITS: u32 = 62 - COUNTER_IN_RAND_B;

/// A UUIDv7 generator whose IDs strictly increase across every thread that
/// shares it.
///
/// # Layout
///
/// RFC 9562 section 5.7 with the fixed-length dedicated counter of section
/// 6.2 (method 1):
///
/// | bits | field | content |
/// | --- | --- | --- |
/// | 48 | `unix_ts_ms` | milliseconds since the Unix epoch |
/// | 4 | `ver` | 7 |
/// | 12 | `rand_a` | counter, high 12 bits |
/// | 2 | `var` | `0b10` |
/// | 10 | `rand_b` (top) | counter, low 10 bits |
/// | 52 | `rand_b` (rest) | random, fresh for every UUID |
///
/// The 22-bit counter starts each millisecond at a random value below 2^21
/// (the top bit is a guard against rollover, as section 6.2 suggests) and
/// goes up by one per UUID. If it runs over, it carries into the
/// timestamp, so the UUID takes the next millisecond and still sorts higher:
/// section 6.2 allows the timestamp to run ahead of the clock this way. A
/// wall clock that steps back is handled the same way: the generator goes
/// on from its last millisecond and counter.
///
/// # Guarantees and cost
///
/// - UUIDs from one generator strictly increase (as `Uuid`, as bytes, and as
///   their text form) in the order the calls took effect, from any thread.
/// - Lock-free: one clock reading, one compare-and-swap on a single
///   `AtomicU64`, and 64 bits from the thread-local `rand` generator
///   (a ChaCha-based CSPRNG) per UUID.
/// - Timestamps hold Unix milliseconds up to the year 2109.
///
/// # Examples
///
/// ```
/// use pulse_id::MonotonicUuidV7;
///
/// let ids = MonotonicUuidV7::new();
/// let first = ids.next_uuid();
/// let second = ids.next_uuid();
/// assert!(second > first);
/// assert_eq!(first.get_version_num(), 7);
/// ```
#[derive(Debug)]
pub struct MonotonicUuidV7<C: Clock = FastClock> {
    clock: C,
    state: MonotonicState,
}

impl MonotonicUuidV7<FastClock> {
    /// Creates a generator on the cheap clock.
    pub fn new() -> Self {
        Self::with_clock(FastClock::new())
    }
}

impl Default for MonotonicUuidV7<FastClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> MonotonicUuidV7<C> {
    /// Creates a generator that reads time from `clock`.
    pub fn with_clock(clock: C) -> Self {
        MonotonicUuidV7 {
            clock,
            state: MonotonicState::default(),
        }
    }

    /// Issues the next UUID. It never fails and never waits.
    #[inline]
    pub fn next_uuid(&self) -> Uuid {
        let now_ms = self.clock.wall().as_millis();
        let seed = || rand::rng().next_u64() >> (64 - (COUNTER_BITS - 1));
        let (ms, counter) = match self.state.advance(now_ms, true, seed) {
            Advance::Issued { ms, counter } => (ms, counter),
            // Carrying is allowed, so the counter is never exhausted.
            Advance::Exhausted { ms } => (ms + 1, 0),
        };
        compose(ms, counter, rand::rng().next_u64())
    }
}

/// Builds the UUID bits from a millisecond, a 22-bit counter and random bits.
#[inline]
fn compose(ms: u64, counter: u64, random: u64) -> Uuid {
    let rand_a = counter >> COUNTER_IN_RAND_B;
    let counter_low = counter & ((1 << COUNTER_IN_RAND_B) - 1);
    let tail = random & ((1 << RANDOM_TAIL_BITS) - 1);
    let rand_b = (counter_low << RANDOM_TAIL_BITS) | tail;

    let high = ((ms & 0xFFFF_FFFF_FFFF) << 16) | (0x7 << 12) | rand_a;
    let low = (0b10 << 62) | rand_b;
    Uuid::from_u64_pair(high, low)
}

impl<C: Clock> IdGenerator for MonotonicUuidV7<C> {
    type Id = Uuid;

    #[inline]
    fn next_id(&self) -> pulse_core::Result<Uuid> {
        Ok(self.next_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monotonic::COUNTER_MAX;
    use pulse_core::clock::ManualClock;
    use std::time::Duration;

    #[test]
    fn fields_follow_rfc_9562() {
        let uuid = compose(0x0123_4567_89AB, 0x3F_FFFF, u64::MAX);
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        let (seconds, nanos) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!(
            seconds * 1000 + u64::from(nanos) / 1_000_000,
            0x0123_4567_89AB
        );
    }

    #[test]
    fn counter_carry_sorts_higher() {
        let clock = ManualClock::new();
        let ids = MonotonicUuidV7::with_clock(clock.clone());
        let ms = clock.wall().as_millis();
        ids.state.set(ms, COUNTER_MAX);
        let before = compose(ms, COUNTER_MAX, u64::MAX);
        let after = ids.next_uuid();
        assert!(after > before);
        let (seconds, nanos) = after.get_timestamp().unwrap().to_unix();
        assert_eq!(seconds * 1000 + u64::from(nanos) / 1_000_000, ms + 1);
    }

    #[test]
    fn clock_step_back_keeps_order() {
        let clock = ManualClock::new();
        let ids = MonotonicUuidV7::with_clock(clock.clone());
        let first = ids.next_uuid();
        clock.step_wall_back(Duration::from_secs(60));
        let second = ids.next_uuid();
        assert!(second > first);
    }
}
