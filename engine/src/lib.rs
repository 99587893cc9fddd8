//! The runtime of guichet: it will run every request of a deployed desk process through its
//! steps, durably (SQLite or PostgreSQL), with timers, an outbox and an append-only history.
//!
//! This crate is a placeholder until the engine issue lands; it exists now so that the crate
//! graph (`web`, `connectors` -> `engine` -> `definitions`) is fixed from the start.

/// The definition model the engine executes, re-exported for the crates above.
pub use guichet_definitions as definitions;
