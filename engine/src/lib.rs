//! The runtime of guichet: it runs every request of a deployed desk process through its steps.
//!
//! - [`core`]: the functional core, a pure state machine over a checked
//!   [`Process`](guichet_definitions::Process);
//! - [`lifecycle`]: the transition tables of instances, tasks, timers and outbox messages;
//! - [`clock`]: injected time.
//!
//! Persistence (SQLite and PostgreSQL, one transaction per command) is the imperative shell
//! around the core; it arrives in the following steps of the engine issue.

pub mod clock;
pub mod core;
pub mod lifecycle;

/// The definition model the engine executes, re-exported for the crates above.
pub use guichet_definitions as definitions;
