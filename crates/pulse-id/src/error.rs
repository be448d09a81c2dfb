//! The error type of this crate.

use pulse_core::error::{Classify, ConfigError, ErrorKind};

/// The reason an ID could not be issued, or a backend call failed.
///
/// Every variant names the values involved. [`IdError::kind`] maps it to the
/// shared [`ErrorKind`], and `pulse_core::Error::from(err)` keeps this enum as
/// the source for downcasting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A builder got a value it cannot work with.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A non-blocking call would have to wait for the clock to reach the next
    /// tick, because the sequence of the current tick is used up or the clock
    /// is behind the last issued timestamp by less than the tolerance.
    #[error("no ID available before tick {wait_for_tick}; retry after about {retry_after_ms} ms")]
    WouldBlock {
        /// The tick (since the layout's epoch) the clock must reach.
        wait_for_tick: u64,
        /// Estimated wait in milliseconds.
        retry_after_ms: u64,
    },

    /// The wall clock is behind the last issued timestamp by more than the
    /// configured tolerance.
    #[error(
        "wall clock stepped back {behind_ms} ms behind the last issued timestamp {last_ms} ms \
         (tolerance {tolerance_ms} ms); wait for the clock to catch up, raise the tolerance, \
         or enable `ClockPolicy::ContinueFromLast`"
    )]
    ClockMovedBack {
        /// The last issued timestamp, in ms since the Unix epoch.
        last_ms: u64,
        /// How far the clock reading is behind it, in ms.
        behind_ms: u64,
        /// The configured tolerance, in ms.
        tolerance_ms: u64,
    },

    /// The wall clock reads a time before the layout's epoch.
    #[error(
        "wall clock reads {now_ms} ms since the Unix epoch, before the layout epoch {epoch_ms} ms; \
         check the clock or choose an earlier epoch"
    )]
    BeforeEpoch {
        /// The clock reading, in ms since the Unix epoch.
        now_ms: u64,
        /// The layout's epoch, in ms since the Unix epoch.
        epoch_ms: u64,
    },

    /// The timestamp no longer fits the layout's timestamp bits.
    #[error(
        "timestamp tick {tick} does not fit in {bits} timestamp bits; \
         choose a later epoch or more timestamp bits"
    )]
    TimestampOverflow {
        /// The tick that did not fit.
        tick: u64,
        /// The layout's timestamp bits.
        bits: u8,
    },

    /// The generator has no valid worker-id lease: it was lost, expired, or
    /// not yet acquired. Issuance resumes once a new lease is held.
    #[error("no valid lease on a worker id ({reason}); IDs resume once a new lease is acquired")]
    LeaseLost {
        /// The reason the lease is not valid.
        reason: &'static str,
    },

    /// Every worker id of the pool is leased by someone else.
    #[error(
        "all {pool_size} worker ids of namespace `{namespace}` are leased; \
         stop an idle process, wait for a lease to expire, or use more worker bits"
    )]
    NoFreeWorkerId {
        /// The lease namespace.
        namespace: String,
        /// How many worker ids the pool has.
        pool_size: u64,
    },

    /// The random part of a ULID cannot be incremented again inside this
    /// millisecond.
    #[error(
        "ULID random part exhausted within millisecond {timestamp_ms}; retry in the next \
         millisecond or enable the carry into the next millisecond"
    )]
    UlidOverflow {
        /// The millisecond (since the Unix epoch) whose IDs are used up.
        timestamp_ms: u64,
    },

    /// The segment allocator has no ID ready and would have to wait for a
    /// range from its source.
    #[error("segment `{name}` is used up and the next range is not fetched yet; retry shortly")]
    SegmentPending {
        /// The segment name.
        name: String,
    },

    /// The backend did not reply or failed.
    #[error("{operation} failed on {backend}: {message}")]
    Backend {
        /// The backend, such as `redis` or `postgres`.
        backend: &'static str,
        /// The operation attempted.
        operation: &'static str,
        /// The driver's message (never a connection URL with a password).
        message: String,
    },

    /// The backend replied with something this crate did not expect.
    #[error("unexpected reply from {backend} to {operation}: {message}")]
    Protocol {
        /// The backend.
        backend: &'static str,
        /// The operation attempted.
        operation: &'static str,
        /// The problem with the reply.
        message: String,
    },

    /// The generator or allocator was shut down.
    #[error("{what} was shut down")]
    Closed {
        /// The component that was shut down.
        what: &'static str,
    },
}

impl IdError {
    /// Returns the shared error kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            IdError::Config(_) => ErrorKind::InvalidConfig,
            IdError::WouldBlock { .. } | IdError::SegmentPending { .. } => ErrorKind::WouldBlock,
            IdError::ClockMovedBack { .. } | IdError::BeforeEpoch { .. } => ErrorKind::ClockFault,
            IdError::TimestampOverflow { .. } => ErrorKind::InvalidConfig,
            IdError::LeaseLost { .. } => ErrorKind::NotOwner,
            IdError::NoFreeWorkerId { .. } | IdError::Backend { .. } => ErrorKind::Unavailable,
            IdError::UlidOverflow { .. } => ErrorKind::WouldBlock,
            IdError::Protocol { .. } => ErrorKind::Codec,
            IdError::Closed { .. } => ErrorKind::Closed,
        }
    }
}

impl Classify for IdError {
    fn kind(&self) -> ErrorKind {
        IdError::kind(self)
    }
}

impl From<IdError> for pulse_core::Error {
    fn from(err: IdError) -> Self {
        pulse_core::Error::from_source(err)
    }
}

/// A `Result` whose error is [`IdError`].
pub type Result<T, E = IdError> = std::result::Result<T, E>;
