//! Timing-wheel scheduler with DST-correct cron and distributed single runs.
