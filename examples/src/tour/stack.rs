//! The primitives of the order service, built for one backend.
//!
//! Everything after construction goes through the pulse-core traits
//! (`DynAsyncRateLimiter`, `IdGenerator`, `DynLock`, `DynPublisher`,
//! `DynSubscriber`, `DynJobStore`), so the workload code is the same on every
//! backend: moving a service from one process to Redis or PostgreSQL changes
//! only this file.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use pulse_cache::redis::RedisStore;
use pulse_cache::{LocalCache, NearCache};
use pulse_core::BoxFuture;
use pulse_core::clock::ManualClock;
use pulse_core::error::redact_url;
use pulse_core::id::IdGenerator;
use pulse_core::lock::DynLock;
use pulse_core::mq::{DynPublisher, DynSubscriber};
use pulse_core::ratelimit::DynAsyncRateLimiter;
use pulse_core::sched::DynJobStore;
use pulse_id::{Layout, LeasedSnowflake, LeasedSnowflakeConfig, Snowflake};
use pulse_lock::{LeaseOptions, MemoryLock, PgLock, RedisLock};
use pulse_mq::MemoryBroker;
use pulse_mq::redis::RedisStreams;
use pulse_ratelimit::redis::{FailureMode, RedisAlgorithm, RedisLimiter};
use pulse_ratelimit::{KeyedGcra, Quota};
use pulse_sched::store::{MemoryJobStore, PgJobStore, RedisJobStore};
use serde::{Deserialize, Serialize};

use super::{Backend, BoxError};

/// A catalogue entry, the value the product cache holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Catalogue index.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Price in cents.
    pub price_cents: u64,
}

impl Product {
    /// Looks a product up in the "database": the slow path the cache saves.
    pub fn load(id: u32) -> Product {
        Product {
            id,
            name: format!("product-{id}"),
            price_cents: 100 + u64::from(id) * 7,
        }
    }
}

/// The product cache: the local tier alone, or a near cache over Redis.
pub enum Products {
    /// In-process only.
    Local(LocalCache<String, Product>),
    /// The local tier in front of Redis, kept coherent by invalidations.
    Near(NearCache<Product, RedisStore>),
}

impl Products {
    /// Reads a product through the cache. Returns the product and whether
    /// the read was a local hit.
    pub async fn get(&self, id: u32) -> Result<(Product, bool), BoxError> {
        let key = format!("product:{id}");
        match self {
            Products::Local(cache) => {
                let hit = cache.contains_key(&key);
                let product = cache
                    .get_or_load(key, || async move { Ok(Product::load(id)) })
                    .await?;
                Ok((product, hit))
            }
            Products::Near(cache) => {
                let hit = cache.get_local(&key).is_some();
                let product = cache
                    .get_or_load(&key, || async move { Ok(Some(Product::load(id))) })
                    .await?
                    .ok_or("the product loader returned nothing")?;
                Ok((product, hit))
            }
        }
    }
}

/// Everything the order service uses, with the backend chosen for each.
pub struct Stack {
    /// Primitive name and the backend it runs on, for the summary.
    pub choices: Vec<(&'static str, &'static str)>,
    /// The workload clock the rate limiter decides by. It advances with the
    /// requests' arrival times, so decisions depend on the seed only.
    pub clock: ManualClock,
    /// The per-tenant limiter.
    pub limiter: Arc<dyn DynAsyncRateLimiter<str>>,
    /// Order ids.
    pub ids: Arc<dyn IdGenerator<Id = u64>>,
    /// Product lookups.
    pub products: Products,
    /// Per-order locks.
    pub locks: Arc<dyn DynLock>,
    /// Order events out.
    pub publisher: Arc<dyn DynPublisher>,
    /// Order events in.
    pub subscriber: Arc<dyn DynSubscriber>,
    /// Delayed follow-ups.
    pub followups: Arc<dyn DynJobStore>,
    /// The topic the order events go to.
    pub topic: String,
    shutdowns: Vec<Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>>,
}

/// Tenants may place 50 orders per second with bursts of 10.
fn tenant_quota() -> Result<Quota, BoxError> {
    Ok(Quota::per_second(50)?.with_burst(10)?)
}

/// How long a per-order lock lives.
pub const LOCK_TTL: Duration = Duration::from_secs(10);

impl Stack {
    /// Builds the stack for `backend`. `namespace` keeps one run's keys,
    /// streams and queues apart from every other run's.
    pub async fn build(backend: Backend, namespace: &str) -> Result<Stack, BoxError> {
        match backend {
            Backend::Memory => Ok(Self::memory(namespace)?),
            Backend::Redis => Self::redis(namespace).await,
            Backend::Postgres => Self::postgres(namespace).await,
        }
    }

    /// Stops background work: lease renewal, invalidation listeners, broker
    /// tasks.
    pub async fn shutdown(self) {
        if let Products::Near(cache) = &self.products {
            cache.shutdown().await;
        }
        for shutdown in self.shutdowns {
            shutdown().await;
        }
    }

    fn memory(namespace: &str) -> Result<Stack, BoxError> {
        let clock = ManualClock::new();
        let limiter = KeyedGcra::<String>::builder(tenant_quota()?)
            .clock(clock.clone())
            .build()?;
        let broker = MemoryBroker::new();
        Ok(Stack {
            choices: vec![
                ("ratelimit", "memory"),
                ("id", "memory"),
                ("cache", "memory"),
                ("lock", "memory"),
                ("mq", "memory"),
                ("sched", "memory"),
            ],
            clock,
            limiter: Arc::new(limiter),
            ids: Arc::new(snowflake()?),
            products: local_products()?,
            locks: Arc::new(MemoryLock::new()),
            publisher: Arc::new(broker.publisher()),
            subscriber: Arc::new(broker.subscriber()),
            followups: Arc::new(MemoryJobStore::new()),
            topic: format!("{namespace}.orders"),
            shutdowns: Vec::new(),
        })
    }

    async fn redis(namespace: &str) -> Result<Stack, BoxError> {
        let url = server_url("PULSE_REDIS_URL", "redis://127.0.0.1:6379", 6379)?;
        let clock = ManualClock::new();

        let limiter =
            RedisLimiter::builder(tenant_quota()?, RedisAlgorithm::Gcra, FailureMode::Error)
                .url(&url)?
                .prefix(format!("{namespace}:rl"))
                .test_clock(Arc::new(clock.clone()))
                .build()?;

        let leases =
            pulse_id::lease::redis::RedisWorkerLeases::from_url(&url, format!("{namespace}:ids"))?;
        let ids: Arc<LeasedSnowflake<_>> = Arc::new(
            LeasedSnowflake::start(
                leases,
                Snowflake::builder(Layout::twitter()),
                LeasedSnowflakeConfig::default(),
            )
            .await?,
        );

        let store = RedisStore::builder()
            .url(url.clone())
            .prefix(format!("{namespace}:cache"))
            .build()?;
        let near = NearCache::builder(store).max_entries(10_000).build()?;

        let locks = RedisLock::connect(
            &url,
            LeaseOptions::new().namespace(format!("{namespace}:locks")),
        )?;
        let streams = RedisStreams::from_url(&url)?.prefix(format!("{namespace}:mq"));
        let followups = RedisJobStore::from_url(&url, &format!("{namespace}:followups"))?;

        let ids_for_shutdown = Arc::clone(&ids);
        Ok(Stack {
            choices: vec![
                ("ratelimit", "redis"),
                ("id", "redis"),
                ("cache", "redis"),
                ("lock", "redis"),
                ("mq", "redis"),
                ("sched", "redis"),
            ],
            clock,
            limiter: Arc::new(limiter),
            ids: ids as Arc<dyn IdGenerator<Id = u64>>,
            products: Products::Near(near),
            locks: Arc::new(locks),
            publisher: Arc::new(streams.publisher()),
            subscriber: Arc::new(streams.subscriber()),
            followups: Arc::new(followups),
            topic: "orders".to_owned(),
            shutdowns: vec![Box::new(move || {
                Box::pin(async move { ids_for_shutdown.shutdown().await })
            })],
        })
    }

    async fn postgres(namespace: &str) -> Result<Stack, BoxError> {
        let url = server_url(
            "PULSE_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/test",
            5432,
        )?;
        let mut stack = Self::memory(namespace)?;

        let leases =
            pulse_id::lease::postgres::PgWorkerLeases::connect(&url, format!("{namespace}-ids"))
                .await?;
        pulse_id::lease::postgres::migrate(leases.client()).await?;
        let ids: Arc<LeasedSnowflake<_>> = Arc::new(
            LeasedSnowflake::start(
                leases,
                Snowflake::builder(Layout::twitter()),
                LeasedSnowflakeConfig::default(),
            )
            .await?,
        );

        let locks = PgLock::connect(
            &url,
            LeaseOptions::new().namespace(format!("{namespace}-locks")),
        )?;
        locks.migrate().await?;

        let followups = PgJobStore::from_url(&url, &format!("{namespace}-followups"))?;
        followups.migrate().await?;

        let ids_for_shutdown = Arc::clone(&ids);
        stack.choices = vec![
            ("ratelimit", "memory (no PostgreSQL backend)"),
            ("id", "postgres"),
            ("cache", "memory (no PostgreSQL backend)"),
            ("lock", "postgres"),
            ("mq", "memory (no PostgreSQL backend)"),
            ("sched", "postgres"),
        ];
        stack.ids = ids as Arc<dyn IdGenerator<Id = u64>>;
        stack.locks = Arc::new(locks);
        stack.followups = Arc::new(followups);
        stack.shutdowns.push(Box::new(move || {
            Box::pin(async move { ids_for_shutdown.shutdown().await })
        }));
        Ok(stack)
    }
}

fn snowflake() -> Result<Snowflake, BoxError> {
    Ok(Snowflake::builder(Layout::twitter()).worker_id(1).build()?)
}

fn local_products() -> Result<Products, BoxError> {
    Ok(Products::Local(
        LocalCache::<String, Product>::builder()
            .max_entries(10_000)
            .build()?,
    ))
}

/// Reads a server URL from the environment and checks that the server
/// accepts connections, so that a missing server is reported in one clear line.
fn server_url(variable: &str, default: &str, default_port: u16) -> Result<String, BoxError> {
    let url = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    let address = host_port(&url, default_port).ok_or_else(|| {
        format!(
            "invalid {variable} `{}`: use a URL such as {default}",
            redact_url(&url)
        )
    })?;
    let reachable =
        address
            .to_socket_addrs()
            .ok()
            .into_iter()
            .flatten()
            .any(|socket: SocketAddr| {
                TcpStream::connect_timeout(&socket, Duration::from_secs(2)).is_ok()
            });
    if !reachable {
        return Err(format!(
            "the server at {} refused the connection or timed out; start it, set {variable}, or run with --backend memory",
            redact_url(&url)
        )
        .into());
    }
    Ok(url)
}

/// Extracts `host:port` from a URL such as `redis://user:pass@host:6379/0`.
fn host_port(url: &str, default_port: u16) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.is_empty() {
        return None;
    }
    if host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        Some(host_port.to_owned())
    } else {
        Some(format!("{host_port}:{default_port}"))
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_reads_urls() {
        assert_eq!(
            host_port("redis://127.0.0.1:6379", 1).as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(
            host_port("redis://:pw@localhost/0", 6379).as_deref(),
            Some("localhost:6379")
        );
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432/test", 1).as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(host_port("not a url", 1), None);
    }
}
