//! Keyed local locks and fenced distributed leases on Redis and PostgreSQL.
