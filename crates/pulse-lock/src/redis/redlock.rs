//! Redlock: one lease over N independent Redis servers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::Pool;
use futures_util::future::join_all;
use pulse_core::BoxFuture;
use pulse_core::lock::{Lease, Lock};

use super::connector::Connector;
use super::{FENCE_RETENTION_MS, LockKeys, millis, scripts};
use crate::error::{LockError, check_key};
use crate::lease::{self, Grant, LeaseBackend};
use crate::options::{LeaseOptions, new_owner};

/// A lease over N independent Redis servers (the Redlock algorithm).
///
/// An acquire sends the lock script to every server at once and succeeds
/// when a strict majority granted it within the validity time, which is the
/// TTL minus the time the calls took minus the drift margin. Otherwise it
/// releases whatever it got, on every server. Release and extend go to every
/// server; extend succeeds when a majority still names this owner.
///
/// # Fencing is opt-in
///
/// Each server keeps its own fence counter, and the largest counter among
/// the servers that granted a lock is not a safe token: two majorities can
/// see different counters. So Redlock leases carry no fencing token unless
/// [`with_fencing`](Redlock::with_fencing) is on. Then, after winning a
/// majority, the client writes the largest token it saw back to every
/// server and returns only when a majority stored it, one more round trip.
/// Any later majority overlaps that one, so the next holder's token is
/// larger.
///
/// Costs: one round trip (to all servers in parallel) to acquire, one more
/// with fencing, one to release, one to extend. Waiting acquirers retry with
/// jittered backoff. Each server call has its own timeout of a fifth of the
/// TTL (between 50 ms and 2 s), so one hung server does not stall the rest.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use pulse_core::lock::Lock;
/// use pulse_lock::{LeaseOptions, Redlock};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let nodes = ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"];
/// let locks = Redlock::connect(&nodes, LeaseOptions::new())?.with_fencing(true);
/// let lease = locks.acquire("nightly-report", Duration::from_secs(30), Duration::from_secs(5)).await?;
/// assert!(lease.fencing_token().is_some());
/// locks.release(lease).await?;
/// # Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone, Debug)]
pub struct Redlock {
    inner: Arc<Inner>,
    fenced: bool,
}

#[derive(Debug)]
struct Inner {
    nodes: Vec<Connector>,
    options: LeaseOptions,
    quorum: usize,
}

/// Marks the leases of this backend.
struct RedlockHold;

/// What the servers answered to one call.
struct Tally<T> {
    granted: Vec<T>,
    refused: usize,
    failed: usize,
}

impl Redlock {
    /// Creates a Redlock client over the servers at `urls`. Connects lazily.
    ///
    /// Fails when the list is empty or names one server twice (the same
    /// host, port and database), because a duplicate would count twice
    /// towards the majority.
    pub fn connect<S: AsRef<str>>(urls: &[S], options: LeaseOptions) -> Result<Self, LockError> {
        let listed = || {
            urls.iter()
                .map(|url| pulse_core::error::redact_url(url.as_ref()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if urls.is_empty() {
            return Err(LockError::InvalidNodes {
                nodes: "[]".to_owned(),
                fix: "name at least one server, usually an odd number such as 3 or 5",
            });
        }
        let mut seen = HashSet::new();
        for url in urls {
            if !seen.insert(server_identity(url.as_ref())) {
                return Err(LockError::InvalidNodes {
                    nodes: format!("[{}]", listed()),
                    fix: "name each server once; a duplicate would count twice towards the majority",
                });
            }
        }
        let nodes = urls
            .iter()
            .map(|url| Connector::from_url(url.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_nodes(nodes, options))
    }

    /// Creates a Redlock client over one deadpool-redis pool per server. The
    /// caller makes sure the pools reach different servers.
    pub fn from_pools(pools: Vec<Pool>, options: LeaseOptions) -> Result<Self, LockError> {
        if pools.is_empty() {
            return Err(LockError::InvalidNodes {
                nodes: "[]".to_owned(),
                fix: "pass one pool per server, usually an odd number such as 3 or 5",
            });
        }
        let nodes = pools
            .into_iter()
            .enumerate()
            .map(|(index, pool)| Connector::from_pool(pool, format!("pool #{index}")))
            .collect();
        Ok(Self::from_nodes(nodes, options))
    }

    fn from_nodes(nodes: Vec<Connector>, options: LeaseOptions) -> Self {
        let quorum = nodes.len() / 2 + 1;
        Redlock {
            inner: Arc::new(Inner {
                nodes,
                options,
                quorum,
            }),
            fenced: false,
        }
    }

    /// Turns on fencing tokens, at one more round trip per acquire (see
    /// [Fencing is opt-in](Redlock#fencing-is-opt-in)).
    pub fn with_fencing(mut self, enabled: bool) -> Self {
        self.fenced = enabled;
        self
    }

    /// Returns how many servers must agree.
    pub fn quorum(&self) -> usize {
        self.inner.quorum
    }

    /// Tries once. `Ok(Err(pause))` means the lock is held elsewhere.
    async fn attempt(
        &self,
        key: &str,
        ttl: Duration,
        drift: Duration,
    ) -> Result<Result<Lease, Duration>, LockError> {
        let inner = &self.inner;
        let keys = LockKeys::new(&inner.options.namespace, key);
        let owner = new_owner();
        let clock = &inner.options.clock;
        let sent_at = clock.now();

        let tally = inner
            .on_all(
                key,
                ttl,
                "acquire",
                |conn, keys, owner| {
                    let keys = keys.clone();
                    let owner = owner.to_owned();
                    async move {
                        let mut conn = conn;
                        let (taken, value): (i64, i64) = scripts::ACQUIRE
                            .key(&keys.owner)
                            .key(&keys.fence)
                            .arg(&owner)
                            .arg(millis(ttl))
                            .arg(FENCE_RETENTION_MS)
                            .invoke_async(&mut conn)
                            .await?;
                        Ok((taken == 1).then_some(value))
                    }
                },
                &keys,
                &owner,
            )
            .await;

        let mut validity = ttl
            .saturating_sub(clock.now().saturating_duration_since(sent_at))
            .saturating_sub(drift);
        let mut token = None;
        let mut won = tally.granted.len() >= inner.quorum && !validity.is_zero();

        if won && self.fenced {
            let candidate = tally.granted.iter().copied().max().unwrap_or(0);
            let stored = inner
                .on_all(
                    key,
                    ttl,
                    "store the fencing token",
                    |conn, keys, _| {
                        let fence = keys.fence.clone();
                        async move {
                            let mut conn = conn;
                            let _: i64 = scripts::RAISE_FENCE
                                .key(&fence)
                                .arg(candidate)
                                .arg(FENCE_RETENTION_MS)
                                .invoke_async(&mut conn)
                                .await?;
                            Ok(Some(()))
                        }
                    },
                    &keys,
                    &owner,
                )
                .await;
            validity = ttl
                .saturating_sub(clock.now().saturating_duration_since(sent_at))
                .saturating_sub(drift);
            won = stored.granted.len() >= inner.quorum && !validity.is_zero();
            token = Some(candidate as u64);
        }

        if won {
            tracing::debug!(target: "pulse_lock", key, nodes = tally.granted.len(), validity_ms = validity.as_millis() as u64, "Redlock acquired");
            let grant = Grant {
                key: key.to_owned(),
                owner,
                token,
                sent_at,
                ttl,
                drift,
            };
            return Ok(Ok(lease::issue(
                grant,
                &inner.options,
                &self.inner,
                RedlockHold,
            )));
        }

        // Give back what this attempt got, on every server.
        if !tally.granted.is_empty() {
            tracing::warn!(target: "pulse_lock", key, acquired = tally.granted.len(), nodes = inner.nodes.len(), needed = inner.quorum, "Redlock got only a minority of servers; releasing them");
        }
        inner.release_all(key, &owner).await;

        if tally.granted.len() + tally.refused < inner.quorum {
            return Err(LockError::NoQuorum {
                key: key.to_owned(),
                acquired: tally.granted.len(),
                nodes: inner.nodes.len(),
                needed: inner.quorum,
            });
        }
        Ok(Err(inner.options.retry_min))
    }
}

impl Inner {
    /// Runs one call on every server in parallel, each with its own timeout.
    async fn on_all<T, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        operation: &'static str,
        call: F,
        keys: &LockKeys,
        owner: &str,
    ) -> Tally<T>
    where
        F: Fn(deadpool_redis::redis::aio::MultiplexedConnection, &LockKeys, &str) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, deadpool_redis::redis::RedisError>>,
    {
        let timeout = node_timeout(ttl);
        let calls = self.nodes.iter().map(|node| {
            let call = &call;
            async move {
                let run = node.run(
                    || format!("{operation} Redlock `{key}`"),
                    |conn| call(conn, keys, owner),
                );
                match tokio::time::timeout(timeout, run).await {
                    Ok(result) => result,
                    Err(_) => Err(LockError::Backend {
                        operation: format!("{operation} Redlock `{key}` on `{}`", node.label),
                        message: format!("no reply within {timeout:?}"),
                        source: None,
                    }),
                }
            }
        });
        let mut tally = Tally {
            granted: Vec::new(),
            refused: 0,
            failed: 0,
        };
        for result in join_all(calls).await {
            match result {
                Ok(Some(value)) => tally.granted.push(value),
                Ok(None) => tally.refused += 1,
                Err(err) => {
                    tracing::debug!(target: "pulse_lock", key, error = %err, "Redlock server call failed");
                    tally.failed += 1;
                }
            }
        }
        tally
    }

    async fn release_all(&self, key: &str, owner: &str) -> Tally<()> {
        let keys = LockKeys::new(&self.options.namespace, key);
        self.on_all(
            key,
            Duration::from_secs(5),
            "release",
            |conn, keys, owner| {
                let keys = keys.clone();
                let owner = owner.to_owned();
                async move {
                    let mut conn = conn;
                    let released: i64 = scripts::RELEASE
                        .key(&keys.owner)
                        .arg(&owner)
                        .arg(&keys.channel)
                        .invoke_async(&mut conn)
                        .await?;
                    Ok((released == 1).then_some(()))
                }
            },
            &keys,
            owner,
        )
        .await
    }

    async fn extend_all(&self, key: &str, owner: &str, ttl: Duration) -> Tally<()> {
        let keys = LockKeys::new(&self.options.namespace, key);
        self.on_all(
            key,
            ttl,
            "extend",
            |conn, keys, owner| {
                let keys = keys.clone();
                let owner = owner.to_owned();
                async move {
                    let mut conn = conn;
                    let extended: i64 = scripts::EXTEND
                        .key(&keys.owner)
                        .arg(&owner)
                        .arg(millis(ttl))
                        .invoke_async(&mut conn)
                        .await?;
                    Ok((extended == 1).then_some(()))
                }
            },
            &keys,
            owner,
        )
        .await
    }
}

impl LeaseBackend for Inner {
    fn renew(
        self: Arc<Self>,
        key: String,
        owner: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, LockError>> {
        Box::pin(async move {
            let tally = self.extend_all(&key, &owner, ttl).await;
            if tally.granted.len() >= self.quorum {
                return Ok(true);
            }
            if tally.granted.len() + tally.refused >= self.quorum {
                return Ok(false);
            }
            Err(LockError::NoQuorum {
                key,
                acquired: tally.granted.len(),
                nodes: self.nodes.len(),
                needed: self.quorum,
            })
        })
    }

    fn release_dropped(self: Arc<Self>, key: String, owner: String) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.release_all(&key, &owner).await;
        })
    }
}

impl Lock for Redlock {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> pulse_core::Result<Option<Lease>> {
        check_key(key)?;
        let drift = self.inner.options.check_ttl(ttl)?;
        Ok(self.attempt(key, ttl, drift).await?.ok())
    }

    async fn acquire(&self, key: &str, ttl: Duration, wait: Duration) -> pulse_core::Result<Lease> {
        check_key(key)?;
        let drift = self.inner.options.check_ttl(ttl)?;
        let clock = self.inner.options.clock.clone();
        let give_up = clock.now() + wait;
        let mut attempt = 0;
        loop {
            let outcome = self.attempt(key, ttl, drift).await;
            let last_error = match outcome {
                Ok(Ok(lease)) => return Ok(lease),
                Ok(Err(_)) => None,
                Err(err) => Some(err),
            };
            let now = clock.now();
            if now >= give_up {
                return Err(last_error
                    .unwrap_or(LockError::TimedOut {
                        key: key.to_owned(),
                        wait,
                    })
                    .into());
            }
            let wake_at = (now + self.inner.options.backoff(attempt)).min(give_up);
            clock.sleep_until(wake_at).await;
            attempt += 1;
        }
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> pulse_core::Result<()> {
        self.inner.options.check_ttl(ttl)?;
        let Some(attached) = lease::attached::<RedlockHold>(lease) else {
            return Err(LockError::not_owner(lease.key()).into());
        };
        if lease.lost().is_fired() {
            return Err(LockError::not_owner(lease.key()).into());
        }
        let sent_at = self.inner.options.clock.now();
        let renewed = self
            .inner
            .clone()
            .renew(lease.key().to_owned(), lease.owner().to_owned(), ttl)
            .await?;
        if !renewed {
            tracing::warn!(target: "pulse_lock", key = lease.key(), "Redlock extension failed: a majority no longer names this owner");
            lease.lost().fire();
            return Err(LockError::not_owner(lease.key()).into());
        }
        lease::extended(lease, &attached.tasks, sent_at, ttl);
        Ok(())
    }

    async fn release(&self, mut lease: Lease) -> pulse_core::Result<()> {
        if let Some(attached) = lease::attached::<RedlockHold>(&lease) {
            let tasks = attached.tasks.clone();
            lease::retire(&mut lease, &tasks);
        }
        let tally = self.inner.release_all(lease.key(), lease.owner()).await;
        if !tally.granted.is_empty() {
            return Ok(());
        }
        if tally.failed > 0 {
            return Err(LockError::NoQuorum {
                key: lease.key().to_owned(),
                acquired: 0,
                nodes: self.inner.nodes.len(),
                needed: self.inner.quorum,
            }
            .into());
        }
        Err(LockError::not_owner(lease.key()).into())
    }
}

/// The per-server timeout of one call.
fn node_timeout(ttl: Duration) -> Duration {
    (ttl / 5).clamp(Duration::from_millis(50), Duration::from_secs(2))
}

/// Returns `host:port/db` of a Redis URL, lowercased, with the defaults
/// filled in, so that two spellings of one server compare equal.
fn server_identity(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let db = path
        .split(['?', '#'])
        .next()
        .filter(|db| !db.is_empty())
        .unwrap_or("0");
    let authority = authority.to_ascii_lowercase();
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        && !authority.ends_with(']')
    {
        authority
    } else {
        format!("{authority}:6379")
    };
    let authority = authority.replace("localhost:", "127.0.0.1:");
    format!("{authority}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_fills_defaults() {
        assert_eq!(server_identity("redis://h"), "h:6379/0");
        assert_eq!(server_identity("redis://:pw@H:6380/2"), "h:6380/2");
        assert_eq!(
            server_identity("redis://localhost:6379/"),
            "127.0.0.1:6379/0"
        );
        assert_eq!(server_identity("redis://[::1]"), "[::1]:6379/0");
    }

    #[test]
    fn empty_and_duplicate_lists_are_rejected() {
        let none: [&str; 0] = [];
        assert!(matches!(
            Redlock::connect(&none, LeaseOptions::new()),
            Err(LockError::InvalidNodes { .. })
        ));
        let twice = ["redis://127.0.0.1:7001", "redis://localhost:7001/0"];
        let err = Redlock::connect(&twice, LeaseOptions::new()).unwrap_err();
        assert!(matches!(err, LockError::InvalidNodes { .. }), "{err}");
        assert!(
            Redlock::connect(
                &["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"],
                LeaseOptions::new()
            )
            .is_ok()
        );
    }
}
