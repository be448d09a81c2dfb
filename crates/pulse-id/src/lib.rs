//! Snowflake, UUIDv7, ULID and segment ID generators with leased worker ids.
