//! SQLite: the writer thread that owns the write connection (group commit) and the
//! checkpointer.

pub(crate) mod writer;
