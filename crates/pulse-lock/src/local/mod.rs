//! In-process locks: a keyed mutex, a keyed read-write lock and a weighted
//! semaphore.

mod keyed;
mod semaphore;
mod table;

pub use keyed::{KeyedMutex, KeyedMutexGuard, KeyedReadGuard, KeyedRwLock, KeyedWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
