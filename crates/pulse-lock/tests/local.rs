//! The in-process keyed mutex, keyed read-write lock and semaphore.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pulse_lock::{KeyedMutex, KeyedRwLock, LockError, Semaphore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_mutex_excludes_per_key() {
    let locks = Arc::new(KeyedMutex::<u32>::new());
    let inside = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for task in 0..16u32 {
        let locks = locks.clone();
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                let _guard = locks.lock(&(task % 2)).await;
                let before = inside.fetch_add(1, Ordering::SeqCst);
                assert!(before < 2, "two holders of one key at once");
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(locks.is_empty(), "entries are freed after use");
}

#[tokio::test]
async fn keyed_mutex_frees_entries() {
    let locks = KeyedMutex::<String>::new();
    for key in 0..10_000 {
        let _guard = locks.lock(key.to_string().as_str()).await;
    }
    assert_eq!(locks.len(), 0);
}

#[tokio::test]
async fn cancelled_waiter_frees_entry() {
    let locks = KeyedMutex::<String>::new();
    let guard = locks.lock("a").await;
    assert!(
        locks
            .lock_timeout("a", Duration::from_millis(5))
            .await
            .is_none()
    );
    assert_eq!(locks.len(), 1, "the holder keeps the entry");
    drop(guard);
    assert_eq!(locks.len(), 0, "the cancelled waiter left nothing behind");
}

#[tokio::test]
async fn guard_moves_into_task() {
    let locks = KeyedMutex::<u64>::new();
    let guard = locks.lock(&1).await;
    let released = tokio::spawn(async move { drop(guard) });
    released.await.unwrap();
    assert!(locks.try_lock(&1).is_some());
}

#[tokio::test]
async fn rwlock_readers_share_writers_exclude() {
    let locks = KeyedRwLock::<String>::new();
    let read_a = locks.read("k").await;
    let read_b = locks.try_read("k").expect("readers share");
    assert!(locks.try_write("k").is_none());
    assert!(
        locks
            .write_timeout("k", Duration::from_millis(5))
            .await
            .is_none()
    );
    drop((read_a, read_b));
    let write = locks.write("k").await;
    assert!(locks.try_read("k").is_none());
    assert!(
        locks
            .read_timeout("k", Duration::from_millis(5))
            .await
            .is_none()
    );
    drop(write);
    assert!(locks.is_empty());
}

#[tokio::test]
async fn rwlock_waiting_writer_blocks_new_readers() {
    let locks = Arc::new(KeyedRwLock::<u8>::new());
    let reader = locks.read(&1).await;
    let writer = tokio::spawn({
        let locks = locks.clone();
        async move {
            let _write = locks.write(&1).await;
        }
    });
    // Give the writer time to queue.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(locks.try_read(&1).is_none(), "a queued writer goes first");
    drop(reader);
    writer.await.unwrap();
    assert!(locks.is_empty());
}

#[tokio::test]
async fn semaphore_weights_and_limits() {
    let semaphore = Semaphore::new(5);
    let three = semaphore.acquire(3).await.unwrap();
    assert_eq!(three.permits(), 3);
    assert!(semaphore.try_acquire(3).unwrap().is_none());
    let two = semaphore.try_acquire(2).unwrap().expect("two are left");
    assert_eq!(semaphore.available(), 0);
    drop((three, two));
    assert_eq!(semaphore.available(), 5);
}

#[tokio::test]
async fn semaphore_rejects_impossible_requests() {
    let semaphore = Semaphore::new(5);
    for permits in [0, 6] {
        let err = semaphore.acquire(permits).await.unwrap_err();
        assert!(
            matches!(err, LockError::InvalidPermits { requested, capacity: 5 } if requested == permits),
            "{err}"
        );
    }
}

#[tokio::test]
async fn semaphore_timeout_returns_none() {
    let semaphore = Semaphore::new(1);
    let _held = semaphore.acquire(1).await.unwrap();
    let waited = semaphore
        .acquire_timeout(1, Duration::from_millis(5))
        .await
        .unwrap();
    assert!(waited.is_none());
}

#[tokio::test]
async fn reused_entries_keep_their_rules() {
    // Writers leave their semaphores for reuse; readers and writers of new
    // keys must still see the right number of free permits.
    let locks = KeyedRwLock::<u32>::new();
    for key in 0..50 {
        let write = locks.write(&key).await;
        assert!(locks.try_read(&key).is_none(), "key {key}");
        drop(write);
        let read = locks.read(&(key + 1000)).await;
        let shared = locks.try_read(&(key + 1000)).expect("readers share");
        assert!(locks.try_write(&(key + 1000)).is_none(), "key {key}");
        drop((read, shared));
    }
    assert!(locks.is_empty());

    let mutexes = KeyedMutex::<u32>::new();
    for key in 0..50 {
        let guard = mutexes.lock(&key).await;
        assert!(mutexes.try_lock(&key).is_none(), "key {key}");
        drop(guard);
    }
    assert!(mutexes.is_empty());
}
