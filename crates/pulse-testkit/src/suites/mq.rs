//! Conformance suite for message queues: delivery, acknowledgement, redelivery and isolation of topics.
