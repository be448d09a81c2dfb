//! Helpers for the tests that run a second copy of the test binary as a
//! child process, so that two processes lease worker ids at once.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

/// Set in the child: the file it writes its IDs to.
pub const CHILD_OUT: &str = "PULSE_ID_TEST_CHILD_OUT";
/// Passed to the child: the server URL and the lease namespace.
pub const CHILD_URL: &str = "PULSE_ID_TEST_CHILD_URL";
pub const CHILD_NAMESPACE: &str = "PULSE_ID_TEST_CHILD_NAMESPACE";

/// IDs per process in the two-process tests: 10M across both.
pub const PER_PROCESS: usize = 5_000_000;
const THREADS: usize = 2;

/// Returns the child's settings when this process is the child.
pub fn child_role() -> Option<(PathBuf, String, String)> {
    let out = std::env::var_os(CHILD_OUT)?;
    let url = std::env::var(CHILD_URL).expect("child gets a URL");
    let namespace = std::env::var(CHILD_NAMESPACE).expect("child gets a namespace");
    Some((PathBuf::from(out), url, namespace))
}

/// Starts this test binary again, running only `test_name`, as the child.
pub fn spawn_child(test_name: &str, out: &Path, url: &str, namespace: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_OUT, out)
        .env(CHILD_URL, url)
        .env(CHILD_NAMESPACE, namespace)
        .spawn()
        .expect("spawn the test binary as a child")
}

/// Calls `next` from several threads and returns all IDs, checking that
/// each thread's IDs increase.
pub fn generate(total: usize, next: impl Fn() -> u64 + Send + Sync + 'static) -> Vec<u64> {
    let next = Arc::new(next);
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let next = Arc::clone(&next);
            std::thread::spawn(move || {
                let ids: Vec<u64> = (0..total / THREADS).map(|_| next()).collect();
                assert!(
                    ids.windows(2).all(|pair| pair[0] < pair[1]),
                    "IDs decreased in one thread"
                );
                ids
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .collect()
}

pub fn write_ids(path: &Path, ids: &[u64]) {
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

pub fn read_ids(path: &Path) -> Vec<u64> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap()))
        .collect()
}

/// Asserts that the two processes' IDs are all distinct.
pub fn assert_disjoint(mut mine: Vec<u64>, theirs: Vec<u64>) {
    let expected = mine.len() + theirs.len();
    mine.extend(theirs);
    mine.sort_unstable();
    mine.dedup();
    assert_eq!(mine.len(), expected, "the two processes issued the same ID");
}

/// Deletes test keys from the shared Redis, so that runs leave nothing behind.
#[cfg(feature = "redis")]
pub async fn delete_redis_keys(url: &str, keys: &[&str]) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Returns a temporary output file for the child.
pub fn out_file(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{tag}-{}.ids", std::process::id()))
}
