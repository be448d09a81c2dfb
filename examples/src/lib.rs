//! Shared code for the runnable examples of gopulse.
