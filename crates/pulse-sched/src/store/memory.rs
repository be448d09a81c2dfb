use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use pulse_core::clock::WallTime;
use pulse_core::error::Result;
use pulse_core::sched::{ClaimedJob, DeadJob, JobStore, NewJob};

use super::stale_claim;

/// A job store in process memory, for tests and single-process services.
///
/// Jobs do not survive the process. Claims, leases and dead letters behave
/// as in the persistent stores.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use pulse_core::clock::WallTime;
/// use pulse_core::sched::{JobStore, NewJob};
/// use pulse_sched::store::MemoryJobStore;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryJobStore::new();
/// let job = NewJob { id: "mail-1".into(), payload: Bytes::from_static(b"hi"), run_at: WallTime::from_secs(10) };
/// assert!(store.push(job.clone()).await?);
/// assert!(!store.push(job).await?, "ids are unique");
///
/// assert!(store.claim(WallTime::from_secs(9), 10, Duration::from_secs(30)).await?.is_empty());
/// let claimed = store.claim(WallTime::from_secs(10), 10, Duration::from_secs(30)).await?;
/// store.ack(&claimed[0]).await?;
/// # Ok::<(), pulse_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct MemoryJobStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<String, Entry>,
    /// (due time in ns, id): pending jobs and claimed ones by lease end.
    due: BTreeSet<(u64, String)>,
    dead: Vec<String>,
    next_token: u64,
}

#[derive(Debug)]
struct Entry {
    payload: bytes::Bytes,
    attempts: u32,
    /// When it is due, or when its claim's lease ends.
    at: u64,
    token: Option<String>,
    dead_error: Option<String>,
}

impl MemoryJobStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Checks the claim and takes the job out of the due index.
    fn settle(&mut self, job: &ClaimedJob) -> Result<()> {
        let entry = self
            .jobs
            .get_mut(&job.id)
            .filter(|e| e.token.as_deref() == Some(job.token.as_str()) && e.dead_error.is_none())
            .ok_or_else(|| stale_claim(&job.id))?;
        entry.token = None;
        let at = entry.at;
        self.due.remove(&(at, job.id.clone()));
        Ok(())
    }
}

impl JobStore for MemoryJobStore {
    async fn push(&self, job: NewJob) -> Result<bool> {
        let mut state = self.state();
        if state.jobs.contains_key(&job.id) {
            return Ok(false);
        }
        let at = job.run_at.as_nanos();
        state.due.insert((at, job.id.clone()));
        state.jobs.insert(
            job.id,
            Entry {
                payload: job.payload,
                attempts: 0,
                at,
                token: None,
                dead_error: None,
            },
        );
        Ok(true)
    }

    async fn claim(&self, now: WallTime, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        let mut state = self.state();
        let due: Vec<(u64, String)> = state
            .due
            .range(..(now.as_nanos().saturating_add(1), String::new()))
            .take(max)
            .cloned()
            .collect();
        let until = now.saturating_add(lease).as_nanos();
        let mut out = Vec::with_capacity(due.len());
        for key in due {
            state.due.remove(&key);
            state.next_token += 1;
            let token = state.next_token.to_string();
            let entry = state.jobs.get_mut(&key.1).expect("indexed job exists");
            entry.attempts += 1;
            entry.at = until;
            entry.token = Some(token.clone());
            out.push(ClaimedJob {
                id: key.1.clone(),
                payload: entry.payload.clone(),
                attempt: entry.attempts,
                token,
            });
            state.due.insert((until, key.1));
        }
        Ok(out)
    }

    async fn ack(&self, job: &ClaimedJob) -> Result<()> {
        let mut state = self.state();
        state.settle(job)?;
        state.jobs.remove(&job.id);
        Ok(())
    }

    async fn retry(&self, job: &ClaimedJob, run_at: WallTime, _error: &str) -> Result<()> {
        let mut state = self.state();
        state.settle(job)?;
        let at = run_at.as_nanos();
        if let Some(entry) = state.jobs.get_mut(&job.id) {
            entry.at = at;
        }
        state.due.insert((at, job.id.clone()));
        Ok(())
    }

    async fn dead_letter(&self, job: &ClaimedJob, error: &str) -> Result<()> {
        let mut state = self.state();
        state.settle(job)?;
        if let Some(entry) = state.jobs.get_mut(&job.id) {
            entry.dead_error = Some(error.to_owned());
        }
        state.dead.push(job.id.clone());
        Ok(())
    }

    async fn cancel(&self, id: &str) -> Result<bool> {
        let mut state = self.state();
        let pending = state
            .jobs
            .get(id)
            .is_some_and(|e| e.token.is_none() && e.dead_error.is_none());
        if !pending {
            return Ok(false);
        }
        let entry = state.jobs.remove(id).expect("checked above");
        state.due.remove(&(entry.at, id.to_owned()));
        Ok(true)
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadJob>> {
        let state = self.state();
        Ok(state
            .dead
            .iter()
            .take(max)
            .filter_map(|id| {
                let entry = state.jobs.get(id)?;
                Some(DeadJob {
                    id: id.clone(),
                    payload: entry.payload.clone(),
                    attempts: entry.attempts,
                    error: entry.dead_error.clone().unwrap_or_default(),
                })
            })
            .collect())
    }
}
