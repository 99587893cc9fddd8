//! PostgreSQL: the reads of commands made together, and the group commit of their writes.

pub(crate) mod reader;
pub(crate) mod writer;
