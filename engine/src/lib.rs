//! The runtime of guichet: it runs every request of a deployed desk process through its steps.
//!
//! - [`core`]: the functional core, a pure state machine over a checked
//!   [`Process`](guichet_definitions::Process);
//! - [`lifecycle`]: the transition tables of instances, tasks, timers and outbox messages;
//! - [`clock`]: injected time.
//!
//! - [`runtime`]: the imperative shell, [`Engine`]: one transaction per command writes the
//!   state, tasks, timers, outbox and hash-chained history;
//! - [`store`]: the database (SQLite file by default, PostgreSQL), migrated at start.

/// Bytes as lowercase hexadecimal (hashes, tokens).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// SHA-256 as lowercase hexadecimal (content hashes of definitions, the history's chain).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(bytes))
}

#[cfg(test)]
#[test]
fn hex_is_lowercase_two_digits_a_byte() {
    assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    assert_eq!(hex(&[]), "");
}

pub mod calendar;
pub mod charts;
pub mod clock;
pub mod core;
pub(crate) mod db;
pub mod digest;
pub mod drive;
pub mod export;
pub mod facts;
pub mod fit;
pub mod history;
pub mod hot;
pub mod kpi;
pub mod lifecycle;
pub mod links;
pub mod outbox;
pub(crate) mod pg_reader;
pub(crate) mod pg_writer;
pub mod rollup;
pub mod runtime;
pub mod scenario;
pub mod seed;
pub mod sim;
pub mod store;
pub mod tally;
pub mod users;
pub(crate) mod writer;

pub use runtime::{Engine, Error};

/// The definition model the engine executes, re-exported for the crates above.
pub use guichet_definitions as definitions;
