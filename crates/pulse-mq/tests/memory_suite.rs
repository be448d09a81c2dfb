//! The message-queue conformance suite on the in-memory broker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pulse_core::BoxFuture;
use pulse_core::error::Result;
use pulse_core::mq::{Capabilities, DynPublisher, DynSubscriber, Subscriber};
use pulse_mq::MemoryBroker;
use pulse_testkit::suites::mq::{self, MqBackend};

struct Memory {
    broker: MemoryBroker,
}

impl Memory {
    fn new() -> Self {
        let broker = MemoryBroker::builder()
            .visibility_timeout(Duration::from_millis(500))
            .drain_timeout(Duration::from_secs(2))
            .build();
        Memory { broker }
    }
}

impl MqBackend for Memory {
    fn name(&self) -> &str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        self.broker.subscriber().capabilities()
    }

    fn redelivery_bound(&self) -> Duration {
        Duration::from_millis(500)
    }

    fn publisher(&self, _via: Option<SocketAddr>) -> BoxFuture<'_, Result<Arc<dyn DynPublisher>>> {
        let publisher: Arc<dyn DynPublisher> = Arc::new(self.broker.publisher());
        Box::pin(async move { Ok(publisher) })
    }

    fn subscriber(
        &self,
        _via: Option<SocketAddr>,
    ) -> BoxFuture<'_, Result<Arc<dyn DynSubscriber>>> {
        let subscriber: Arc<dyn DynSubscriber> = Arc::new(self.broker.subscriber());
        Box::pin(async move { Ok(subscriber) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_passes_suite() {
    let report = mq::run_all(&Memory::new()).await;
    assert!(report.passed.contains(&"order_per_key"));
    assert_eq!(
        report
            .skipped
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>(),
        ["replays_old_messages", "connection_cut"]
    );
}
