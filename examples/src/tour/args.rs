//! Command-line options of the tour.

use std::fmt;

/// Which servers the tour runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Every primitive in-process; no server needed.
    Memory,
    /// Every primitive that has a Redis backend runs on Redis.
    Redis,
    /// Every primitive that has a PostgreSQL backend runs on PostgreSQL.
    Postgres,
}

impl Backend {
    /// The names accepted by `--backend`.
    pub const NAMES: [&'static str; 3] = ["memory", "redis", "postgres"];

    fn parse(name: &str) -> Result<Backend, String> {
        match name {
            "memory" | "in-process" => Ok(Backend::Memory),
            "redis" => Ok(Backend::Redis),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "nats" | "amqp" | "rabbitmq" | "kafka" => Err(format!(
                "no gopulse primitive has a `{name}` backend yet; choose one of {}",
                Backend::NAMES.join(", ")
            )),
            other => Err(format!(
                "unknown backend `{other}`; choose one of {}",
                Backend::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
        })
    }
}

/// The tour's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the primitives run.
    pub backend: Backend,
    /// How many order requests to send.
    pub requests: u64,
    /// How many tenants send them.
    pub tenants: u32,
    /// The seed of the workload; the same seed gives the same business counts.
    pub seed: u64,
    /// Requests sent per second of real time; 0 sends them as fast as the
    /// backends allow.
    pub pace: u32,
    /// Whether to draw a progress bar on a terminal.
    pub progress: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: Backend::Memory,
            requests: 20_000,
            tenants: 8,
            seed: 42,
            pace: 2_000,
            progress: true,
        }
    }
}

/// The `--help` text.
pub const HELP: &str = "\
cargo run --example tour -- [OPTIONS]

Runs a small order service in one process: a keyed rate limiter per tenant,
an ID per order, a cached product lookup, a per-order lock, an order event
consumed on a worker pool behind a circuit breaker, and a delayed follow-up
per order. Prints a summary table at the end.

Options:
  --backend NAME   memory (default), redis or postgres. Each primitive that
                   has that backend uses it; the others stay in-process, and
                   the summary says which is which.
  --requests N     order requests to send (default 20000)
  --tenants N      tenants sending them (default 8)
  --seed S         workload seed (default 42); one seed gives the same
                   admitted counts on every backend
  --pace N         requests per second of real time (default 2000, about
                   10 s in all); 0 sends as fast as possible
  --no-progress    do not draw the progress bar
  -h, --help       print this text

Servers: Redis at PULSE_REDIS_URL (default redis://127.0.0.1:6379) and
PostgreSQL at PULSE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
";

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    /// Run with this configuration.
    Run(Config),
    /// Print the help text.
    Help,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut config = Config::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value; see --help"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--backend" => config.backend = Backend::parse(&value("--backend")?)?,
            "--requests" => config.requests = number("--requests", &value("--requests")?)?,
            "--tenants" => {
                let tenants = number("--tenants", &value("--tenants")?)?;
                config.tenants = u32::try_from(tenants)
                    .ok()
                    .filter(|&tenants| (1..=1_000).contains(&tenants))
                    .ok_or_else(|| format!("invalid --tenants `{tenants}`: use 1 to 1000"))?;
            }
            "--seed" => config.seed = number("--seed", &value("--seed")?)?,
            "--pace" => {
                let pace = number("--pace", &value("--pace")?)?;
                config.pace = u32::try_from(pace)
                    .map_err(|_| format!("invalid --pace `{pace}`: use at most {}", u32::MAX))?;
            }
            "--no-progress" => config.progress = false,
            other => return Err(format!("unknown option `{other}`; see --help")),
        }
    }
    if config.requests == 0 {
        return Err("invalid --requests `0`: send at least one request".to_owned());
    }
    Ok(Parsed::Run(config))
}

fn number(name: &str, text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("invalid {name} `{text}`: use a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn parse_reads_every_option() {
        let Parsed::Run(config) = parse(&args(&[
            "--backend",
            "redis",
            "--requests",
            "50",
            "--tenants",
            "3",
            "--seed",
            "9",
            "--pace",
            "0",
            "--no-progress",
        ]))
        .unwrap() else {
            panic!("expected a run");
        };
        assert_eq!(config.backend, Backend::Redis);
        assert_eq!(config.requests, 50);
        assert_eq!(config.tenants, 3);
        assert_eq!(config.seed, 9);
        assert_eq!(config.pace, 0);
        assert!(!config.progress);
    }

    #[test]
    fn parse_rejects_bad_values() {
        assert!(
            parse(&args(&["--requests", "0"]))
                .unwrap_err()
                .contains("--requests")
        );
        assert!(
            parse(&args(&["--tenants", "0"]))
                .unwrap_err()
                .contains("--tenants")
        );
        assert!(
            parse(&args(&["--seed", "x"]))
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            parse(&args(&["--backend", "kafka"]))
                .unwrap_err()
                .contains("no gopulse primitive")
        );
        assert!(
            parse(&args(&["--backend"]))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse(&args(&["--colour"]))
                .unwrap_err()
                .contains("unknown option")
        );
    }
}
