//! The tour's summary table and progress bar.

use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write as _};
use std::time::Duration;

use super::Config;

/// Requests, admissions and rejections of one tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantCounts {
    /// The tenant's name.
    pub name: String,
    /// Requests it sent.
    pub requests: u64,
    /// Requests the rate limiter let through.
    pub admitted: u64,
    /// Requests the rate limiter turned away.
    pub rejected: u64,
}

impl TenantCounts {
    pub(crate) fn record(&mut self, allowed: bool) {
        self.requests += 1;
        if allowed {
            self.admitted += 1;
        } else {
            self.rejected += 1;
        }
    }
}

/// The counts of one tour run.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The `--backend` name.
    pub backend: String,
    /// Each primitive and the backend it ran on.
    pub choices: Vec<(&'static str, &'static str)>,
    /// Per-tenant counts, in tenant order.
    pub tenants: Vec<TenantCounts>,
    /// Order IDs generated.
    pub ids_issued: u64,
    /// Product lookups.
    pub cache_lookups: u64,
    /// Product lookups served from the local tier.
    pub cache_hits: u64,
    /// Per-order locks taken.
    pub locks_taken: u64,
    /// Order events published.
    pub published: u64,
    /// Order events handled by the consumer.
    pub handled: u64,
    /// Events handled more than once.
    pub duplicates: u64,
    /// Follow-up jobs scheduled.
    pub follow_ups_scheduled: u64,
    /// Follow-up jobs that ran.
    pub follow_ups_fired: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Summary {
    pub(crate) fn new(
        config: &Config,
        choices: &[(&'static str, &'static str)],
        tenants: &[String],
    ) -> Summary {
        Summary {
            backend: config.backend.to_string(),
            choices: choices.to_vec(),
            tenants: tenants
                .iter()
                .map(|name| TenantCounts {
                    name: name.clone(),
                    ..TenantCounts::default()
                })
                .collect(),
            ids_issued: 0,
            cache_lookups: 0,
            cache_hits: 0,
            locks_taken: 0,
            published: 0,
            handled: 0,
            duplicates: 0,
            follow_ups_scheduled: 0,
            follow_ups_fired: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// Returns the requests sent by all tenants.
    pub fn requests(&self) -> u64 {
        self.tenants.iter().map(|tenant| tenant.requests).sum()
    }

    /// Returns the requests admitted for all tenants.
    pub fn admitted(&self) -> u64 {
        self.tenants.iter().map(|tenant| tenant.admitted).sum()
    }

    /// Returns the requests rejected for all tenants.
    pub fn rejected(&self) -> u64 {
        self.tenants.iter().map(|tenant| tenant.rejected).sum()
    }

    /// Returns whether every event was handled exactly once and every
    /// follow-up fired.
    pub fn is_consistent(&self) -> bool {
        self.published == self.admitted()
            && self.handled == self.published
            && self.duplicates == 0
            && self.follow_ups_fired == self.follow_ups_scheduled
    }

    fn hit_ratio(&self) -> f64 {
        if self.cache_lookups == 0 {
            return 0.0;
        }
        self.cache_hits as f64 * 100.0 / self.cache_lookups as f64
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backends: Vec<String> = self
            .choices
            .iter()
            .map(|(primitive, backend)| format!("{primitive}: {backend}"))
            .collect();
        writeln!(f, "gopulse tour, backend {}", self.backend)?;
        writeln!(f, "  {}", backends.join(", "))?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10}",
            "tenant", "requests", "admitted", "rejected"
        )?;
        for tenant in &self.tenants {
            writeln!(
                f,
                "{:<12} {:>10} {:>10} {:>10}",
                tenant.name, tenant.requests, tenant.admitted, tenant.rejected
            )?;
        }
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10}",
            "total",
            self.requests(),
            self.admitted(),
            self.rejected()
        )?;
        writeln!(f)?;
        let mut rows = String::new();
        let _ = writeln!(rows, "{:<20} {:>10}", "IDs issued", self.ids_issued);
        let _ = writeln!(rows, "{:<20} {:>9.1}%", "cache hit ratio", self.hit_ratio());
        let _ = writeln!(rows, "{:<20} {:>10}", "locks taken", self.locks_taken);
        let _ = writeln!(rows, "{:<20} {:>10}", "events published", self.published);
        let _ = writeln!(rows, "{:<20} {:>10}", "events handled", self.handled);
        let _ = writeln!(rows, "{:<20} {:>10}", "duplicates", self.duplicates);
        let _ = writeln!(
            rows,
            "{:<20} {:>10}",
            "follow-ups fired", self.follow_ups_fired
        );
        let _ = writeln!(
            rows,
            "{:<20} {:>9.2}s",
            "elapsed",
            self.elapsed.as_secs_f64()
        );
        f.write_str(&rows)
    }
}

/// A one-line progress bar on standard error, drawn only on a terminal.
pub struct Progress {
    enabled: bool,
    total: u64,
    drawn_percent: u64,
}

impl Progress {
    /// Creates a bar for `total` steps; `wanted` turns it off.
    pub fn new(wanted: bool, total: u64) -> Progress {
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            total: total.max(1),
            drawn_percent: u64::MAX,
        }
    }

    /// Redraws the bar when the percentage changed.
    pub fn update(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let percent = done * 100 / self.total;
        if percent == self.drawn_percent {
            return;
        }
        self.drawn_percent = percent;
        let filled = (percent / 4) as usize;
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(25 - filled));
        let mut stderr = std::io::stderr();
        let _ = write!(
            stderr,
            "\r[{bar}] {percent:>3}% {done}/{} requests",
            self.total
        );
        let _ = stderr.flush();
    }

    /// Ends the bar's line.
    pub fn finish(&mut self) {
        if self.enabled {
            eprintln!();
        }
    }
}
