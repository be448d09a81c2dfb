//! Configuration of the Redis store.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, IntoConnectionInfo};
use deadpool_redis::{Manager, Pool, Runtime};
use pulse_core::error::{ConfigError, redact_url};
use pulse_core::task::Background;
use tokio::sync::broadcast;

use super::{Inner, InvalidationMode, RedisStore};
use crate::error::CacheError;

pub use crate::DEFAULT_MAX_KEY_LEN;

/// Builds a [`RedisStore`]. Start from [`RedisStore::builder`].
///
/// # Examples
///
/// ```
/// use pulse_cache::redis::{InvalidationMode, RedisStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // Nothing connects until the first call.
/// let store = RedisStore::builder()
///     .url("redis://cache-user@127.0.0.1:6379/0")
///     .password("s3cret")
///     .prefix("orders")
///     .invalidation(InvalidationMode::PubSub)
///     .build()?;
/// assert_eq!(store.value_key("42"), "orders:v1:k:42");
/// assert!(!format!("{store:?}").contains("s3cret"));
/// # Ok::<(), pulse_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct RedisStoreBuilder {
    url: Option<String>,
    password: Option<String>,
    pool: Option<Pool>,
    pool_size: usize,
    prefix: String,
    max_key_len: usize,
    mode: InvalidationMode,
    publish: bool,
    timeout: Option<Duration>,
}

impl RedisStoreBuilder {
    pub(super) fn new() -> Self {
        RedisStoreBuilder {
            pool_size: 16,
            prefix: "pulse-cache".to_owned(),
            max_key_len: DEFAULT_MAX_KEY_LEN,
            publish: true,
            timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        }
    }

    /// Connects to this URL (`redis://[user[:password]@]host[:port][/db]`,
    /// or `rediss://…` for TLS with this crate's `tls` feature; append
    /// `#insecure` to skip certificate verification, for tests only). The
    /// URL is never logged or put in an error with its password.
    ///
    /// With [`pool`](Self::pool) as well, the pool serves the commands and
    /// the URL only the invalidation listener.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets the password apart from the URL, so the URL can stay in plain
    /// configuration.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Uses your own deadpool-redis pool for commands, so the service keeps
    /// one pool. The invalidation listener needs a dedicated connection and
    /// therefore a [`url`](Self::url); without one the store has no
    /// invalidation stream.
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Sets the size of the pool created from the URL. Defaults to 16.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets the namespace of every key. The layout is
    /// `<prefix>:v1:k:<key>` for values; see the crate README.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the longest key accepted, in bytes. Defaults to 1024.
    pub fn max_key_len(mut self, max: usize) -> Self {
        self.max_key_len = max;
        self
    }

    /// Chooses how the invalidation stream learns of changes.
    pub fn invalidation(mut self, mode: InvalidationMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets whether writes also publish the changed key on the pub/sub
    /// channel (pipelined with the write, no extra round trip). On by default, so
    /// that instances listening through pub/sub hear writers that listen
    /// through tracking. Turn it off only when every instance uses
    /// [`InvalidationMode::Tracking`].
    pub fn publish_on_write(mut self, publish: bool) -> Self {
        self.publish = publish;
        self
    }

    /// Bounds each command's wait for a connection and for its reply.
    /// Defaults to 5 s, so a dead connection fails a call instead of hanging
    /// it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Builds the store. Connects nothing yet.
    pub fn build(self) -> pulse_core::Result<RedisStore> {
        Ok(self.build_inner().map_err(CacheError::from)?)
    }

    fn build_inner(self) -> Result<RedisStore, ConfigError> {
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "prefix",
                &self.prefix,
                "use a non-empty prefix without spaces, such as the service name",
            ));
        }
        if self.max_key_len == 0 {
            return Err(ConfigError::new("max_key_len", 0, "use at least 1 byte"));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "timeout",
                "0s",
                "use at least 1 ms, or leave it unset",
            ));
        }

        let shown_url = self.url.as_deref().map(redact_url);
        let info = match &self.url {
            Some(url) => {
                let info = url.as_str().into_connection_info().map_err(|err| {
                    ConfigError::new(
                        "url",
                        shown_url.clone().unwrap_or_default(),
                        format!(
                            "use redis://[user[:password]@]host[:port][/db] ({})",
                            err.category()
                        ),
                    )
                })?;
                Some(match &self.password {
                    Some(password) => {
                        let settings = info.redis_settings().clone().set_password(password);
                        info.set_redis_settings(settings)
                    }
                    None => info,
                })
            }
            None => None,
        };

        let pool = match (self.pool, &info) {
            (Some(pool), _) => pool,
            (None, Some(info)) => {
                if self.pool_size == 0 {
                    return Err(ConfigError::new(
                        "pool_size",
                        0,
                        "use at least 1 connection",
                    ));
                }
                let manager = Manager::new(info.clone()).map_err(|err| {
                    ConfigError::new(
                        "url",
                        shown_url.clone().unwrap_or_default(),
                        err.to_string(),
                    )
                })?;
                let mut builder = Pool::builder(manager)
                    .max_size(self.pool_size)
                    .runtime(Runtime::Tokio1);
                if let Some(timeout) = self.timeout {
                    builder = builder
                        .wait_timeout(Some(timeout))
                        .create_timeout(Some(timeout));
                }
                builder
                    .build()
                    .map_err(|err| ConfigError::new("pool", "deadpool-redis", err.to_string()))?
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "connection",
                    "unset",
                    "call url(...) or pool(...)",
                ));
            }
        };

        let listener_client = match &info {
            Some(info) => Some(redis::Client::open(info.clone()).map_err(|err| {
                ConfigError::new(
                    "url",
                    shown_url.clone().unwrap_or_default(),
                    err.to_string(),
                )
            })?),
            None => None,
        };

        let (sender, _) = broadcast::channel(4096);
        let root = format!("{}:v1:", self.prefix);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                pool,
                listener_client,
                listener_info: info,
                value_prefix: format!("{root}k:"),
                negative_prefix: format!("{root}n:"),
                lock_prefix: format!("{root}l:"),
                channel: format!("{root}inv"),
                max_key_len: self.max_key_len,
                mode: self.mode,
                publish: self.publish,
                timeout: self.timeout,
                shown_url,
                sender,
                listener_started: std::sync::atomic::AtomicBool::new(false),
                live: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                background: Background::new("pulse-cache-redis"),
            }),
        })
    }
}
