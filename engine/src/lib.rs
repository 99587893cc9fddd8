//! The runtime of guichet: it runs every request of a deployed desk process through its steps.
//! In layers, each using only those below it (`ARCHITECTURE.md`; `scripts/deps` checks it):
//!
//! - [`core`]: the functional core, a pure state machine over a checked
//!   [`Process`](guichet_definitions::Process), with the transition tables of instances,
//!   tasks, timers and outbox messages ([`core::lifecycle`]);
//! - [`store`]: the database (SQLite file by default, PostgreSQL), migrated at start;
//! - [`indicators`]: what the facts of ended requests add up to (KPIs, charts, exports);
//! - [`runtime`]: the imperative shell, [`Engine`]: one transaction per command writes the
//!   state, tasks, timers, outbox and hash-chained history;
//! - [`sim`]: the simulator, its scenarios and what it fits from recorded requests;
//! - [`error`], [`clock`] (injected time) and [`calendar`] (working days), used by all.

/// SHA-256 as lowercase hexadecimal (content hashes of definitions, the history's chain).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

pub mod calendar;
pub mod clock;
pub mod core;
pub mod error;
pub mod indicators;
pub mod runtime;
pub mod sim;
pub mod store;

pub use error::Error;
pub use runtime::Engine;

/// The definition model the engine executes, re-exported for the crates above.
pub use guichet_definitions as definitions;
