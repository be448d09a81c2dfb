//! A private `redis-server` child process for tests that break things.
//!
//! Tests that flush scripts, change the configuration or kill the server
//! mid-call must not touch the shared Redis. [`RedisServer`] starts its own
//! `redis-server` on a free loopback port, keeps nothing on disk
//! (`--save "" --appendonly no`), and kills it when dropped, including when
//! the test panics and unwinds.
//!
//! ```no_run
//! # fn run() -> Result<(), pulse_testkit::Error> {
//! use pulse_testkit::redis_server::RedisServer;
//!
//! let mut redis = RedisServer::start()?;
//! let url = redis.url(); // redis://127.0.0.1:<port>
//!
//! // Simulate a crash, then bring the server back empty on the same port.
//! redis.kill();
//! redis.restart()?;
//! assert_eq!(redis.url(), url);
//! # Ok(()) }
//! ```
//!
//! The binary is `redis-server` from the `PATH`, or the path in the
//! `PULSE_REDIS_SERVER` environment variable.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pulse_core::error::ConfigError;

use crate::Error;

/// How many free ports `start` tries before it gives up. A port is lost only
/// when another process binds it between our probe and the server's bind.
const PORT_ATTEMPTS: u32 = 8;

/// How often the readiness check polls the child.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A `redis-server` child process on a loopback port, killed on drop.
///
/// Its methods block the calling thread (a start takes tens of
/// milliseconds, at most the ready timeout). In an async test that is
/// harmless while nothing else runs on the runtime; otherwise call them
/// through `tokio::task::spawn_blocking`.
pub struct RedisServer {
    binary: PathBuf,
    ready_timeout: Duration,
    port: u16,
    child: Option<Child>,
    log_path: PathBuf,
}

/// Settings for [`RedisServer`]; created by [`RedisServer::builder`].
#[derive(Clone, Debug)]
pub struct RedisServerBuilder {
    binary: PathBuf,
    ready_timeout: Duration,
}

impl RedisServerBuilder {
    /// Sets the `redis-server` binary to run. The default is the value of
    /// `PULSE_REDIS_SERVER`, or `redis-server` from the `PATH`.
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    /// Sets how long a start or restart waits for the server to reply to
    /// `PING`. The default is 10 seconds, generous for a loaded machine.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the server on a free loopback port and waits until it replies to
    /// `PING`.
    ///
    /// # Errors
    ///
    /// - [`Error::Config`] when the ready timeout is zero;
    /// - [`Error::RedisServer`] when the binary cannot be run, or the server
    ///   exits before it is ready, or no free port could be bound after
    ///   eight tries;
    /// - [`Error::TimedOut`] when it does not answer within the ready timeout.
    pub fn start(self) -> Result<RedisServer, Error> {
        if self.ready_timeout.is_zero() {
            return Err(ConfigError::new(
                "ready_timeout",
                format!("{:?}", self.ready_timeout),
                "use a ready timeout of at least 1 s; a loaded machine needs several",
            )
            .into());
        }

        let mut server = RedisServer {
            binary: self.binary,
            ready_timeout: self.ready_timeout,
            port: 0,
            child: None,
            log_path: PathBuf::new(),
        };
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port()?;
            server.log_path = std::env::temp_dir().join(format!(
                "pulse-testkit-redis-{}-{}-{:08x}.log",
                std::process::id(),
                server.port,
                crate::random_u64() as u32
            ));
            match server.spawn_and_wait() {
                Ok(()) => {
                    tracing::debug!(target: "pulse_testkit", port = server.port, "started redis-server");
                    return Ok(server);
                }
                Err(Start::PortTaken) => {
                    tracing::debug!(target: "pulse_testkit", port = server.port, attempt, "port taken, trying another");
                }
                Err(Start::Failed(err)) => return Err(err),
            }
        }
        Err(Error::RedisServer {
            message: format!("no free loopback port after {PORT_ATTEMPTS} tries"),
        })
    }
}

/// The reason one start attempt did not produce a running server.
enum Start {
    /// Another process owns the port; try again.
    PortTaken,
    Failed(Error),
}

impl RedisServer {
    /// Starts a server with the default settings; see
    /// [`RedisServerBuilder::start`].
    ///
    /// # Errors
    ///
    /// See [`RedisServerBuilder::start`].
    pub fn start() -> Result<RedisServer, Error> {
        Self::builder().start()
    }

    /// Returns a builder with the default settings.
    pub fn builder() -> RedisServerBuilder {
        let binary = std::env::var_os("PULSE_REDIS_SERVER")
            .filter(|value| !value.is_empty())
            .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from);
        RedisServerBuilder {
            binary,
            ready_timeout: Duration::from_secs(10),
        }
    }

    /// Returns the URL of the server, `redis://127.0.0.1:<port>`. It stays
    /// the same across restarts.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Returns the loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Returns the process id of the running server, or `None` after
    /// [`kill`](RedisServer::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Returns whether the child process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server with `SIGKILL`, as a crash would, and waits for it to
    /// exit. Its data is gone, since nothing is saved to disk. Does nothing
    /// when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Both calls fail only when the child has already exited and been
            // reaped, which leaves nothing to do.
            let _ = child.kill();
            let _ = child.wait();
            tracing::debug!(target: "pulse_testkit", port = self.port, "killed redis-server");
        }
    }

    /// Kills the server if it runs, then starts a new, empty one on the same
    /// port and waits until it replies to `PING`.
    ///
    /// When another process took the port in between, the restart retries
    /// until the ready timeout ends.
    ///
    /// # Errors
    ///
    /// [`Error::RedisServer`] or [`Error::TimedOut`] as for
    /// [`RedisServerBuilder::start`].
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => {
                    tracing::debug!(target: "pulse_testkit", port = self.port, "restarted redis-server");
                    return Ok(());
                }
                Err(Start::PortTaken) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(Start::PortTaken) => {
                    return Err(Error::RedisServer {
                        message: format!(
                            "port {} stayed taken by another process, so the restart could not bind it",
                            self.port
                        ),
                    });
                }
                Err(Start::Failed(err)) => return Err(err),
            }
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), Start> {
        // A fresh log per attempt, so that a bind failure is not read from an
        // older run's lines.
        let _ = std::fs::remove_file(&self.log_path);
        let port = self.port.to_string();
        let spawned = Command::new(&self.binary)
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--logfile"])
            .arg(&self.log_path)
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(err) => {
                return Err(Start::Failed(Error::RedisServer {
                    message: format!(
                        "cannot run `{}`: {err}; install Redis (the `redis-server` package) \
                         or set PULSE_REDIS_SERVER to its path",
                        self.binary.display()
                    ),
                }));
            }
        };
        let mut child = child;
        match self.wait_ready(&mut child) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(err) => {
                // The child may have exited already; then both calls fail
                // harmlessly.
                let _ = child.kill();
                let _ = child.wait();
                Err(err)
            }
        }
    }

    /// Polls until `child` answers `PING` on the port, exits, or the ready
    /// timeout ends.
    fn wait_ready(&self, child: &mut Child) -> Result<(), Start> {
        let pid = child.id();
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = log_tail(&self.log_path);
                if log.contains("Address already in use") {
                    return Err(Start::PortTaken);
                }
                return Err(Start::Failed(Error::RedisServer {
                    message: format!(
                        "exited with {status} before it replied to PING on port {}; log: {log}",
                        self.port
                    ),
                }));
            }

            match ping_and_read_pid(self.port) {
                Ok(answering) if answering == pid => return Ok(()),
                // Another server owns the port, so ours cannot bind it.
                Ok(_) => return Err(Start::PortTaken),
                Err(_) if Instant::now() >= deadline => {
                    return Err(Start::Failed(Error::TimedOut {
                        action: format!(
                            "waiting {:?} for redis-server on port {} to reply to PING; log: {}",
                            self.ready_timeout,
                            self.port,
                            log_tail(&self.log_path)
                        ),
                    }));
                }
                Err(_) => std::thread::sleep(POLL_INTERVAL),
            }
        }
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("binary", &self.binary)
            .finish()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// Returns a loopback port that was free a moment ago. The caller must cope
/// with losing it to another process before it binds.
fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|err| Error::io("binding a probe socket to find a free port", err))?;
    let port = listener
        .local_addr()
        .map_err(|err| Error::io("reading the probe socket's port", err))?
        .port();
    Ok(port)
}

/// Sends `PING` and `INFO server` to the port, and returns the `process_id`
/// of the server that answered, so a caller can tell its own child from a
/// stranger that owns the port.
fn ping_and_read_pid(port: u16) -> std::io::Result<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;

    writer.write_all(b"PING\r\n")?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim_end() != "+PONG" {
        // `-LOADING` and similar replies mean "not ready yet".
        return Err(std::io::Error::other(format!("PING returned {line:?}")));
    }

    writer.write_all(b"INFO server\r\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    let length: usize = line
        .trim_end()
        .strip_prefix('$')
        .and_then(|length| length.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("INFO returned {line:?}")))?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;

    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("INFO server has no process_id"))
}

/// Returns the last lines of the server's log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(empty)".to_owned()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_ready_timeout_is_rejected() {
        let err = RedisServer::builder()
            .ready_timeout(Duration::ZERO)
            .start()
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains("ready_timeout `0ns`"), "{err}");
    }

    #[test]
    fn missing_binary_names_the_path() {
        let err = RedisServer::builder()
            .binary("/nonexistent/redis-server")
            .start()
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/redis-server"),
            "{err}"
        );
    }
}
