//! Reading a request's history back, and checking every request's hash chain.

use crate::error::{Error, corrupt};
use crate::runtime::Engine;
use crate::store::db::{Db as _, V};
use crate::store::history::{AuditReport, HistoryRow, chain, check, check_columns, genesis};
use crate::store::{in_long_read, in_read};

/// A request's history rows, in order: (seq, body, the chain's head before, after).
const ROWS: &str =
    "SELECT seq, body, prev_hash, hash FROM history WHERE instance = $1 ORDER BY seq";

/// The same, with the columns the hash does not cover (`at`, `event`), for the audit.
const AUDITED: &str = "SELECT seq, body, prev_hash, hash, at, event FROM history \
                       WHERE instance = $1 ORDER BY seq";

impl Engine {
    /// The history of a request, in order, one item an event.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryRow>, Error> {
        let key = [V::Text(id.to_owned())];
        let rows = in_read!(self.store(), |db| db.rows(ROWS.into(), &key))?;
        let mut out = Vec::with_capacity(rows.len() * 8);
        for r in &rows {
            let (seq, body, prev_hash, hash) = (r.int(0)?, r.text(1)?, r.text(2)?, r.text(3)?);
            // Shown as stored: the last event with the row's hash, the others with the heads
            // computed from the row's start (a broken chain is `verify_audit`'s to report).
            let mut entries = chain(id, seq, &body, &prev_hash).map_err(corrupt)?;
            if let Some(last) = entries.last_mut() {
                last.2 = hash;
            }
            for (text, seq, hash) in entries {
                out.push(HistoryRow {
                    seq,
                    event: serde_json::from_str(text).map_err(corrupt)?,
                    hash,
                });
            }
        }
        Ok(out)
    }

    /// Recomputes every history chain; reports the first broken link.
    pub async fn verify_audit(&self) -> Result<AuditReport, Error> {
        let sql = "SELECT id, history_seq, history_head FROM instances ORDER BY id";
        let instances = in_long_read!(self.store(), |db| db.rows(sql.into(), &[]))?;
        let mut report = AuditReport {
            instances: instances.len(),
            events: 0,
            broken: None,
        };
        for inst in &instances {
            // A long walk: let the worker's other tasks run between requests.
            tokio::task::yield_now().await;
            let (id, last, head) = (inst.text(0)?, inst.int(1)?, inst.text(2)?);
            let key = [V::Text(id.clone())];
            let rows = in_long_read!(self.store(), |db| db.rows(AUDITED.into(), &key))?;
            let mut prev = genesis(&id);
            let mut expected = 1;
            for r in &rows {
                let (seq, body, prev_hash, hash) = (r.int(0)?, r.text(1)?, r.text(2)?, r.text(3)?);
                let (at, event) = (r.int(4)?, r.text(5)?);
                let checked = check(&id, expected, &prev, (seq, &body, &prev_hash, &hash))
                    .and_then(|events| {
                        check_columns(&body, at, &event).map_err(|why| (expected, why))?;
                        Ok(events)
                    });
                match checked {
                    Ok(events) => {
                        report.events += events;
                        prev = hash;
                        expected = seq + 1;
                    }
                    Err((at, problem)) => {
                        report.broken = Some((id, at, problem));
                        return Ok(report);
                    }
                }
            }
            if expected - 1 != last || prev != head {
                report.broken = Some((
                    id.clone(),
                    expected,
                    "the latest entries were removed".to_owned(),
                ));
                return Ok(report);
            }
        }
        // Entries of no request (on PostgreSQL no foreign key keeps them out: migration 16).
        let sql = "SELECT instance, MIN(seq) FROM history WHERE instance NOT IN (SELECT id FROM instances) \
             GROUP BY instance ORDER BY instance LIMIT 1";
        if let Some(r) = in_long_read!(self.store(), |db| db.row(sql.into(), &[]))? {
            report.broken = Some((
                r.text(0)?,
                r.int(1)?,
                "history of a request that does not exist".to_owned(),
            ));
        }
        Ok(report)
    }
}
