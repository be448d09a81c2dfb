//! GCRA, token bucket, leaky bucket and window rate limiters, in-process and on Redis.
