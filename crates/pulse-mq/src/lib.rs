//! Publish/subscribe API with a middleware router, in-memory broker and Redis Streams.
