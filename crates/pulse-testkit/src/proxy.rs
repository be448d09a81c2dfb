//! A loopback TCP proxy that delays, cuts and restores connections.
//!
//! Put a [`Proxy`] between a client and a server to see what the client does
//! when the network misbehaves. [`set_delay`](Proxy::set_delay) slows every
//! chunk of data. [`cut`](Proxy::cut) closes every live connection and closes
//! each new one as soon as it is accepted. [`restore`](Proxy::restore) lets
//! connections through again.
//!
//! ```no_run
//! # async fn run() -> Result<(), pulse_testkit::Error> {
//! use pulse_testkit::proxy::Proxy;
//! use pulse_testkit::redis_server::RedisServer;
//!
//! let redis = RedisServer::start()?;
//! let proxy = Proxy::start(redis.addr()).await?;
//! let url = format!("redis://{}", proxy.addr()); // give this to the client under test
//!
//! proxy.cut();      // the client's connections close; reconnects fail
//! proxy.restore();  // reconnects succeed again
//! # let _ = url;
//! # Ok(()) }
//! ```
//!
//! The proxy forwards only to loopback addresses and listens on loopback.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use pulse_core::error::ConfigError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;

/// Whether connections may pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Cut,
    /// The proxy was dropped; every task ends.
    Closed,
}

/// A TCP proxy on a loopback port, forwarding to one upstream address.
///
/// The proxy runs on the tokio runtime that [`start`](Proxy::start) was
/// called on. Dropping it closes the listener and every connection.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

struct Shared {
    upstream: SocketAddr,
    state: watch::Sender<State>,
    delay_nanos: AtomicU64,
    active: AtomicUsize,
}

impl Shared {
    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_nanos.load(Ordering::Relaxed))
    }
}

impl Proxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream`.
    ///
    /// # Errors
    ///
    /// - [`Error::Config`] when `upstream` is not a loopback address or its
    ///   port is 0;
    /// - [`Error::Io`] when the listener cannot be bound.
    pub async fn start(upstream: SocketAddr) -> Result<Proxy, Error> {
        if !upstream.ip().is_loopback() || upstream.port() == 0 {
            return Err(ConfigError::new(
                "upstream",
                upstream,
                "the proxy forwards only to a loopback address (127.0.0.0/8 or ::1) with a non-zero port",
            )
            .into());
        }

        let local_ip = match upstream.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        let listener = TcpListener::bind((local_ip, 0))
            .await
            .map_err(|err| Error::io("binding the proxy listener", err))?;
        let addr = listener
            .local_addr()
            .map_err(|err| Error::io("reading the proxy listener's address", err))?;

        let (state, _) = watch::channel(State::Open);
        let shared = Arc::new(Shared {
            upstream,
            state,
            delay_nanos: AtomicU64::new(0),
            active: AtomicUsize::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::debug!(target: "pulse_testkit", %addr, %upstream, "proxy started");

        Ok(Proxy {
            addr,
            shared,
            accept_task,
        })
    }

    /// Returns the address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the address the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Closes every live connection, on both sides, and closes each new
    /// connection right after accepting it, until [`restore`](Proxy::restore).
    ///
    /// A client sees its connection end (end of stream or a reset, depending
    /// on timing) and its reconnects accepted and then closed at once.
    pub fn cut(&self) {
        self.set_state(State::Cut);
        tracing::debug!(target: "pulse_testkit", addr = %self.addr, "proxy cut");
    }

    /// Lets new connections through again after [`cut`](Proxy::cut).
    /// Connections closed by the cut stay closed.
    pub fn restore(&self) {
        self.set_state(State::Open);
        tracing::debug!(target: "pulse_testkit", addr = %self.addr, "proxy restored");
    }

    /// Returns whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        *self.shared.state.borrow() == State::Cut
    }

    /// Holds every chunk of data for `delay` before forwarding it, in both
    /// directions, so a request and its reply each wait about `delay`.
    /// `Duration::ZERO` turns the delay off. Applies to chunks read after the
    /// call, on live and new connections.
    pub fn set_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.shared.delay_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Returns the number of connections being forwarded now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }

    fn set_state(&self, state: State) {
        self.shared.state.send_replace(state);
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("state", &*self.shared.state.borrow())
            .field("delay", &self.shared.delay())
            .finish()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.state.send_replace(State::Closed);
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut state = shared.state.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = state.wait_for(|state| *state == State::Closed) => return,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(err) => {
                // Running out of file descriptors is the usual cause; back
                // off instead of spinning.
                tracing::warn!(target: "pulse_testkit", error = %err, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };

        let current = *state.borrow();
        match current {
            State::Open => {
                tokio::spawn(forward(client, Arc::clone(&shared)));
            }
            State::Cut => drop(client),
            State::Closed => return,
        }
    }
}

/// Decrements the live connection count when a forwarding task ends.
struct ActiveGuard<'a>(&'a AtomicUsize);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn forward(client: TcpStream, shared: Arc<Shared>) {
    let mut state = shared.state.subscribe();
    let upstream = match TcpStream::connect(shared.upstream).await {
        Ok(upstream) => upstream,
        Err(err) => {
            tracing::debug!(target: "pulse_testkit", upstream = %shared.upstream, error = %err, "proxy could not reach upstream");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);

    shared.active.fetch_add(1, Ordering::Relaxed);
    let _guard = ActiveGuard(&shared.active);

    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let both_directions = async {
        tokio::join!(
            pump(client_read, upstream_write, &shared),
            pump(upstream_read, client_write, &shared),
        )
    };

    // A cut (or the proxy's drop) wins the race and drops both sockets.
    tokio::select! {
        _ = both_directions => {}
        _ = state.wait_for(|state| *state != State::Open) => {}
    }
}

/// Copies one direction until end of stream or an error, then passes the end
/// of stream on.
async fn pump<R, W>(mut reader: R, mut writer: W, shared: &Shared)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let delay = shared.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if writer.write_all(&buf[..read]).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn non_loopback_upstream_is_rejected() {
        let err = Proxy::start("192.0.2.7:6379".parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains("192.0.2.7:6379"), "{err}");
    }

    #[tokio::test]
    async fn zero_upstream_port_is_rejected() {
        let err = Proxy::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:0"), "{err}");
    }
}
