//! The scheduler: one timing wheel on the monotonic clock, a driver task
//! that sleeps until the next deadline, and the slot logic of recurring
//! jobs.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use pulse_core::BoxFuture;
use pulse_core::clock::{Clock, FastClock, MonoTime, SystemClock, WallTime};
use pulse_core::signal::Signal;
use pulse_core::task::Background;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::error::SchedError;
use crate::job::{Job, JobStats, RunPlan, StatsSnapshot, run_slot};
use crate::policy::{Misfire, Overlap, PastDeadline, ShutdownMode};
use crate::wheel::{TimerKey, TimerWheel};

/// The wheel's tick: deadlines are rounded up to it, never down.
const TICK_NANOS: u64 = 1_000_000;

/// At most this many missed slots are listed after a long downtime; older
/// ones are skipped without being enumerated.
const MAX_MISSED_SLOTS: usize = 1024;

type TaskFn = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

enum Entry {
    Task(TaskFn),
    Job(u64),
}

/// Settings of a [`Scheduler`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_sched::{PastDeadline, SchedulerOptions};
///
/// let options = SchedulerOptions::default()
///     .past_deadline(PastDeadline::Reject)
///     .wall_check_every(Duration::from_millis(500));
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    past_deadline: PastDeadline,
    wall_check: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            past_deadline: PastDeadline::FireNow,
            wall_check: Duration::from_secs(1),
        }
    }
}

impl SchedulerOptions {
    /// Sets what [`Scheduler::schedule_at`] does with a time in the past.
    pub fn past_deadline(mut self, policy: PastDeadline) -> Self {
        self.past_deadline = policy;
        self
    }

    /// Sets how often the driver compares the wall clock with the monotonic
    /// one while recurring jobs exist (1 s by default). A step of the wall
    /// clock is noticed within this time and every recurring job is
    /// re-anchored.
    pub fn wall_check_every(mut self, every: Duration) -> Self {
        self.wall_check = every.max(Duration::from_millis(1));
        self
    }
}

/// A scheduler of one-shot tasks and recurring jobs on the caller's tokio
/// runtime.
///
/// Deadlines live in a hierarchical timing wheel on the monotonic clock
/// (1 ms ticks, O(1) insert and cancel). Recurring jobs compute their slots
/// in wall time from their [`Schedule`](pulse_core::sched::Schedule) and are
/// re-anchored when the wall clock steps; a run never starts before its
/// slot, and a slot never runs twice on one scheduler.
///
/// Clones share the scheduler. Dropping the last clone stops the driver,
/// drops pending tasks and cancels running ones;
/// [`shutdown`](Scheduler::shutdown) stops it gracefully.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_sched::{Cron, Job, Scheduler, ShutdownMode};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let scheduler = Scheduler::new()?;
/// let (done, fired) = tokio::sync::oneshot::channel();
/// scheduler.schedule_after(Duration::from_millis(5), move || async move {
///     let _ = done.send(());
/// })?;
/// fired.await.unwrap();
///
/// let job = scheduler.add(Job::new("tick", Cron::parse("@every 1h")?, |_| async { Ok(()) }))?;
/// assert!(job.next_fire().is_some());
/// scheduler.shutdown(ShutdownMode::Wait).await;
/// # Ok::<(), pulse_sched::SchedError>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    origin: MonoTime,
    options: SchedulerOptions,
    state: Mutex<State>,
    wake: Arc<Notify>,
    background: Background,
    active: AtomicUsize,
    idle: Notify,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("clock", &self.clock)
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish()
    }
}

struct State {
    wheel: TimerWheel<Entry>,
    jobs: HashMap<u64, JobState>,
    next_job: u64,
    runs: HashMap<u64, AbortHandle>,
    next_run: u64,
    /// The tick the driver sleeps until; an earlier insert wakes it.
    sleeping_until: u64,
    /// Wall minus monotonic at the last check, to notice wall steps.
    wall_offset: i128,
    /// Jobs added since the driver last ran, whose first slot is not
    /// computed yet.
    unarmed: Vec<u64>,
    closed: bool,
}

struct JobState {
    job: Job,
    stats: Arc<JobStats>,
    /// The wall time when the job was added, until its first slot is
    /// computed; `None` once it is armed.
    added_at: Option<WallTime>,
    next_slot: Option<WallTime>,
    timer: Option<TimerKey>,
    running: Vec<u64>,
    queued: Option<(WallTime, Option<WallTime>)>,
}

impl Scheduler {
    /// Creates a scheduler on the host's clocks: monotonic time from the
    /// CPU's time-stamp counter (through `quanta`), wall time from the
    /// system clock. Call it inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`SchedError::Closed`] outside a tokio runtime.
    pub fn new() -> Result<Scheduler, SchedError> {
        Scheduler::with_clock(Arc::new(HostClock::new()), SchedulerOptions::default())
    }

    /// Creates a scheduler on `clock` (a `ManualClock` in tests).
    ///
    /// # Errors
    ///
    /// [`SchedError::Closed`] outside a tokio runtime.
    pub fn with_clock(
        clock: Arc<dyn Clock>,
        options: SchedulerOptions,
    ) -> Result<Scheduler, SchedError> {
        let origin = clock.now();
        let wall_offset = offset(&*clock);
        let inner = Arc::new(Inner {
            clock,
            origin,
            options,
            state: Mutex::new(State {
                wheel: TimerWheel::new(),
                jobs: HashMap::new(),
                next_job: 0,
                runs: HashMap::new(),
                next_run: 0,
                sleeping_until: u64::MAX,
                wall_offset,
                unarmed: Vec::new(),
                closed: false,
            }),
            wake: Arc::new(Notify::new()),
            background: Background::new("pulse_sched"),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
        });

        let weak = Arc::downgrade(&inner);
        inner
            .background
            .spawn("driver", move |stop| drive(weak, stop))
            .map_err(|err| {
                tracing::error!(target: "pulse_sched", error = %err, "scheduler needs a tokio runtime");
                SchedError::Closed
            })?;
        tracing::debug!(target: "pulse_sched", "scheduler started");
        Ok(Scheduler { inner })
    }

    /// Runs `task` once after `delay` of monotonic time.
    ///
    /// # Errors
    ///
    /// [`SchedError::Closed`] after shutdown.
    pub fn schedule_after<F, Fut>(&self, delay: Duration, task: F) -> Result<TaskHandle, SchedError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let deadline = self.inner.clock.now().saturating_add(delay);
        self.insert_task(deadline, Box::new(move || Box::pin(task())))
    }

    /// Runs `task` once when the wall clock reaches `at`.
    ///
    /// The wait is measured on the monotonic clock from now, so a later
    /// wall-clock step does not move it. A time in the past runs at once,
    /// or fails with [`SchedError::DeadlineInPast`] under
    /// [`PastDeadline::Reject`].
    ///
    /// # Errors
    ///
    /// [`SchedError::DeadlineInPast`] or [`SchedError::Closed`].
    pub fn schedule_at<F, Fut>(&self, at: WallTime, task: F) -> Result<TaskHandle, SchedError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let wall = self.inner.clock.wall();
        if at < wall && self.inner.options.past_deadline == PastDeadline::Reject {
            return Err(SchedError::DeadlineInPast {
                ago: wall.saturating_duration_since(at),
            });
        }
        self.schedule_after(at.saturating_duration_since(wall), task)
    }

    fn insert_task(&self, deadline: MonoTime, task: TaskFn) -> Result<TaskHandle, SchedError> {
        let tick = self.inner.tick_of(deadline);
        let key = {
            let mut state = self.inner.lock();
            if state.closed {
                return Err(SchedError::Closed);
            }
            let key = state.wheel.insert(tick, Entry::Task(task));
            if tick < state.sleeping_until {
                state.sleeping_until = tick;
                self.inner.wake.notify_one();
            }
            key
        };
        Ok(TaskHandle { key })
    }

    /// Cancels a one-shot task if it has not started. Returns whether it
    /// was pending. O(1).
    pub fn cancel(&self, task: &TaskHandle) -> bool {
        self.inner.lock().wheel.cancel(task.key).is_some()
    }

    /// Returns whether a one-shot task is still waiting for its time.
    pub fn is_pending(&self, task: &TaskHandle) -> bool {
        self.inner.lock().wheel.get(task.key).is_some()
    }

    /// Returns when a pending one-shot task is due, on the scheduler's
    /// monotonic clock.
    pub fn deadline(&self, task: &TaskHandle) -> Option<MonoTime> {
        let tick = self.inner.lock().wheel.get(task.key)?.1;
        Some(self.inner.mono_of_tick(tick))
    }

    /// Adds a recurring job. Its first slot is the first after now; the
    /// driver computes it and arms the timer, so adding stays cheap.
    ///
    /// # Errors
    ///
    /// [`SchedError::Closed`] after shutdown.
    pub fn add(&self, job: Job) -> Result<JobHandle, SchedError> {
        let stats = Arc::new(JobStats::default());
        let name = job.name.clone();
        let added_at = self.inner.clock.wall();
        let mut state = self.inner.lock();
        if state.closed {
            return Err(SchedError::Closed);
        }
        let id = state.next_job;
        state.next_job += 1;
        state.jobs.insert(
            id,
            JobState {
                job,
                stats: stats.clone(),
                added_at: Some(added_at),
                next_slot: None,
                timer: None,
                running: Vec::new(),
                queued: None,
            },
        );
        // One wake-up arms every job added before the driver runs.
        let wake = state.unarmed.is_empty();
        state.unarmed.push(id);
        drop(state);
        if wake {
            self.inner.wake.notify_one();
        }
        tracing::debug!(target: "pulse_sched", job = &*name, "job added");
        Ok(JobHandle {
            inner: Arc::downgrade(&self.inner),
            id,
            name,
            stats,
        })
    }

    /// Returns the number of pending one-shot tasks and armed job timers.
    pub fn pending(&self) -> usize {
        self.inner.lock().wheel.len()
    }

    /// Returns the number of runs going now.
    pub fn running(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Stops the driver, drops pending tasks and, by `mode`, waits for
    /// running jobs or cancels them. Further calls to add work fail with
    /// [`SchedError::Closed`].
    pub async fn shutdown(&self, mode: ShutdownMode) {
        let aborts: Vec<AbortHandle> = {
            let mut state = self.inner.lock();
            state.closed = true;
            state.wheel = TimerWheel::new();
            state.runs.values().cloned().collect()
        };
        self.inner.background.shutdown().await;
        if mode == ShutdownMode::Cancel {
            for abort in aborts {
                abort.abort();
            }
        }
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.active.load(Ordering::SeqCst) == 0 {
                break;
            }
            idle.await;
        }
        tracing::debug!(target: "pulse_sched", ?mode, "scheduler stopped");
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Converts a deadline to the first tick at or after it, so a timer never
    /// fires early.
    fn tick_of(&self, deadline: MonoTime) -> u64 {
        let nanos = deadline.as_nanos().saturating_sub(self.origin.as_nanos());
        nanos.div_ceil(TICK_NANOS)
    }

    fn tick_now(&self) -> u64 {
        (self
            .clock
            .now()
            .as_nanos()
            .saturating_sub(self.origin.as_nanos()))
            / TICK_NANOS
    }

    fn mono_of_tick(&self, tick: u64) -> MonoTime {
        MonoTime::from_nanos(
            self.origin
                .as_nanos()
                .saturating_add(tick.saturating_mul(TICK_NANOS)),
        )
    }

    /// Puts a job's timer on the wheel for its next slot, measured from the
    /// wall clock now.
    fn arm(&self, state: &mut State, id: u64) {
        let Some(job) = state.jobs.get_mut(&id) else {
            return;
        };
        if let Some(timer) = job.timer.take() {
            state.wheel.cancel(timer);
        }
        let Some(slot) = job.next_slot else {
            return;
        };
        let wait = slot.saturating_duration_since(self.clock.wall());
        let tick = self.tick_of(self.clock.now().saturating_add(wait));
        let key = state.wheel.insert(tick, Entry::Job(id));
        if let Some(job) = state.jobs.get_mut(&id) {
            job.timer = Some(key);
        }
        if tick < state.sleeping_until {
            state.sleeping_until = tick;
            self.wake.notify_one();
        }
    }

    /// Computes the first slot of a job added since the last pass and arms
    /// it.
    fn arm_new(&self, state: &mut State, id: u64) {
        let Some(job) = state.jobs.get_mut(&id) else {
            return;
        };
        let Some(added_at) = job.added_at.take() else {
            return;
        };
        job.next_slot = job.job.schedule.next_after(added_at);
        self.arm(state, id);
    }

    /// Re-arms every job when the wall clock stepped since the last check.
    fn check_wall(&self, state: &mut State) {
        // The offset is stored at every check, so the slow drift between
        // two clock sources never adds up to a step; only a change of more
        // than a tick between two checks does.
        let now = offset(&*self.clock);
        let step = now - std::mem::replace(&mut state.wall_offset, now);
        if step.abs() <= TICK_NANOS as i128 {
            return;
        }
        tracing::info!(target: "pulse_sched", step_ms = (step / 1_000_000) as i64, "wall clock stepped; re-anchoring jobs");
        let ids: Vec<u64> = state.jobs.keys().copied().collect();
        for id in ids {
            self.arm(state, id);
        }
    }

    /// Handles a fired job timer: decides which slots run now and arms the
    /// next one.
    fn on_job_timer(self: &Arc<Self>, state: &mut State, id: u64) {
        let wall = self.clock.wall();
        let Some(job) = state.jobs.get_mut(&id) else {
            return;
        };
        job.timer = None;
        let Some(slot) = job.next_slot else {
            return;
        };

        // Woken before the slot (the wall clock is behind what the
        // monotonic deadline assumed): sleep again for the rest.
        if wall < slot {
            self.arm(state, id);
            return;
        }

        let mut due = vec![slot];
        let mut last = slot;
        while due.len() < MAX_MISSED_SLOTS {
            match job.job.schedule.next_after(last) {
                Some(next) if next <= wall => {
                    due.push(next);
                    last = next;
                }
                _ => break,
            }
        }
        let next = if due.len() == MAX_MISSED_SLOTS {
            job.job.schedule.next_after(wall)
        } else {
            job.job.schedule.next_after(last)
        };
        job.next_slot = next;

        let grace = job.job.options.misfire_grace;
        let (missed, on_time): (Vec<WallTime>, Vec<WallTime>) = due
            .into_iter()
            .partition(|slot| wall.saturating_duration_since(*slot) > grace);

        let mut to_run: Vec<WallTime> = Vec::new();
        let keep = match job.job.options.misfire {
            Misfire::Skip => 0,
            Misfire::FireOnce if on_time.is_empty() => 1,
            Misfire::FireOnce => 0,
            Misfire::CatchUp(n) => n as usize,
        };
        let keep = keep.min(missed.len());
        for slot in &missed[..missed.len() - keep] {
            job.stats.skip(&job.job.name, *slot, "missed");
        }
        to_run.extend_from_slice(&missed[missed.len() - keep..]);
        to_run.extend(on_time);

        for (index, slot) in to_run.iter().enumerate() {
            let following = to_run.get(index + 1).copied().or(next);
            self.start_run(state, id, *slot, following);
        }
        self.arm(state, id);
    }

    /// Applies the overlap policy and spawns the run of one slot.
    fn start_run(
        self: &Arc<Self>,
        state: &mut State,
        id: u64,
        slot: WallTime,
        next: Option<WallTime>,
    ) {
        let Some(job) = state.jobs.get_mut(&id) else {
            return;
        };
        if !job.running.is_empty() {
            match job.job.options.overlap {
                Overlap::Allow => {}
                Overlap::Skip => {
                    job.stats
                        .skip(&job.job.name, slot, "previous run still going");
                    return;
                }
                Overlap::QueueOne => {
                    if job.queued.is_some() {
                        job.stats
                            .skip(&job.job.name, slot, "a run is already queued");
                    } else {
                        job.queued = Some((slot, next));
                    }
                    return;
                }
                Overlap::Replace => {
                    let running = std::mem::take(&mut job.running);
                    for run in running {
                        if let Some(abort) = state.runs.remove(&run) {
                            abort.abort();
                        }
                    }
                    tracing::info!(target: "pulse_sched", job = &*state.jobs[&id].job.name, "previous run cancelled by a new slot");
                }
            }
        }

        let Some(job) = state.jobs.get_mut(&id) else {
            return;
        };
        let plan = RunPlan {
            name: job.job.name.clone(),
            slot,
            next_slot: next,
            handler: job.job.handler.clone(),
            options: job.job.options.clone(),
            stats: job.stats.clone(),
        };
        let run = state.next_run;
        state.next_run += 1;
        let clock = self.clock.clone();
        let weak = Arc::downgrade(self);
        let guard = ActiveGuard::new(self);
        let handle = tokio::spawn(async move {
            let _guard = guard;
            run_slot(plan, clock).await;
            if let Some(inner) = weak.upgrade() {
                inner.finish_run(id, run);
            }
        });
        if !handle.is_finished() {
            state.runs.insert(run, handle.abort_handle());
            if let Some(job) = state.jobs.get_mut(&id) {
                job.running.push(run);
            }
        }
    }

    fn finish_run(self: &Arc<Self>, id: u64, run: u64) {
        let mut state = self.lock();
        state.runs.remove(&run);
        let Some(job) = state.jobs.get_mut(&id) else {
            return;
        };
        job.running.retain(|r| *r != run);
        if job.running.is_empty() && !state.closed {
            if let Some((slot, next)) = state.jobs.get_mut(&id).and_then(|j| j.queued.take()) {
                self.start_run(&mut state, id, slot, next);
            }
        }
    }

    fn spawn_task(self: &Arc<Self>, state: &mut State, task: TaskFn) {
        let run = state.next_run;
        state.next_run += 1;
        let guard = ActiveGuard::new(self);
        let weak = Arc::downgrade(self);
        let handle = tokio::spawn(async move {
            let _guard = guard;
            task().await;
            if let Some(inner) = weak.upgrade() {
                inner.lock().runs.remove(&run);
            }
        });
        if !handle.is_finished() {
            state.runs.insert(run, handle.abort_handle());
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: runs that are going cannot be waited
        // for, so they are cancelled like under `ShutdownMode::Cancel`.
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for abort in state.runs.values() {
            abort.abort();
        }
    }
}

/// The default clock: monotonic readings from the CPU's time-stamp counter
/// (a few ns, where `Instant::now` costs tens of ns on some machines), wall
/// readings from the system clock so that cron follows the real time of
/// day. Drift between the two shows up as a wall step and re-anchors jobs.
#[derive(Debug)]
struct HostClock {
    fast: FastClock,
    system: SystemClock,
}

impl HostClock {
    fn new() -> Self {
        HostClock {
            fast: FastClock::new(),
            system: SystemClock::new(),
        }
    }
}

impl Clock for HostClock {
    fn now(&self) -> MonoTime {
        self.fast.now()
    }

    fn wall(&self) -> WallTime {
        self.system.wall()
    }

    fn sleep_until(&self, deadline: MonoTime) -> pulse_core::clock::Sleep {
        self.fast.sleep_until(deadline)
    }
}

/// Counts a run as active until it ends or is aborted.
struct ActiveGuard {
    inner: Weak<Inner>,
}

impl ActiveGuard {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard {
            inner: Arc::downgrade(inner),
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            if inner.active.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.idle.notify_waiters();
            }
        }
    }
}

fn offset(clock: &dyn Clock) -> i128 {
    clock.wall().as_nanos() as i128 - clock.now().as_nanos() as i128
}

/// Runs the driver loop: fires what is due, then sleeps until the next
/// deadline, an earlier insert, or the next wall-clock check.
async fn drive(weak: Weak<Inner>, stop: Signal) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let now = inner.tick_now();
        let mut due = Vec::new();
        let sleep_until = {
            let mut state = inner.lock();
            for id in std::mem::take(&mut state.unarmed) {
                inner.arm_new(&mut state, id);
            }
            state.wheel.advance(now, |_, entry| due.push(entry));
            for entry in due.drain(..) {
                match entry {
                    Entry::Task(task) => inner.spawn_task(&mut state, task),
                    Entry::Job(id) => inner.on_job_timer(&mut state, id),
                }
            }
            inner.check_wall(&mut state);

            let mut next = state.wheel.next_deadline().unwrap_or(u64::MAX);
            if !state.jobs.is_empty() {
                let check =
                    inner.tick_of(inner.clock.now().saturating_add(inner.options.wall_check));
                next = next.min(check);
            }
            let next = next.max(now + 1);
            state.sleeping_until = next;
            next
        };

        let sleep = if sleep_until == u64::MAX {
            None
        } else {
            Some(inner.clock.sleep_until(inner.mono_of_tick(sleep_until)))
        };
        let notify = inner.wake.clone();
        drop(inner);
        tokio::select! {
            _ = stop.fired() => return,
            _ = notify.notified() => {}
            _ = async { match sleep { Some(sleep) => sleep.await, None => std::future::pending().await } } => {}
        }
    }
}

/// A pending one-shot task, to cancel or query through its [`Scheduler`]
/// ([`Scheduler::cancel`], [`Scheduler::is_pending`],
/// [`Scheduler::deadline`]).
///
/// The handle is a copyable key and holds no reference to the scheduler, so
/// scheduling a task costs no reference count. Dropping it does not cancel
/// the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskHandle {
    key: TimerKey,
}

/// A recurring job on a [`Scheduler`]: query it or remove it.
#[derive(Clone, Debug)]
pub struct JobHandle {
    inner: Weak<Inner>,
    id: u64,
    name: std::sync::Arc<str>,
    stats: Arc<JobStats>,
}

impl JobHandle {
    /// Returns the job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the next slot the job waits for (UTC).
    pub fn next_fire(&self) -> Option<WallTime> {
        let inner = self.inner.upgrade()?;
        let mut state = inner.lock();
        inner.arm_new(&mut state, self.id);
        state.jobs.get(&self.id)?.next_slot
    }

    /// Returns whether a run of the job is going.
    pub fn is_running(&self) -> bool {
        self.inner.upgrade().is_some_and(|inner| {
            inner
                .lock()
                .jobs
                .get(&self.id)
                .is_some_and(|job| !job.running.is_empty())
        })
    }

    /// Returns a copy of the job's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Removes the job: no further slot runs; a run that is going ends on
    /// its own. Returns whether the job was still there.
    pub fn remove(&self) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let mut state = inner.lock();
        let Some(job) = state.jobs.remove(&self.id) else {
            return false;
        };
        if let Some(timer) = job.timer {
            state.wheel.cancel(timer);
        }
        true
    }
}
