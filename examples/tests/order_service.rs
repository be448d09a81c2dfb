//! The order service's routes over a real loopback socket.

use std::time::Duration;

use gopulse_examples::service::{Backends, Service};
use pulse_ratelimit::Quota;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A status code, the headers (lower-case names) and the body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one HTTP/1.1 request and reads the whole reply.
async fn request(address: std::net::SocketAddr, method: &str, path: &str, tenant: &str) -> Reply {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let text = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nx-tenant: {tenant}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(text.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the reply arrives in time")
        .expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete reply");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn serve(backends: Backends) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let service = Service::start(
        backends,
        Quota::per_second(1).unwrap().with_burst(3).unwrap(),
    )
    .await
    .expect("the service starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let router = service.router.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (address, server)
}

async fn exercise_routes(address: std::net::SocketAddr) {
    let health = request(address, "GET", "/health", "acme").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body.trim(), "ok");

    let product = request(address, "GET", "/products/7", "acme").await;
    assert_eq!(product.status, 200);
    assert!(
        product.body.contains("\"name\":\"product-7\""),
        "{}",
        product.body
    );

    // A burst of three orders passes; the fourth is over acme's rate.
    for _ in 0..3 {
        let order = request(address, "POST", "/orders?product=7", "acme").await;
        assert_eq!(order.status, 201, "{}", order.body);
        assert!(order.body.contains("\"price_cents\":149"), "{}", order.body);
    }
    let limited = request(address, "POST", "/orders?product=7", "acme").await;
    assert_eq!(limited.status, 429);
    assert!(
        limited.header("retry-after").is_some(),
        "429 carries Retry-After"
    );

    // Another tenant has its own budget.
    let other = request(address, "POST", "/orders?product=8", "globex").await;
    assert_eq!(other.status, 201, "{}", other.body);

    // Three payment failures open the breaker; then orders get 503 fast.
    assert_eq!(
        request(address, "POST", "/admin/payments/down", "ops")
            .await
            .status,
        200
    );
    for _ in 0..3 {
        let failed = request(address, "POST", "/orders?product=1", "initech").await;
        assert_eq!(failed.status, 502, "{}", failed.body);
    }
    let open = request(address, "POST", "/orders?product=1", "initech-2").await;
    assert_eq!(open.status, 503, "{}", open.body);
    assert!(
        open.header("retry-after").is_some(),
        "503 carries Retry-After"
    );

    // Every placed order produced one consumed event.
    let mut stats = String::new();
    for _ in 0..100 {
        stats = request(address, "GET", "/stats", "ops").await.body;
        if stats.contains("\"events_consumed\":4") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stats.contains("\"orders\":4"), "{stats}");
    assert!(stats.contains("\"events_consumed\":4"), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_in_process() {
    let (address, server) = serve(Backends::memory().unwrap()).await;
    exercise_routes(address).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_on_redis() {
    let Some(url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let prefix = pulse_testkit::unique_prefix("order-service");
    let (address, server) = serve(Backends::redis(&url, &prefix).unwrap()).await;
    exercise_routes(address).await;
    server.abort();
}
