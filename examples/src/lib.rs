//! Shared code of the runnable examples: the tour and the axum order
//! service live here so that their tests can run them.

pub mod service;
pub mod tour;
