//! Reading a request's history back, and checking every request's hash chain.

use crate::error::{Error, corrupt};
use crate::runtime::Engine;
use crate::store::history::*;
use sqlx::Row as _;

impl Engine {
    /// The history of a request, in order, one item an event.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryRow>, Error> {
        let rows = sqlx::query(
            "SELECT seq, body, prev_hash, hash FROM history WHERE instance = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.store().pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len() * 8);
        for r in &rows {
            let (seq, body, prev_hash, hash): (i64, String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
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
        let instances =
            sqlx::query("SELECT id, history_seq, history_head FROM instances ORDER BY id")
                .fetch_all(&self.store().pool)
                .await?;
        let mut report = AuditReport {
            instances: instances.len(),
            events: 0,
            broken: None,
        };
        for inst in &instances {
            let id: String = inst.try_get(0)?;
            let last: i64 = inst.try_get(1)?;
            let head: String = inst.try_get(2)?;
            let rows = sqlx::query(
                "SELECT seq, body, prev_hash, hash FROM history WHERE instance = $1 ORDER BY seq",
            )
            .bind(&id)
            .fetch_all(&self.store().pool)
            .await?;
            let mut prev = genesis(&id);
            let mut expected = 1;
            for r in &rows {
                let (seq, body, prev_hash, hash): (i64, String, String, String) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
                match check(&id, expected, &prev, (seq, &body, &prev_hash, &hash)) {
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
        let orphan = sqlx::query(
            "SELECT instance, MIN(seq) FROM history WHERE instance NOT IN (SELECT id FROM instances) \
             GROUP BY instance ORDER BY instance LIMIT 1",
        )
        .fetch_optional(&self.store().pool)
        .await?;
        if let Some(r) = orphan {
            report.broken = Some((
                r.try_get(0)?,
                r.try_get(1)?,
                "history of a request that does not exist".to_owned(),
            ));
        }
        Ok(report)
    }
}
