//! The keyed mutex and the keyed read-write lock.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::table::{Claim, Table};

/// The permits of a keyed read-write lock entry: the most readers at once.
const MAX_READERS: u32 = 1 << 30;

/// A mutex per key, without a mutex per possible key.
///
/// An entry exists only while its key is locked or awaited, and it is freed
/// when the last guard or waiter lets go, so locking a million distinct keys
/// one after the other leaves nothing behind. Waiters on one key are served
/// in the order they arrived (the fairness of `tokio::sync::Semaphore`).
/// Guards are owned: they borrow nothing and can move into spawned tasks.
///
/// Cost: one shard-lock section when locking and one when unlocking. An
/// uncontended lock and unlock touches no semaphore and allocates nothing
/// once the table is warm, except that a key of a type such as `String` is
/// cloned into the table when its entry is created.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_lock::KeyedMutex;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let locks: KeyedMutex<String> = KeyedMutex::new();
/// let guard = locks.lock("order-1").await;
/// assert!(locks.try_lock("order-1").is_none(), "held");
/// assert!(locks.try_lock("order-2").is_some(), "other keys are free");
/// assert!(locks.lock_timeout("order-1", Duration::from_millis(10)).await.is_none());
/// drop(guard);
/// assert_eq!(locks.len(), 0, "unused entries are freed");
/// # });
/// ```
pub struct KeyedMutex<K = String> {
    table: Arc<Table<K>>,
}

/// Proof that a key of a [`KeyedMutex`] is locked; unlocks on drop.
#[must_use = "the key is unlocked when the guard is dropped"]
pub struct KeyedMutexGuard<K> {
    _claim: Claim<K>,
}

impl<K: Hash + Eq + Send + Sync + 'static> Default for KeyedMutex<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Send + Sync + 'static> KeyedMutex<K> {
    /// Creates an empty keyed mutex.
    pub fn new() -> Self {
        KeyedMutex {
            table: Arc::new(Table::new(1)),
        }
    }

    /// Locks `key`, waiting until it is free. Cancel-safe: dropping the
    /// future gives up the place in the queue.
    pub async fn lock<Q>(&self, key: &Q) -> KeyedMutexGuard<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        KeyedMutexGuard {
            _claim: acquire(&self.table, key, 1).await,
        }
    }

    /// Locks `key` if it is free now, or returns `None`.
    pub fn try_lock<Q>(&self, key: &Q) -> Option<KeyedMutexGuard<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        try_acquire(&self.table, key, 1).map(|claim| KeyedMutexGuard { _claim: claim })
    }

    /// Locks `key`, waiting at most `timeout`; returns `None` when it stayed
    /// busy. Needs a tokio runtime with the timer enabled.
    pub async fn lock_timeout<Q>(&self, key: &Q, timeout: Duration) -> Option<KeyedMutexGuard<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        tokio::time::timeout(timeout, self.lock(key)).await.ok()
    }

    /// Returns how many keys are locked or awaited now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Returns whether no key is locked or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A read-write lock per key, without a lock per possible key.
///
/// Many readers or one writer hold a key at a time. Waiters are served in
/// arrival order, so a waiting writer is not starved by a stream of readers.
/// Entries are freed as in [`KeyedMutex`].
///
/// # Examples
///
/// ```
/// use pulse_lock::KeyedRwLock;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let locks: KeyedRwLock<u64> = KeyedRwLock::new();
/// let first = locks.read(&7).await;
/// let second = locks.read(&7).await;
/// assert!(locks.try_write(&7).is_none(), "readers hold the key");
/// drop((first, second));
/// let writer = locks.write(&7).await;
/// assert!(locks.try_read(&7).is_none());
/// drop(writer);
/// assert!(locks.is_empty());
/// # });
/// ```
pub struct KeyedRwLock<K = String> {
    table: Arc<Table<K>>,
}

/// Shared access to a key of a [`KeyedRwLock`]; released on drop.
#[must_use = "the key is released when the guard is dropped"]
pub struct KeyedReadGuard<K> {
    _claim: Claim<K>,
}

/// Exclusive access to a key of a [`KeyedRwLock`]; released on drop.
#[must_use = "the key is released when the guard is dropped"]
pub struct KeyedWriteGuard<K> {
    _claim: Claim<K>,
}

impl<K: Hash + Eq + Send + Sync + 'static> Default for KeyedRwLock<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Send + Sync + 'static> KeyedRwLock<K> {
    /// Creates an empty keyed read-write lock.
    pub fn new() -> Self {
        KeyedRwLock {
            table: Arc::new(Table::new(MAX_READERS)),
        }
    }

    /// Takes shared access to `key`, waiting while a writer holds or awaits
    /// it.
    pub async fn read<Q>(&self, key: &Q) -> KeyedReadGuard<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        KeyedReadGuard {
            _claim: acquire(&self.table, key, 1).await,
        }
    }

    /// Takes exclusive access to `key`, waiting until no one holds it.
    pub async fn write<Q>(&self, key: &Q) -> KeyedWriteGuard<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        KeyedWriteGuard {
            _claim: acquire(&self.table, key, MAX_READERS).await,
        }
    }

    /// Takes shared access to `key` if that is possible now.
    pub fn try_read<Q>(&self, key: &Q) -> Option<KeyedReadGuard<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        try_acquire(&self.table, key, 1).map(|claim| KeyedReadGuard { _claim: claim })
    }

    /// Takes exclusive access to `key` if it is free now.
    pub fn try_write<Q>(&self, key: &Q) -> Option<KeyedWriteGuard<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        try_acquire(&self.table, key, MAX_READERS).map(|claim| KeyedWriteGuard { _claim: claim })
    }

    /// Takes shared access, waiting at most `timeout`.
    pub async fn read_timeout<Q>(&self, key: &Q, timeout: Duration) -> Option<KeyedReadGuard<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        tokio::time::timeout(timeout, self.read(key)).await.ok()
    }

    /// Takes exclusive access, waiting at most `timeout`.
    pub async fn write_timeout<Q>(&self, key: &Q, timeout: Duration) -> Option<KeyedWriteGuard<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        tokio::time::timeout(timeout, self.write(key)).await.ok()
    }

    /// Returns how many keys are held or awaited now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Returns whether no key is held or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn acquire<K, Q>(table: &Arc<Table<K>>, key: &Q, permits: u32) -> Claim<K>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    let mut claim = table.claim(key, permits);
    if claim.held == 0 {
        claim
            .semaphore()
            .acquire_many(permits)
            .await
            .expect("entry semaphores are never closed")
            .forget();
        claim.held = permits;
    }
    claim
}

fn try_acquire<K, Q>(table: &Arc<Table<K>>, key: &Q, permits: u32) -> Option<Claim<K>>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    let mut claim = table.claim(key, permits);
    if claim.held == 0 {
        claim.semaphore().try_acquire_many(permits).ok()?.forget();
        claim.held = permits;
    }
    Some(claim)
}

impl<K> fmt::Debug for KeyedMutex<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedMutex").finish_non_exhaustive()
    }
}

impl<K> fmt::Debug for KeyedRwLock<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRwLock").finish_non_exhaustive()
    }
}

impl<K> fmt::Debug for KeyedMutexGuard<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedMutexGuard").finish_non_exhaustive()
    }
}

impl<K> fmt::Debug for KeyedReadGuard<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedReadGuard").finish_non_exhaustive()
    }
}

impl<K> fmt::Debug for KeyedWriteGuard<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedWriteGuard").finish_non_exhaustive()
    }
}
