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
    /// An argument the engine does not know (an unknown filter, say); the message names the
    /// values it takes.
    #[error("{0}")]
    Invalid(String),
    /// A submission key sent again with a different submission (its first request's
    /// reference): a retry must send the same thing, a new request a new key.
    #[error(
        "this submission key was already used for a different request ({0}); send a new key with a new request"
    )]
    KeyReused(String),
    /// A definition to deploy has errors.
    #[error("the definition has {} error(s)", .0.iter().filter(|d| d.is_error()).count())]
    Definition(Vec<Diagnostic>),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A SQLite connection of the engine's own (the writer thread's, a reader) could not
    /// answer now (busy, locked), or the writer thread stopped.
    #[error("database: {0}")]
    Sqlite(String),
    /// SQLite failed in a way that waiting does not mend: the disk full, the file read-only,
    /// corrupt or not a database, an I/O error. An incident for the operator, not "try
    /// again" for the caller.
    #[error("database fault: {0}")]
    SqliteFault(String),
    /// Writing an export failed.
    #[error("cannot write: {0}")]
    Io(#[from] std::io::Error),
    /// This node cannot do its work now though its database answers (a background worker
    /// failing or stuck): what readiness reports.
    #[error("not ready: {0}")]
    Unready(String),
    /// Stored data that cannot be read back (a bug or tampering).
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

/// What kind of failure an error is: what the person or program that asked is to be told.
/// Each layer above answers by kind (web pages and the API have one status per kind), never by
/// reading the message of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// What was sent is not valid (a form's fields, an outcome, a definition with errors):
    /// fix it and send again. Nothing changed.
    Invalid,
    /// Not possible on the request as it stands (closed, already done, claimed by someone
    /// else, not yet due). Nothing changed.
    Refused,
    /// Not there, or not the caller's to see.
    NotFound,
    /// The database cannot answer now (away, overloaded): the same call may succeed later.
    Unavailable,
    /// A fault of ours (a bug, corrupt data, a failed write of an export): nothing the caller
    /// can fix. The message is for the operator's log, never for the caller.
    Internal,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Refused(e) if e.is_internal() => Kind::Internal,
            Error::Refused(
                core::Error::Invalid(_)
                | core::Error::OutcomeRequired(_)
                | core::Error::UnknownOutcome { .. }
                | core::Error::NoOutcomes(_),
            )
            | Error::Definition(_)
            | Error::KeyReused(_)
            | Error::Invalid(_) => Kind::Invalid,
            Error::Refused(_) | Error::Conflict(_) => Kind::Refused,
            Error::NotFound(_) => Kind::NotFound,
            Error::Database(e) if transient(e) => Kind::Unavailable,
            // The writer thread's and readers' own SQLite errors (busy, or the thread gone).
            Error::Sqlite(_) | Error::Unready(_) => Kind::Unavailable,
            Error::Database(_) | Error::SqliteFault(_) => Kind::Internal,
            Error::Io(_) | Error::Corrupt(_) => Kind::Internal,
        }
    }
}

/// Whether a database error may pass by itself: the server away or restarting, the
/// connection lost, every connection busy (SQLSTATE classes 08, 53 and 57, and
/// serialization failures).
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            ["08", "53", "57"].iter().any(|class| c.starts_with(class)) || c == "40001"
        }),
        _ => false,
    }
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupt(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{Error, Kind};
    use crate::core;

    #[test]
    fn each_error_has_the_kind_its_caller_answers_by() {
        let refused = |e| Error::Refused(e).kind();
        assert_eq!(
            refused(core::Error::Internal("lost token".into())),
            Kind::Internal
        );
        assert_eq!(refused(core::Error::Livelock), Kind::Internal);
        assert_eq!(refused(core::Error::Invalid(vec![])), Kind::Invalid);
        assert_eq!(refused(core::Error::OutcomeRequired(vec![])), Kind::Invalid);
        assert_eq!(refused(core::Error::UnknownTask(3)), Kind::Refused);
        assert_eq!(
            Error::Conflict("done meanwhile".into()).kind(),
            Kind::Refused
        );
        assert_eq!(Error::NotFound("request x".into()).kind(), Kind::NotFound);
        assert_eq!(Error::Definition(vec![]).kind(), Kind::Invalid);
        assert_eq!(Error::KeyReused("AB12CD34".into()).kind(), Kind::Invalid);
        assert_eq!(
            Error::Database(sqlx::Error::PoolTimedOut).kind(),
            Kind::Unavailable
        );
        assert_eq!(Error::Corrupt("not json".into()).kind(), Kind::Internal);
        // SQLite: busy and locked pass; a full disk, a read-only or corrupt file do not.
        let sqlite = |code| {
            Error::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
            .kind()
        };
        assert_eq!(sqlite(rusqlite::ffi::SQLITE_BUSY), Kind::Unavailable);
        assert_eq!(sqlite(rusqlite::ffi::SQLITE_LOCKED), Kind::Unavailable);
        for code in [
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_CORRUPT,
            rusqlite::ffi::SQLITE_NOTADB,
            rusqlite::ffi::SQLITE_IOERR,
        ] {
            assert_eq!(sqlite(code), Kind::Internal, "SQLite code {code}");
        }
        let io = std::io::Error::other("disk full");
        assert_eq!(Error::Io(io).kind(), Kind::Internal);
    }
}
