//! Time-ordered, never-repeating IDs for fleets of services: Snowflake,
//! UUIDv7, ULID and Leaf-style segments, with worker ids taken by lease.
//!
//! # Which one do I want?
//!
//! | type | ID | ordered | needs a server | cost per ID |
//! | --- | --- | --- | --- | --- |
//! | [`Snowflake`] | `u64`: timestamp, worker id, sequence | by time, strictly per generator | no (a fixed worker id per process) | one clock read and one CAS |
//! | [`LeasedSnowflake`] | same, worker id leased | same | Redis or PostgreSQL for the lease (renewed in the background) | same |
//! | [`MonotonicUuidV7`] | `uuid::Uuid` v7 | strictly per generator, across threads | no | one clock read, one CAS, 64 random bits |
//! | [`MonotonicUlid`] | `ulid::Ulid` | strictly per generator, across threads | no | one clock read and one CAS |
//! | [`SegmentAllocator`] | `u64` from reserved ranges, dense | unique; increasing per range | optional: Redis `INCRBY` or a PostgreSQL row per range | one atomic increment |
//!
//! - Compact 64-bit keys that sort by time: a Snowflake.
//! - IDs unique without any coordination, such as across services that share
//!   no worker-id pool: a UUIDv7 or a ULID.
//! - Dense counters (order numbers) that must not depend on the wall clock:
//!   a segment allocator.
//!
//! Every generator implements [`pulse_core::id::IdGenerator`] and can sit
//! behind `Arc<dyn IdGenerator<Id = …>>`.
//!
//! # Clock faults
//!
//! Generators read the wall clock through [`pulse_core::clock::Clock`]
//! (the process-wide [`CoarseClock`](pulse_core::clock::CoarseClock) for
//! [`Snowflake`], [`FastClock`](pulse_core::clock::FastClock) for the UUIDv7
//! and ULID generators, a manual clock in tests). A [`Snowflake`] waits out a step back of up to its tolerance, and
//! then either fails with [`IdError::ClockMovedBack`] or, if asked, goes on
//! from its last timestamp. UUIDv7 and ULID generators go on from their last
//! millisecond. No setting makes one generator repeat or decrease an ID.
//!
//! # Examples
//!
//! ```
//! use pulse_id::{Layout, MonotonicUlid, MonotonicUuidV7, Snowflake};
//!
//! let snowflake = Snowflake::builder(Layout::twitter()).worker_id(3).build().unwrap();
//! let id: u64 = snowflake.next_id().unwrap();
//! assert_eq!(snowflake.layout().decode(id).worker_id, 3);
//!
//! let uuid = MonotonicUuidV7::new().next_uuid();
//! assert_eq!(uuid.get_version_num(), 7);
//!
//! let ulid = MonotonicUlid::new().next_ulid().unwrap();
//! assert!(ulid.timestamp_ms() > 0);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod layout;
pub mod lease;
mod monotonic;
mod monotonic_ulid;
mod monotonic_uuid;
pub mod segment;
mod snowflake;

pub use error::{IdError, Result};
pub use layout::{Layout, LayoutBuilder, SnowflakeParts};
pub use lease::{
    LeasedSnowflake, LeasedSnowflakeConfig, MemoryWorkerLeases, WorkerLease, WorkerLeases,
};
pub use monotonic_ulid::{MonotonicUlid, UlidOverflow};
pub use monotonic_uuid::MonotonicUuidV7;
pub use segment::{MemorySource, SegmentAllocator, SegmentConfig, SegmentSource};
pub use snowflake::{ClockPolicy, IdBatch, Snowflake, SnowflakeBuilder};

/// The `ulid` crate, whose `Ulid` type [`MonotonicUlid`] returns.
pub use ulid;
/// The `uuid` crate, whose `Uuid` type [`MonotonicUuidV7`] returns.
pub use uuid;
