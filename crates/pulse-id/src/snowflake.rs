//! The Snowflake generator: 64-bit IDs made of a timestamp, a worker id and
//! a sequence, issued lock-free from one atomic word.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pulse_core::clock::{Clock, CoarseClock, WallTime};
use pulse_core::error::ConfigError;
use pulse_core::id::IdGenerator;

use crate::error::{IdError, Result};
use crate::layout::Layout;

/// The policy of a [`Snowflake`] for a wall clock that is behind its last
/// issued timestamp by more than the tolerance.
///
/// A step back within the tolerance is always waited out: the generator
/// keeps issuing in its last tick while that tick's sequence lasts, then
/// waits until the clock passes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClockPolicy {
    /// Return [`IdError::ClockMovedBack`] until the clock is back within the
    /// tolerance. The default.
    #[default]
    Fail,
    /// Keep issuing from the last timestamp as a logical clock: the sequence
    /// goes on, and when it runs out the timestamp moves one tick ahead of
    /// the last one, ahead of the wall clock. IDs then carry timestamps later
    /// than the real time until the clock catches up.
    ContinueFromLast,
}

/// Bits of the lease word that hold the last tick a lease allows, exclusive.
const UNTIL_BITS: u32 = 48;
const UNTIL_MASK: u64 = (1 << UNTIL_BITS) - 1;

/// A lock-free Snowflake ID generator.
///
/// # Guarantees
///
/// - IDs from one generator strictly increase in the order their calls
///   took effect and are never repeated, whatever the wall clock does and
///   from any number of threads.
/// - The whole state, the last tick and its sequence, is one `AtomicU64`
///   updated by compare-and-swap: no lock, no allocation.
/// - When a tick's sequence is used up, [`next_id`](Snowflake::next_id)
///   waits for the next tick and [`try_next_id`](Snowflake::try_next_id)
///   returns [`IdError::WouldBlock`]. A used-up tick is never reused.
/// - A wall clock that steps back by at most the tolerance (5 ms by default)
///   is waited out. A larger step returns [`IdError::ClockMovedBack`], or,
///   with [`ClockPolicy::ContinueFromLast`], issuing continues from the last
///   timestamp.
/// - Nothing is persisted. A process that restarts after a clock step back
///   passes the last timestamp it issued to
///   [`SnowflakeBuilder::last_issued`], and the new generator issues only
///   later timestamps.
///
/// Uniqueness across processes needs distinct worker ids, which
/// [`LeasedSnowflake`](crate::LeasedSnowflake) takes from a lease.
///
/// # Cost
///
/// One clock reading, two atomic loads and one compare-and-swap per call.
/// The default clock is the process-wide [`CoarseClock`]: its reading is
/// one atomic load of a value a background thread refreshes every
/// millisecond, where a [`FastClock`](pulse_core::clock::FastClock) read
/// costs 35–40 ns on machines on which `quanta` cannot use the time-stamp
/// counter. The coarse reading lags real time by up to a millisecond and
/// never steps back, so timestamps may trail the wall clock by that much;
/// the refresh lands on each wall millisecond, so a generator that uses up
/// a millisecond's sequence waits for the next refresh and skips no
/// millisecond unless the refresh thread is more than 1 ms late.
///
/// # Examples
///
/// ```
/// use pulse_id::{Layout, Snowflake};
///
/// let ids = Snowflake::builder(Layout::twitter()).worker_id(7).build().unwrap();
/// let first = ids.next_id().unwrap();
/// let second = ids.next_id().unwrap();
/// assert!(second > first);
/// assert_eq!(ids.layout().decode(first).worker_id, 7);
/// ```
#[derive(Debug)]
pub struct Snowflake<C: Clock = CoarseClock> {
    layout: Layout,
    clock: C,
    /// The last issued tick and sequence: `tick << sequence_bits | sequence`.
    state: AtomicU64,
    /// The worker id and the first tick the lease no longer covers:
    /// `worker_id << 48 | until_tick`. An `until_tick` of zero means no
    /// lease is held.
    lease: AtomicU64,
    tolerance_ms: u64,
    policy: ClockPolicy,
    /// The last tick for which a clock step back was logged.
    fault_logged: AtomicU64,
}

/// Configures a [`Snowflake`].
#[derive(Clone, Debug)]
pub struct SnowflakeBuilder<C: Clock = CoarseClock> {
    layout: Layout,
    clock: C,
    worker_id: u64,
    tolerance: Duration,
    policy: ClockPolicy,
    last_issued: Option<WallTime>,
}

/// A run of consecutive IDs from [`Snowflake::next_batch`]: same tick, same
/// worker, consecutive sequence numbers, so consecutive integers.
///
/// # Examples
///
/// ```
/// use pulse_id::{Layout, Snowflake};
///
/// let ids = Snowflake::builder(Layout::twitter()).build().unwrap();
/// let batch = ids.next_batch(100).unwrap();
/// assert!(batch.len() >= 1 && batch.len() <= 100);
/// let all: Vec<u64> = batch.collect();
/// assert!(all.windows(2).all(|pair| pair[1] == pair[0] + 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdBatch {
    next: u64,
    end: u64,
}

impl IdBatch {
    /// Returns the first ID of the run.
    pub fn first(&self) -> u64 {
        self.next
    }

    /// Returns how many IDs are left in the run.
    pub fn len(&self) -> usize {
        usize::try_from(self.end - self.next).unwrap_or(usize::MAX)
    }

    /// Returns whether the run is used up.
    pub fn is_empty(&self) -> bool {
        self.next == self.end
    }
}

impl Iterator for IdBatch {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.next == self.end {
            return None;
        }
        let id = self.next;
        self.next += 1;
        Some(id)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl ExactSizeIterator for IdBatch {}

/// The decision of one attempt at the shared state.
enum Step {
    Issue { tick: u64, sequence: u64 },
    WaitFor { tick: u64 },
}

impl Snowflake<CoarseClock> {
    /// Starts a builder for `layout` with the process-wide [`CoarseClock`].
    pub fn builder(layout: Layout) -> SnowflakeBuilder<CoarseClock> {
        SnowflakeBuilder::new(layout, CoarseClock::shared())
    }
}

impl<C: Clock> SnowflakeBuilder<C> {
    /// Starts a builder for `layout` that reads time from `clock`.
    pub fn new(layout: Layout, clock: C) -> Self {
        SnowflakeBuilder {
            layout,
            clock,
            worker_id: 0,
            tolerance: Duration::from_millis(5),
            policy: ClockPolicy::Fail,
            last_issued: None,
        }
    }

    /// Replaces the clock.
    pub fn clock<D: Clock>(self, clock: D) -> SnowflakeBuilder<D> {
        SnowflakeBuilder {
            layout: self.layout,
            clock,
            worker_id: self.worker_id,
            tolerance: self.tolerance,
            policy: self.policy,
            last_issued: self.last_issued,
        }
    }

    /// Sets a fixed worker id (default 0). For ids taken from a lease, use
    /// [`LeasedSnowflake`](crate::LeasedSnowflake) instead.
    pub fn worker_id(mut self, worker_id: u64) -> Self {
        self.worker_id = worker_id;
        self
    }

    /// Sets how far the clock may step back and be waited out (default
    /// 5 ms).
    pub fn clock_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Sets what happens on a larger step back (default
    /// [`ClockPolicy::Fail`]).
    pub fn clock_policy(mut self, policy: ClockPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the last timestamp a previous run issued: the generator issues
    /// only later ticks.
    pub fn last_issued(mut self, timestamp: WallTime) -> Self {
        self.last_issued = Some(timestamp);
        self
    }

    /// Checks the settings and creates the generator.
    pub fn build(self) -> Result<Snowflake<C>> {
        let layout = self.layout;
        if self.worker_id > layout.max_worker_id() {
            return Err(ConfigError::new(
                "worker_id",
                self.worker_id,
                format!(
                    "use a worker id from 0 to {} for {} worker bits",
                    layout.max_worker_id(),
                    layout.worker_bits()
                ),
            )
            .into());
        }
        let tolerance_ms = u64::try_from(self.tolerance.as_millis()).unwrap_or(u64::MAX);

        let generator = Snowflake {
            layout,
            clock: self.clock,
            state: AtomicU64::new(0),
            lease: AtomicU64::new(pack_lease(self.worker_id, UNTIL_MASK)),
            tolerance_ms,
            policy: self.policy,
            fault_logged: AtomicU64::new(u64::MAX),
        };
        if let Some(last) = self.last_issued {
            if let Some(tick) = layout.tick_of_ms(last.as_millis()) {
                generator.raise_floor(tick);
            }
        }
        tracing::debug!(
            target: "pulse_id",
            worker_id = self.worker_id,
            tolerance_ms,
            policy = ?self.policy,
            "snowflake generator created"
        );
        Ok(generator)
    }
}

impl<C: Clock> Snowflake<C> {
    /// Returns the layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Returns the clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Returns the worker id the next ID will carry.
    pub fn worker_id(&self) -> u64 {
        self.lease.load(Ordering::Acquire) >> UNTIL_BITS
    }

    /// Returns the last issued timestamp, or `None` before the first ID.
    /// Persist it and pass it to [`SnowflakeBuilder::last_issued`] to carry
    /// the no-repeat promise across a restart.
    pub fn last_issued(&self) -> Option<WallTime> {
        let state = self.state.load(Ordering::Acquire);
        if state == 0 {
            return None;
        }
        let tick = state >> self.layout.sequence_bits();
        Some(WallTime::from_millis(self.layout.ms_of_tick(tick)))
    }

    /// Issues the next ID, waiting for the next tick when the current one is
    /// used up or the clock is behind within the tolerance.
    #[inline]
    pub fn next_id(&self) -> Result<u64> {
        self.issue(1, true).map(|batch| batch.first())
    }

    /// Issues the next ID without waiting: returns [`IdError::WouldBlock`]
    /// where [`next_id`](Snowflake::next_id) would wait.
    #[inline]
    pub fn try_next_id(&self) -> Result<u64> {
        self.issue(1, false).map(|batch| batch.first())
    }

    /// Issues up to `max` consecutive IDs in one step: the rest of the
    /// current tick's sequence, at least one ID (it waits like
    /// [`next_id`](Snowflake::next_id) for that one). A `max` of zero is
    /// treated as one.
    pub fn next_batch(&self, max: u64) -> Result<IdBatch> {
        self.issue(max.max(1), true)
    }

    /// Fills `out` with increasing IDs, taking whole runs at a time.
    pub fn fill(&self, out: &mut [u64]) -> Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            let left = u64::try_from(out.len() - filled).unwrap_or(u64::MAX);
            for id in self.issue(left, true)? {
                out[filled] = id;
                filled += 1;
            }
        }
        Ok(())
    }

    /// Takes up to `want` IDs from the shared state: the core of every call.
    ///
    /// The common cases (a new tick, or the next sequence number of the
    /// current one, under a valid lease) take one clock reading and one
    /// compare-and-swap here; everything else goes to the slow path.
    #[inline]
    fn issue(&self, want: u64, blocking: bool) -> Result<IdBatch> {
        let sequence_bits = self.layout.sequence_bits();
        let max_sequence = self.layout.max_sequence();

        // The lease and the state are read before the clock, so the clock
        // reading is at least as late as the one that produced the state.
        let lease = self.lease.load(Ordering::Acquire);
        let current = self.state.load(Ordering::Acquire);
        let last_tick = current >> sequence_bits;
        let last_sequence = current & max_sequence;
        let now_ms = self.clock.wall().as_millis();

        if let Some(now_tick) = self.layout.tick_of_ms(now_ms) {
            let (tick, sequence) = if now_tick > last_tick {
                (now_tick, 0)
            } else {
                (last_tick, last_sequence + 1)
            };
            let fast = now_tick >= last_tick
                && sequence <= max_sequence
                && tick <= self.layout.max_tick()
                && tick < lease & UNTIL_MASK;
            if fast {
                let count = want.min(max_sequence - sequence + 1);
                let next = (tick << sequence_bits) | (sequence + count - 1);
                if self
                    .state
                    .compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    let first = self.layout.compose(tick, lease >> UNTIL_BITS, sequence);
                    return Ok(IdBatch {
                        next: first,
                        end: first + count,
                    });
                }
            }
        }
        self.issue_slow(want, blocking)
    }

    /// Takes up to `want` IDs when the fast path could not: a used-up tick,
    /// a clock behind the last tick, a lost lease, or a lost race.
    #[cold]
    #[inline(never)]
    fn issue_slow(&self, want: u64, blocking: bool) -> Result<IdBatch> {
        let sequence_bits = self.layout.sequence_bits();
        let max_sequence = self.layout.max_sequence();
        let mut wait_rounds = 0;

        loop {
            let lease = self.lease.load(Ordering::Acquire);
            let current = self.state.load(Ordering::Acquire);
            let last_tick = current >> sequence_bits;
            let last_sequence = current & max_sequence;

            let (tick, sequence) = match self.decide(last_tick, last_sequence)? {
                Step::Issue { tick, sequence } => (tick, sequence),
                Step::WaitFor { tick } => {
                    if !blocking {
                        return Err(self.would_block(tick));
                    }
                    self.wait_for_tick(tick, &mut wait_rounds);
                    continue;
                }
            };

            if tick > self.layout.max_tick() {
                return Err(IdError::TimestampOverflow {
                    tick,
                    bits: self.layout.timestamp_bits(),
                });
            }
            if tick >= lease & UNTIL_MASK {
                // A lease that changed since it was read deserves a retry.
                if self.lease.load(Ordering::Acquire) != lease {
                    continue;
                }
                return Err(lease_error(lease));
            }

            let count = want.min(max_sequence - sequence + 1);
            let last = sequence + count - 1;
            let next = (tick << sequence_bits) | last;
            if self
                .state
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let worker_id = lease >> UNTIL_BITS;
                let first = self.layout.compose(tick, worker_id, sequence);
                return Ok(IdBatch {
                    next: first,
                    end: first + count,
                });
            }
        }
    }

    /// Decides the tick and sequence of the next ID from the last ones and a
    /// fresh clock reading.
    fn decide(&self, last_tick: u64, last_sequence: u64) -> Result<Step> {
        let now_ms = self.clock.wall().as_millis();
        let Some(now_tick) = self.layout.tick_of_ms(now_ms) else {
            return Err(IdError::BeforeEpoch {
                now_ms,
                epoch_ms: self.layout.epoch_ms(),
            });
        };

        if now_tick > last_tick {
            return Ok(Step::Issue {
                tick: now_tick,
                sequence: 0,
            });
        }

        // The clock is in the last tick or behind it.
        let behind_ms = self.layout.ms_of_tick(last_tick).saturating_sub(now_ms);
        let beyond_tolerance = behind_ms > self.tolerance_ms;
        if beyond_tolerance && self.policy == ClockPolicy::Fail {
            // Every call fails until the clock catches up: log once per
            // last tick, not once per call.
            if self.fault_logged.swap(last_tick, Ordering::Relaxed) != last_tick {
                tracing::warn!(
                    target: "pulse_id",
                    last_ms = self.layout.ms_of_tick(last_tick),
                    behind_ms,
                    tolerance_ms = self.tolerance_ms,
                    "wall clock stepped back beyond the tolerance"
                );
            }
            return Err(IdError::ClockMovedBack {
                last_ms: self.layout.ms_of_tick(last_tick),
                behind_ms,
                tolerance_ms: self.tolerance_ms,
            });
        }

        if last_sequence < self.layout.max_sequence() {
            return Ok(Step::Issue {
                tick: last_tick,
                sequence: last_sequence + 1,
            });
        }
        if beyond_tolerance {
            // `ContinueFromLast`: borrow the next tick from the future.
            return Ok(Step::Issue {
                tick: last_tick + 1,
                sequence: 0,
            });
        }
        Ok(Step::WaitFor {
            tick: last_tick + 1,
        })
    }

    fn would_block(&self, tick: u64) -> IdError {
        let now_ms = self.clock.wall().as_millis();
        IdError::WouldBlock {
            wait_for_tick: tick,
            retry_after_ms: self.layout.ms_of_tick(tick).saturating_sub(now_ms).max(1),
        }
    }

    /// Waits a short while for the clock to reach `tick`. The caller checks
    /// again and comes back if it has not; `rounds` counts those returns.
    fn wait_for_tick(&self, tick: u64, rounds: &mut u32) {
        let target_ms = self.layout.ms_of_tick(tick);
        let now_ms = self.clock.wall().as_millis();
        let remaining = target_ms.saturating_sub(now_ms);

        // Sleep through most of a long wait. Spin through the last
        // millisecond, because a sleep or a yield can overshoot it by a whole
        // scheduler slice on a busy machine; yield now and then all the same,
        // so that a thread that moves a test clock gets to run.
        if remaining > 2 {
            std::thread::sleep(Duration::from_millis(remaining - 1));
            return;
        }
        *rounds = rounds.wrapping_add(1);
        if *rounds % 256 == 0 {
            std::thread::yield_now();
        } else {
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
    }

    /// Makes every later ID use a tick after `tick`.
    pub(crate) fn raise_floor(&self, tick: u64) {
        let sequence_bits = self.layout.sequence_bits();
        let floor = (tick << sequence_bits) | self.layout.max_sequence();
        self.state.fetch_max(floor, Ordering::AcqRel);
    }

    /// Starts issuing under a new lease: IDs carry `worker_id`, use ticks
    /// after `floor_tick` and after every tick issued so far (so they stay
    /// above earlier IDs of another worker id), and below `until_tick`.
    pub(crate) fn begin_lease(&self, worker_id: u64, floor_tick: u64, until_tick: u64) {
        self.revoke_lease();
        self.raise_floor(floor_tick);
        let last_tick = self.state.load(Ordering::Acquire) >> self.layout.sequence_bits();
        self.raise_floor(last_tick);
        self.lease.store(
            pack_lease(worker_id, until_tick.min(UNTIL_MASK)),
            Ordering::Release,
        );
    }

    /// Returns whether the clock has passed the end of the current lease,
    /// or no lease is held.
    pub(crate) fn lease_deadline_passed(&self) -> bool {
        let until = self.lease.load(Ordering::Acquire) & UNTIL_MASK;
        let now_ms = self.clock.wall().as_millis();
        self.layout
            .tick_of_ms(now_ms)
            .is_none_or(|tick| tick >= until)
    }

    /// Moves the end of the current lease, if its worker id is still
    /// `worker_id`.
    pub(crate) fn extend_lease(&self, worker_id: u64, until_tick: u64) {
        let _ = self
            .lease
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (word >> UNTIL_BITS == worker_id && word & UNTIL_MASK != 0)
                    .then(|| pack_lease(worker_id, until_tick.min(UNTIL_MASK)))
            });
    }

    /// Stops issuing until a new lease is installed.
    pub(crate) fn revoke_lease(&self) {
        let worker_id = self.worker_id();
        self.lease
            .store(pack_lease(worker_id, 0), Ordering::Release);
    }
}

fn pack_lease(worker_id: u64, until_tick: u64) -> u64 {
    (worker_id << UNTIL_BITS) | (until_tick & UNTIL_MASK)
}

fn lease_error(lease: u64) -> IdError {
    IdError::LeaseLost {
        reason: if lease & UNTIL_MASK == 0 {
            "no lease is held"
        } else {
            "the lease expired before it was renewed"
        },
    }
}

impl<C: Clock> IdGenerator for Snowflake<C> {
    type Id = u64;

    #[inline]
    fn next_id(&self) -> pulse_core::Result<u64> {
        Snowflake::next_id(self).map_err(Into::into)
    }

    #[inline]
    fn try_next_id(&self) -> pulse_core::Result<u64> {
        Snowflake::try_next_id(self).map_err(Into::into)
    }
}
