//! Leaf-style segment allocation: dense IDs handed out from ranges that a
//! store reserves, one round trip per range.
//!
//! # How it works
//!
//! The allocator holds two buffers. IDs come from the current range by one
//! atomic increment. Once a tenth of the current range is used, a
//! background task reserves the next range, so that it is ready before the
//! current one runs out and the switch does not wait on the store. The range
//! size adapts to the rate: it doubles when a range lasted less than half the
//! target duration and halves when it lasted more than twice that.
//!
//! IDs are unique for a name across every allocator sharing the store. They
//! increase within a range and from one range to the next, but threads that
//! race near a switch may see their IDs in a different order than their
//! calls, and IDs reserved by a process that stops are skipped (gaps).

mod source;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;

pub use source::{MemorySource, SegmentSource};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use pulse_core::clock::{Clock, MonoTime, SystemClock};
use pulse_core::error::ConfigError;
use pulse_core::id::IdGenerator;
use pulse_core::signal::Signal;
use pulse_core::task::Background;
use tokio::sync::Notify;

use crate::error::{IdError, Result};

/// Offset bits of the cursor word; the generation sits above them.
const OFFSET_BITS: u32 = 40;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
const GENERATION_MASK: u64 = (1 << (64 - OFFSET_BITS)) - 1;
/// A slot generation that no cursor carries, written while a slot changes.
const SLOT_CHANGING: u64 = u64::MAX;

/// Settings of a [`SegmentAllocator`].
#[derive(Clone, Debug)]
pub struct SegmentConfig {
    /// The size of the first range (default 1,000).
    pub initial_step: u64,
    /// The smallest range (default 1,000).
    pub min_step: u64,
    /// The largest range (default 10,000,000; at most 2^39).
    pub max_step: u64,
    /// How long one range should last; the size adapts towards it
    /// (default 60 s).
    pub target_duration: Duration,
    /// How long a blocking call waits for the next range before it fails
    /// (default 5 s).
    pub wait_timeout: Duration,
    /// The pause between two failed reservations (default 100 ms).
    pub retry_delay: Duration,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            initial_step: 1_000,
            min_step: 1_000,
            max_step: 10_000_000,
            target_duration: Duration::from_secs(60),
            wait_timeout: Duration::from_secs(5),
            retry_delay: Duration::from_millis(100),
        }
    }
}

impl SegmentConfig {
    fn validate(&self) -> Result<()> {
        if self.min_step == 0 || self.min_step > self.max_step {
            return Err(ConfigError::new(
                "min_step",
                self.min_step,
                "use a min_step from 1 to max_step",
            )
            .into());
        }
        if self.max_step > 1 << (OFFSET_BITS - 1) {
            return Err(ConfigError::new(
                "max_step",
                self.max_step,
                "use a max_step of at most 2^39",
            )
            .into());
        }
        if !(self.min_step..=self.max_step).contains(&self.initial_step) {
            return Err(ConfigError::new(
                "initial_step",
                self.initial_step,
                "use an initial_step from min_step to max_step",
            )
            .into());
        }
        Ok(())
    }
}

/// Hands out IDs from ranges reserved in a [`SegmentSource`], prefetching
/// the next range in the background.
///
/// # Cost
///
/// One atomic increment and four loads of one cache line per ID, one round
/// trip to the store per range, and two ranges of state (a few hundred
/// bytes) per allocator.
///
/// # Examples
///
/// ```
/// use pulse_id::{MemorySource, SegmentAllocator, SegmentConfig};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let ids = SegmentAllocator::start(MemorySource::new(), "orders", SegmentConfig::default())
///     .await
///     .unwrap();
/// assert_eq!(ids.next_id().unwrap(), 1);
/// assert_eq!(ids.next_id().unwrap(), 2);
/// ids.shutdown().await;
/// # });
/// ```
#[derive(Debug)]
pub struct SegmentAllocator<S: SegmentSource> {
    shared: Arc<Shared<S>>,
    tasks: Background,
}

#[derive(Debug)]
struct Shared<S> {
    name: String,
    source: S,
    config: SegmentConfig,
    clock: SystemClock,
    /// `generation << 40 | offset` of the next ID in the current range.
    cursor: AtomicU64,
    slots: [Slot; 2],
    switch: Mutex<SwitchState>,
    /// Wakes blocking callers when a range arrives or a fetch fails.
    ready: Condvar,
    /// Wakes async callers likewise.
    ready_async: Notify,
    /// Wakes the prefetch task.
    prefetch: Notify,
    closed: AtomicBool,
}

/// One buffer: a range and the generation that owns it. Written under the
/// switch lock, read lock-free with a generation check before and after.
#[derive(Debug, Default)]
struct Slot {
    generation: AtomicU64,
    start: AtomicU64,
    len: AtomicU64,
    trigger: AtomicU64,
}

#[derive(Debug)]
struct SwitchState {
    /// The prefetched range: first ID and length.
    next: Option<(u64, u64)>,
    /// The size of the next reservation.
    step: u64,
    installed_at: MonoTime,
    last_error: Option<String>,
}

impl<S: SegmentSource> SegmentAllocator<S> {
    /// Reserves the first range of `name` and starts the prefetch task on
    /// the current tokio runtime.
    pub async fn start(source: S, name: impl Into<String>, config: SegmentConfig) -> Result<Self> {
        config.validate()?;
        let name = name.into();
        let step = config.initial_step;
        let first = source.reserve(&name, step).await?;

        let clock = SystemClock::new();
        let shared = Arc::new(Shared {
            name,
            source,
            config,
            switch: Mutex::new(SwitchState {
                next: None,
                step,
                installed_at: clock.now(),
                last_error: None,
            }),
            clock,
            cursor: AtomicU64::new(0),
            slots: [Slot::default(), Slot::default()],
            ready: Condvar::new(),
            ready_async: Notify::new(),
            prefetch: Notify::new(),
            closed: AtomicBool::new(false),
        });
        shared.install(1, first, step);

        let tasks = Background::new("pulse_id::segment");
        let task_shared = Arc::clone(&shared);
        tasks
            .spawn("prefetch", move |stop| prefetch_loop(task_shared, stop))
            .map_err(|err| IdError::Backend {
                backend: "tokio",
                operation: "start the segment prefetch task",
                message: err.to_string(),
            })?;
        tracing::debug!(
            target: "pulse_id",
            segment = %shared.name,
            backend = shared.source.backend(),
            first,
            step,
            "segment allocator started"
        );
        Ok(SegmentAllocator { shared, tasks })
    }

    /// Returns the segment name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Returns the size the next reservation will have.
    pub fn step(&self) -> u64 {
        self.shared.lock().step
    }

    /// Issues the next ID. When the current range is used up and the next
    /// one has not arrived, it blocks the thread up to the configured wait
    /// timeout. Inside an async task, prefer
    /// [`next_id_async`](SegmentAllocator::next_id_async).
    #[inline]
    pub fn next_id(&self) -> Result<u64> {
        self.shared.next_id(Wait::Block)
    }

    /// Issues the next ID without waiting: fails with
    /// [`IdError::SegmentPending`] when the next range has not arrived.
    /// The blocking and async calls report the store's last error instead
    /// when their wait times out.
    #[inline]
    pub fn try_next_id(&self) -> Result<u64> {
        self.shared.next_id(Wait::No)
    }

    /// Issues the next ID, waiting asynchronously for the next range when
    /// the current one is used up.
    pub async fn next_id_async(&self) -> Result<u64> {
        let deadline = self.shared.clock.now() + self.shared.config.wait_timeout;
        loop {
            let ready = self.shared.ready_async.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            match self.shared.next_id(Wait::No) {
                Err(IdError::SegmentPending { .. }) => {}
                other => return other,
            }
            let left = deadline.saturating_duration_since(self.shared.clock.now());
            if left.is_zero() || tokio::time::timeout(left, ready).await.is_err() {
                return Err(self.shared.pending_error());
            }
        }
    }

    /// Stops the prefetch task and waits for it. Later calls fail with
    /// [`IdError::Closed`] once the current range is used up.
    pub async fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.tasks.shutdown().await;
        self.shared.wake_all();
        tracing::debug!(target: "pulse_id", segment = %self.shared.name, "segment allocator stopped");
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Block,
    No,
}

impl<S: SegmentSource> Shared<S> {
    #[inline]
    fn next_id(&self, wait: Wait) -> Result<u64> {
        loop {
            let word = self.cursor.fetch_add(1, Ordering::AcqRel);
            let generation = word >> OFFSET_BITS;
            let offset = word & OFFSET_MASK;

            let slot = &self.slots[(generation & 1) as usize];
            let before = slot.generation.load(Ordering::Acquire);
            let start = slot.start.load(Ordering::Relaxed);
            let len = slot.len.load(Ordering::Relaxed);
            let trigger = slot.trigger.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            let after = slot.generation.load(Ordering::Relaxed);
            if before != generation || after != generation {
                // The slot was refilled for a later range while this thread
                // was paused; the offset is skipped and the call retries.
                continue;
            }

            if offset < len {
                if offset == trigger {
                    self.prefetch.notify_one();
                }
                return Ok(start + offset);
            }
            self.switch(generation, wait)?;
        }
    }

    /// Moves from the used-up range of `generation` to the prefetched one,
    /// waiting for it if `wait` allows.
    fn switch(&self, generation: u64, wait: Wait) -> Result<()> {
        let deadline = self.clock.now() + self.config.wait_timeout;
        let mut state = self.lock();
        loop {
            if self.cursor.load(Ordering::Acquire) >> OFFSET_BITS != generation {
                return Ok(());
            }
            if let Some((first, len)) = state.next.take() {
                self.adapt_step(&mut state);
                self.install((generation + 1) & GENERATION_MASK, first, len);
                return Ok(());
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(IdError::Closed {
                    what: "segment allocator",
                });
            }
            self.prefetch.notify_one();

            if wait == Wait::No {
                return Err(IdError::SegmentPending {
                    name: self.name.clone(),
                });
            }
            let left = deadline.saturating_duration_since(self.clock.now());
            if left.is_zero() {
                return Err(pending_error(&self.name, &state));
            }
            state = self
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Publishes a range under `generation`. Called under the switch lock,
    /// or before the allocator is shared.
    fn install(&self, generation: u64, first: u64, len: u64) {
        let slot = &self.slots[(generation & 1) as usize];
        slot.generation.store(SLOT_CHANGING, Ordering::Relaxed);
        fence(Ordering::Release);
        slot.start.store(first, Ordering::Relaxed);
        slot.len.store(len, Ordering::Relaxed);
        slot.trigger.store(len / 10, Ordering::Relaxed);
        slot.generation.store(generation, Ordering::Release);
        self.cursor
            .store(generation << OFFSET_BITS, Ordering::Release);
        tracing::trace!(target: "pulse_id", segment = %self.name, first, len, "segment range installed");
    }

    /// Doubles or halves the next reservation after the range that just ran
    /// out, towards the target duration.
    fn adapt_step(&self, state: &mut SwitchState) {
        let now = self.clock.now();
        let lasted = now.saturating_duration_since(state.installed_at);
        state.installed_at = now;

        let target = self.config.target_duration;
        if lasted < target / 2 {
            state.step = state.step.saturating_mul(2).min(self.config.max_step);
        } else if lasted > target.saturating_mul(2) {
            state.step = (state.step / 2).max(self.config.min_step);
        }
    }

    fn pending_error(&self) -> IdError {
        pending_error(&self.name, &self.lock())
    }

    fn wake_all(&self) {
        self.ready.notify_all();
        self.ready_async.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, SwitchState> {
        self.switch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn pending_error(name: &str, state: &SwitchState) -> IdError {
    match &state.last_error {
        Some(message) => IdError::Backend {
            backend: "segment source",
            operation: "reserve the next range",
            message: message.clone(),
        },
        None => IdError::SegmentPending {
            name: name.to_owned(),
        },
    }
}

/// Reserves the next range whenever asked, until the stop signal fires.
async fn prefetch_loop<S: SegmentSource>(shared: Arc<Shared<S>>, stop: Signal) {
    loop {
        tokio::select! {
            _ = stop.fired() => return,
            _ = shared.prefetch.notified() => {}
        }

        loop {
            let step = {
                let state = shared.lock();
                if state.next.is_some() {
                    break;
                }
                state.step
            };

            let reserved = tokio::select! {
                _ = stop.fired() => return,
                reserved = shared.source.reserve(&shared.name, step) => reserved,
            };
            match reserved {
                Ok(first) => {
                    {
                        let mut state = shared.lock();
                        state.next = Some((first, step));
                        state.last_error = None;
                    }
                    shared.wake_all();
                    tracing::trace!(target: "pulse_id", segment = %shared.name, first, step, "segment range prefetched");
                    break;
                }
                Err(err) => {
                    tracing::warn!(
                        target: "pulse_id",
                        segment = %shared.name,
                        backend = shared.source.backend(),
                        error = %err,
                        "segment reservation failed; retrying"
                    );
                    shared.lock().last_error = Some(err.to_string());
                    shared.wake_all();
                    tokio::select! {
                        _ = stop.fired() => return,
                        _ = shared.clock.sleep(shared.config.retry_delay) => {}
                    }
                }
            }
        }
    }
}

impl<S: SegmentSource> IdGenerator for SegmentAllocator<S> {
    type Id = u64;

    #[inline]
    fn next_id(&self) -> pulse_core::Result<u64> {
        SegmentAllocator::next_id(self).map_err(Into::into)
    }

    #[inline]
    fn try_next_id(&self) -> pulse_core::Result<u64> {
        SegmentAllocator::try_next_id(self).map_err(Into::into)
    }
}
