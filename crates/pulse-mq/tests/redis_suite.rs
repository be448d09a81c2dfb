//! The message-queue conformance suite on Redis Streams.
#![cfg(feature = "redis")]

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use pulse_core::BoxFuture;
use pulse_core::error::Result;
use pulse_core::mq::{Capabilities, DynPublisher, DynSubscriber};
use pulse_mq::redis::RedisStreams;
use pulse_testkit::suites::mq::{self, MqBackend};

struct Redis {
    url: String,
    prefix: String,
}

impl Redis {
    fn streams(&self, via: Option<SocketAddr>) -> Result<RedisStreams> {
        let url = match via {
            Some(addr) => replace_authority(&self.url, addr),
            None => self.url.clone(),
        };
        Ok(RedisStreams::from_url(&url)?
            .prefix(self.prefix.clone())
            .visibility_timeout(Duration::from_secs(1))
            .claim_interval(Duration::from_millis(200))
            .drain_timeout(Duration::from_secs(2)))
    }
}

/// Splits `redis://[user@]host:port[/db]` into the part before the host,
/// the host and port, and the rest.
fn split_url(url: &str) -> (&str, &str, &str) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    (
        &url[..start + host_start],
        &authority[host_start..],
        &rest[end..],
    )
}

fn replace_authority(url: &str, addr: SocketAddr) -> String {
    let (head, _, tail) = split_url(url);
    format!("{head}{addr}{tail}")
}

impl MqBackend for Redis {
    fn name(&self) -> &str {
        "redis"
    }

    fn capabilities(&self) -> Capabilities {
        self.streams(None).expect("valid URL").capabilities()
    }

    fn redelivery_bound(&self) -> Duration {
        Duration::from_millis(1200)
    }

    fn publisher(&self, via: Option<SocketAddr>) -> BoxFuture<'_, Result<Arc<dyn DynPublisher>>> {
        let made = self
            .streams(via)
            .map(|s| Arc::new(s.publisher()) as Arc<dyn DynPublisher>);
        Box::pin(async move { made })
    }

    fn subscriber(&self, via: Option<SocketAddr>) -> BoxFuture<'_, Result<Arc<dyn DynSubscriber>>> {
        let made = self
            .streams(via)
            .map(|s| Arc::new(s.subscriber()) as Arc<dyn DynSubscriber>);
        Box::pin(async move { made })
    }

    fn server_addr(&self) -> Option<SocketAddr> {
        let (_, authority, _) = split_url(&self.url);
        authority.to_socket_addrs().ok()?.next()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_passes_suite() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let backend = Redis {
        url,
        prefix: pulse_testkit::unique_prefix("mq"),
    };
    let report = mq::run_all(&backend).await;
    assert!(report.passed.contains(&"connection_cut"));
    assert!(report.passed.contains(&"replays_old_messages"));
    assert_eq!(
        report
            .skipped
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>(),
        ["order_per_key"]
    );
    cleanup(&backend).await;
}

async fn cleanup(backend: &Redis) {
    let streams = backend.streams(None).expect("valid URL");
    let mut conn = streams.pool().get().await.expect("connection");
    let keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{}:*", backend.prefix))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        let _: i64 = deadpool_redis::redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}
