//! Shared code of the runnable examples: the tour's order service lives
//! here so that its tests can run it with a small workload.

pub mod tour;
