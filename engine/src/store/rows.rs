//! The rows of a request that a command reads before it runs, on either backend.

use crate::error::Error;
use crate::store::db::{Db, V};

/// A request's row as a command reads it: its definition, state, version and history tip.
#[derive(Debug, Clone)]
pub(crate) struct CommandRow {
    pub(crate) definition: String,
    pub(crate) state: String,
    pub(crate) row_version: i64,
    pub(crate) history_seq: i64,
    pub(crate) history_head: String,
}

impl CommandRow {
    /// Its columns of `instances`, in the order [`CommandRow::from_row`] reads them.
    pub(crate) const COLUMNS: &str = "definition, state, row_version, history_seq, history_head";

    /// From a row whose first columns are [`CommandRow::COLUMNS`].
    pub(crate) fn from_row(r: &crate::store::db::Row) -> Result<CommandRow, Error> {
        Ok(CommandRow {
            definition: r.text(0)?,
            state: r.text(1)?,
            row_version: r.int(2)?,
            history_seq: r.int(3)?,
            history_head: r.text(4)?,
        })
    }
}

/// What the facts of a request that ends are derived from: its history rows (`seq`, `body`)
/// and its tasks' deadlines (`seq`, `due_at`), as stored before the ending command.
#[derive(Debug, Clone, Default)]
pub(crate) struct FactsRows {
    pub(crate) history: Vec<(i64, String)>,
    pub(crate) due: Vec<(i64, i64)>,
}

impl FactsRows {
    /// Read with the connection of the command (on PostgreSQL a node reads those of the
    /// requests ending at once together: [`crate::store::read_facts`]).
    pub(crate) async fn read<D: Db>(db: &mut D, id: &str, tip: i64) -> Result<FactsRows, Error> {
        let key = || V::Text(id.to_owned());
        let history = db
            .rows(
                "SELECT seq, body FROM history WHERE instance = $1 AND seq <= $2".into(),
                &[key(), V::Int(tip)],
            )
            .await?;
        let due = db
            .rows(
                "SELECT seq, due_at FROM tasks WHERE instance = $1 AND due_at IS NOT NULL".into(),
                &[key()],
            )
            .await?;
        Ok(FactsRows {
            history: history
                .iter()
                .map(|r| Ok((r.int(0)?, r.text(1)?)))
                .collect::<Result<_, Error>>()?,
            due: due
                .iter()
                .map(|r| Ok((r.int(0)?, r.int(1)?)))
                .collect::<Result<_, Error>>()?,
        })
    }

    /// Appends to `events` those of the history up to `tip` (a later entry means that the
    /// request changed since it was read), in order, and to `due` the tasks' deadlines.
    pub(crate) fn parse_into(
        mut self,
        tip: i64,
        events: &mut Vec<crate::core::Event>,
        due: &mut std::collections::BTreeMap<u32, crate::clock::Timestamp>,
    ) -> Result<(), Error> {
        self.history.retain(|(seq, _)| *seq <= tip);
        self.history.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, body) in &self.history {
            events.extend(crate::store::history::events(body)?);
        }
        for (seq, at) in self.due {
            let seq = u32::try_from(seq).map_err(crate::error::corrupt)?;
            due.insert(seq, crate::clock::Timestamp(at));
        }
        Ok(())
    }
}
