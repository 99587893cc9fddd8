//! Why an engine operation failed: the one error type of every layer of the engine (the core's
//! refusals, the store's faults, the runtime's conflicts), so that each can say what it met
//! without importing the layers above it.

use guichet_definitions::Diagnostic;

use crate::core;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command is not valid for the request as it stands (nothing changed).
    #[error(transparent)]
    Refused(#[from] core::Error),
    /// Someone else got there first (the task was completed meanwhile, for example).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A definition to deploy has errors.
    #[error("the definition has {} error(s)", .0.iter().filter(|d| d.is_error()).count())]
    Definition(Vec<Diagnostic>),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A SQLite connection of the engine's own (the writer thread's, a reader) failed, or the
    /// writer thread stopped.
    #[error("database: {0}")]
    Sqlite(String),
    /// Writing an export failed.
    #[error("cannot write: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data that cannot be read back (a bug or tampering).
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupt(e.to_string())
}
