//! A Snowflake generator whose worker id comes from a lease.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pulse_core::clock::{Clock, CoarseClock};
use pulse_core::error::ConfigError;
use pulse_core::id::IdGenerator;
use pulse_core::signal::Signal;
use pulse_core::task::Background;

use crate::error::{IdError, Result};
use crate::lease::{WorkerLease, WorkerLeases, check_owner, millis};
use crate::snowflake::{IdBatch, Snowflake, SnowflakeBuilder};

/// Settings of a [`LeasedSnowflake`].
#[derive(Clone, Debug)]
pub struct LeasedSnowflakeConfig {
    /// The lease TTL (default 10 s; 100 ms to 24 h).
    pub ttl: Duration,
    /// How often the lease is renewed (default a third of the TTL; at least
    /// 1 ms and shorter than the TTL).
    pub renew_every: Option<Duration>,
    /// The largest difference between two hosts' wall clocks that the
    /// fleet tolerates (default 1 s). A new holder of a worker id waits this
    /// long past the previous lease's expiry before it issues (at most
    /// 24 h).
    pub max_clock_skew: Duration,
    /// The pause between two failed lease attempts (default 200 ms; at
    /// least 1 ms).
    pub retry_delay: Duration,
    /// The owner value recorded in the lease (default: the process id and a
    /// random suffix).
    pub owner: Option<String>,
    /// Whether the store can lose lease records, as a Redis without
    /// persistence does when it restarts (default `false`). When set, a new
    /// holder also waits a full TTL plus the skew from its acquire, because
    /// a lost record cannot say when the previous lease ends.
    pub store_may_lose_records: bool,
}

/// The longest lease TTL and clock skew accepted. Values near
/// `Duration::MAX` overflow the stores' millisecond deadlines, and a day is
/// far beyond any useful lease.
const MAX_SPAN: Duration = Duration::from_secs(24 * 3600);

impl LeasedSnowflakeConfig {
    /// Rejects settings that would panic, spin on the store, or lose the
    /// lease between two renewals.
    fn validate(&self) -> Result<()> {
        let invalid = |field, value: Duration, fix| {
            Err(ConfigError::new(field, format!("{value:?}"), fix).into())
        };
        if self.ttl < Duration::from_millis(100) || self.ttl > MAX_SPAN {
            return invalid("ttl", self.ttl, "use a lease TTL from 100 ms to 24 h");
        }
        if let Some(every) = self.renew_every {
            if every < Duration::from_millis(1) || every >= self.ttl {
                return invalid(
                    "renew_every",
                    every,
                    "use a renewal interval from 1 ms up to below the TTL (default: a third of the TTL)",
                );
            }
        }
        if self.max_clock_skew > MAX_SPAN {
            return invalid(
                "max_clock_skew",
                self.max_clock_skew,
                "use a clock skew of at most 24 h",
            );
        }
        if self.retry_delay < Duration::from_millis(1) {
            return invalid(
                "retry_delay",
                self.retry_delay,
                "use a retry delay of at least 1 ms",
            );
        }
        Ok(())
    }
}

impl Default for LeasedSnowflakeConfig {
    fn default() -> Self {
        LeasedSnowflakeConfig {
            ttl: Duration::from_secs(10),
            renew_every: None,
            max_clock_skew: Duration::from_secs(1),
            retry_delay: Duration::from_millis(200),
            owner: None,
            store_may_lose_records: false,
        }
    }
}

/// A [`Snowflake`] generator that takes its worker id from a
/// [`WorkerLeases`] store and issues IDs only while it holds the lease.
///
/// A background task on the caller's tokio runtime renews the lease every
/// third of its TTL. The lease is lost when a renewal finds it gone, or when
/// its deadline passes while the store is unreachable. Every call then fails
/// with [`IdError::LeaseLost`] while the task keeps trying to take a new
/// lease. Once it holds one, IDs resume, possibly under another worker id,
/// and stay strictly greater than every earlier ID of this generator.
///
/// [`shutdown`](LeasedSnowflake::shutdown) stops the task and releases the
/// lease. Dropping the generator stops the task but cannot await the
/// release, so the lease then simply expires after its TTL.
///
/// # Examples
///
/// ```
/// use pulse_id::{Layout, LeasedSnowflake, LeasedSnowflakeConfig, MemoryWorkerLeases};
/// use pulse_id::SnowflakeBuilder;
/// use pulse_core::clock::CoarseClock;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let leases = MemoryWorkerLeases::new();
/// let config = LeasedSnowflakeConfig {
///     max_clock_skew: std::time::Duration::ZERO,
///     ..LeasedSnowflakeConfig::default()
/// };
/// let builder = SnowflakeBuilder::new(Layout::twitter(), CoarseClock::shared());
/// let ids = LeasedSnowflake::start(leases, builder, config).await.unwrap();
/// let id = ids.next_id().unwrap();
/// assert_eq!(ids.layout().decode(id).worker_id, ids.worker_id());
/// ids.shutdown().await;
/// # });
/// ```
#[derive(Debug)]
pub struct LeasedSnowflake<L: WorkerLeases, C: Clock = CoarseClock> {
    shared: Arc<Shared<L, C>>,
    tasks: Background,
}

#[derive(Debug)]
struct Shared<L, C: Clock> {
    generator: Snowflake<C>,
    leases: L,
    config: LeasedSnowflakeConfig,
    owner: String,
    lease: Mutex<Option<WorkerLease>>,
}

impl<L: WorkerLeases, C: Clock> LeasedSnowflake<L, C> {
    /// Takes a worker id from `leases`, waits until the clock passes the
    /// previous holder's expiry plus the maximum skew, and starts the renewal
    /// task on the current tokio runtime.
    ///
    /// The worker id set on `builder` is ignored; the pool is every worker
    /// id the layout holds.
    pub async fn start(
        leases: L,
        builder: SnowflakeBuilder<C>,
        config: LeasedSnowflakeConfig,
    ) -> Result<Self> {
        config.validate()?;
        let owner = match &config.owner {
            Some(owner) => owner.clone(),
            None => format!("pid{}-{:016x}", std::process::id(), rand::random::<u64>()),
        };
        check_owner(&owner)?;

        let generator = builder.worker_id(0).build()?;
        generator.revoke_lease();
        let shared = Arc::new(Shared {
            generator,
            leases,
            config,
            owner,
            lease: Mutex::new(None),
        });
        shared.take_lease().await?;

        let tasks = Background::new("pulse_id::leased_snowflake");
        let task_shared = Arc::clone(&shared);
        tasks
            .spawn("lease-renewal", move |stop| renewal_loop(task_shared, stop))
            .map_err(|err| IdError::Backend {
                backend: "tokio",
                operation: "start the lease renewal task",
                message: err.to_string(),
            })?;
        Ok(LeasedSnowflake { shared, tasks })
    }

    /// Returns the layout.
    pub fn layout(&self) -> &crate::Layout {
        self.shared.generator.layout()
    }

    /// Returns the worker id of the current or last lease.
    pub fn worker_id(&self) -> u64 {
        self.shared.generator.worker_id()
    }

    /// Returns the current lease, if one is held.
    pub fn lease(&self) -> Option<WorkerLease> {
        self.shared.current().clone()
    }

    /// Returns the generator, for its last issued timestamp and batch calls.
    pub fn generator(&self) -> &Snowflake<C> {
        &self.shared.generator
    }

    /// Issues the next ID; see [`Snowflake::next_id`]. Fails with
    /// [`IdError::LeaseLost`] while no lease is held.
    #[inline]
    pub fn next_id(&self) -> Result<u64> {
        self.shared.generator.next_id()
    }

    /// Issues the next ID without waiting; see [`Snowflake::try_next_id`].
    #[inline]
    pub fn try_next_id(&self) -> Result<u64> {
        self.shared.generator.try_next_id()
    }

    /// Issues a run of IDs; see [`Snowflake::next_batch`].
    pub fn next_batch(&self, max: u64) -> Result<IdBatch> {
        self.shared.generator.next_batch(max)
    }

    /// Stops the renewal task, stops issuing and releases the lease.
    pub async fn shutdown(&self) {
        self.tasks.shutdown().await;
        self.shared.generator.revoke_lease();
        let lease = self.shared.current().take();
        if let Some(lease) = lease {
            match self.shared.leases.release(&lease).await {
                Ok(()) => tracing::info!(
                    target: "pulse_id",
                    worker_id = lease.worker_id,
                    owner = %lease.owner,
                    "worker-id lease released"
                ),
                Err(err) => tracing::warn!(
                    target: "pulse_id",
                    worker_id = lease.worker_id,
                    error = %err,
                    "releasing the worker-id lease failed; it expires after its TTL"
                ),
            }
        }
    }
}

impl<L: WorkerLeases, C: Clock> Shared<L, C> {
    /// Acquires a lease, waits past the previous holder's range and starts
    /// issuing under it.
    async fn take_lease(&self) -> Result<()> {
        let layout = *self.generator.layout();
        let pool_size = layout.max_worker_id() + 1;
        let sent_ms = self.generator.clock().wall().as_millis();
        let lease = self
            .leases
            .acquire(&self.owner, pool_size, self.config.ttl)
            .await?;

        // The layout keeps only the low worker bits: a worker id outside
        // the pool would issue another worker's IDs.
        if lease.worker_id >= pool_size {
            let _ = self.leases.release(&lease).await;
            return Err(IdError::Protocol {
                backend: self.leases.backend(),
                operation: "acquire a worker id",
                message: format!(
                    "worker id {} is outside the pool of {pool_size}; \
                     the store must return ids below the pool size",
                    lease.worker_id
                ),
            });
        }

        // The previous holder issued only timestamps below its expiry plus
        // the skew between its clock and the store's.
        let skew_ms = millis(self.config.max_clock_skew);
        let mut floor_ms = if lease.previous_expiry_ms == 0 {
            0
        } else {
            lease.previous_expiry_ms + skew_ms
        };
        if self.config.store_may_lose_records {
            // A holder whose record was lost renewed at the latest just
            // before this acquire, so its deadline is at most a TTL later.
            floor_ms = floor_ms.max(sent_ms + millis(self.config.ttl) + skew_ms);
        }
        let sent_ms = self.wait_past(floor_ms, &lease, sent_ms).await?;

        let until_ms = sent_ms + millis(self.config.ttl);
        let floor_tick = layout.tick_of_ms(floor_ms).unwrap_or(0);
        let until_tick = layout.tick_of_ms(until_ms).unwrap_or(0);
        self.generator
            .begin_lease(lease.worker_id, floor_tick, until_tick);
        tracing::info!(
            target: "pulse_id",
            backend = self.leases.backend(),
            worker_id = lease.worker_id,
            owner = %self.owner,
            expires_at_ms = lease.expires_at_ms,
            floor_ms,
            "worker-id lease acquired"
        );
        *self.current() = Some(lease);
        Ok(())
    }

    /// Waits until the wall clock reads later than `floor_ms`, renewing
    /// `lease` on the way so that a long wait does not outlast it. Returns
    /// the send time of the last acquire or renewal.
    async fn wait_past(&self, floor_ms: u64, lease: &WorkerLease, mut sent_ms: u64) -> Result<u64> {
        let clock = self.generator.clock();
        let renew_every = self.config.renew_every.unwrap_or(self.config.ttl / 3);
        loop {
            let now_ms = clock.wall().as_millis();
            if now_ms > floor_ms {
                return Ok(sent_ms);
            }
            let left = Duration::from_millis(floor_ms + 1 - now_ms);
            clock.sleep(left.min(renew_every)).await;

            if clock.wall().as_millis() <= floor_ms {
                sent_ms = clock.wall().as_millis();
                if self.leases.renew(lease, self.config.ttl).await?.is_none() {
                    return Err(IdError::LeaseLost {
                        reason: "the new lease was lost while waiting past the previous one",
                    });
                }
            }
        }
    }

    /// Renews the current lease.
    async fn renew(&self, lease: &WorkerLease) -> Renewal {
        let layout = *self.generator.layout();
        let clock = self.generator.clock();
        let sent_ms = clock.wall().as_millis();
        match self.leases.renew(lease, self.config.ttl).await {
            Ok(Some(expires_at_ms)) => {
                let until_ms = sent_ms + millis(self.config.ttl);
                let until_tick = layout.tick_of_ms(until_ms).unwrap_or(0);
                self.generator.extend_lease(lease.worker_id, until_tick);
                if let Some(current) = self.current().as_mut() {
                    current.expires_at_ms = expires_at_ms;
                }
                tracing::trace!(target: "pulse_id", worker_id = lease.worker_id, expires_at_ms, "worker-id lease renewed");
                Renewal::Renewed
            }
            Ok(None) => {
                tracing::warn!(
                    target: "pulse_id",
                    backend = self.leases.backend(),
                    worker_id = lease.worker_id,
                    "worker-id lease lost; IDs stop until a new lease is held"
                );
                Renewal::Lost
            }
            Err(err) => {
                // The lease may still be valid; the hot path stops at the
                // local deadline by itself. Past that deadline it is lost.
                let deadline_passed = self.generator.lease_deadline_passed();
                tracing::warn!(
                    target: "pulse_id",
                    backend = self.leases.backend(),
                    worker_id = lease.worker_id,
                    error = %err,
                    deadline_passed,
                    "worker-id lease renewal failed"
                );
                if deadline_passed {
                    Renewal::Lost
                } else {
                    Renewal::Failed
                }
            }
        }
    }

    fn current(&self) -> MutexGuard<'_, Option<WorkerLease>> {
        self.lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The outcome of one renewal attempt.
enum Renewal {
    Renewed,
    /// The store call failed, but the lease's deadline has not passed.
    Failed,
    Lost,
}

/// Renews the lease, and takes a new one after a loss, until stopped.
async fn renewal_loop<L: WorkerLeases, C: Clock>(shared: Arc<Shared<L, C>>, stop: Signal) {
    let renew_every = shared.config.renew_every.unwrap_or(shared.config.ttl / 3);
    let mut pause = renew_every;
    loop {
        let clock = shared.generator.clock();
        tokio::select! {
            _ = stop.fired() => return,
            _ = clock.sleep(pause) => {}
        }

        let held = shared.current().clone();
        pause = match held {
            Some(lease) => match shared.renew(&lease).await {
                Renewal::Renewed => renew_every,
                Renewal::Failed => shared.config.retry_delay,
                Renewal::Lost => {
                    shared.generator.revoke_lease();
                    *shared.current() = None;
                    Duration::ZERO
                }
            },
            None => match shared.take_lease().await {
                Ok(()) => renew_every,
                Err(err) => {
                    tracing::warn!(
                        target: "pulse_id",
                        backend = shared.leases.backend(),
                        error = %err,
                        "taking a worker-id lease failed; retrying"
                    );
                    shared.config.retry_delay
                }
            },
        };
    }
}

impl<L: WorkerLeases, C: Clock> IdGenerator for LeasedSnowflake<L, C> {
    type Id = u64;

    #[inline]
    fn next_id(&self) -> pulse_core::Result<u64> {
        LeasedSnowflake::next_id(self).map_err(Into::into)
    }

    #[inline]
    fn try_next_id(&self) -> pulse_core::Result<u64> {
        LeasedSnowflake::try_next_id(self).map_err(Into::into)
    }
}
