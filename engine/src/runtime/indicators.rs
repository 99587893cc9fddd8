//! The indicators as the engine serves them: tallies of the stored parts and facts, folded in
//! the background, and the rows the dashboards show.

use crate::error::Error;
use crate::indicators::kpi::{Compare, Query};
use crate::indicators::tally::Tally;
use crate::runtime::Engine;
use crate::store::Backend;
use guichet_definitions::model::BuildingBlock;
use sqlx::Row;
use std::collections::HashMap;

use crate::indicators::kpi::{KpiRow, LeadTime, MatrixRow, StepRow};
use crate::indicators::rollup::{
    FOLD_BATCH, FOLD_STEP, RollupKey, Scope, add_to_rollup, day_start, fetch, group_label,
    month_start, read_facts, stored_part, whole_days, whole_months,
};

impl Engine {
    /// The declared indicators of each desk, per group.
    pub async fn kpis(&self, q: &Query) -> Result<Vec<KpiRow>, Error> {
        let defs = self.desks().await?;
        Ok(self.tally(q).await?.kpi_rows(&defs))
    }

    /// The lead time of the ended requests of each desk, per group.
    pub async fn lead_times(&self, q: &Query) -> Result<Vec<LeadTime>, Error> {
        Ok(self.tally(q).await?.lead_times())
    }

    /// Per-step timings of each desk, per group, slowest steps first.
    pub async fn step_timings(&self, q: &Query) -> Result<Vec<StepRow>, Error> {
        let defs = self.desks().await?;
        Ok(self.tally(q).await?.step_rows(&defs))
    }

    /// The white paper's maturity x performance matrix, per desk and building block.
    pub async fn maturity_matrix(&self, q: &Query) -> Result<Vec<MatrixRow>, Error> {
        let defs = self.desks().await?;
        let kpis = self
            .kpis(&Query {
                compare: Compare::Model,
                ..q.clone()
            })
            .await?;
        let mut out = Vec::new();
        for (desk, p) in &defs {
            if !q.desks.is_empty() && !q.desks.contains(desk) {
                continue;
            }
            for (_, block) in BuildingBlock::ALL {
                let facts: Vec<bool> = p
                    .maturity
                    .iter()
                    .filter(|f| f.block == block)
                    .map(|f| f.present)
                    .collect();
                #[allow(clippy::cast_precision_loss)]
                let maturity = (!facts.is_empty())
                    .then(|| facts.iter().filter(|x| **x).count() as f64 / facts.len() as f64);
                let judged: Vec<bool> = kpis
                    .iter()
                    .filter(|k| k.desk == *desk && k.block == block)
                    .filter_map(|k| k.meets_target)
                    .collect();
                #[allow(clippy::cast_precision_loss)]
                let performance = (!judged.is_empty())
                    .then(|| judged.iter().filter(|x| **x).count() as f64 / judged.len() as f64);
                if maturity.is_none() && performance.is_none() {
                    continue;
                }
                let quadrant = match (maturity.map(|m| m >= 0.5), performance.map(|p| p >= 0.5)) {
                    (Some(true), Some(true)) => "done",
                    (Some(false), Some(false)) => "priority",
                    (Some(_), Some(_)) => "not a priority",
                    _ => "not enough data",
                };
                out.push(MatrixRow {
                    desk: desk.clone(),
                    block,
                    maturity,
                    performance,
                    quadrant,
                });
            }
        }
        Ok(out)
    }
}

impl Engine {
    /// What the requests the query selects add up to, per desk and group: the stored parts
    /// of the whole months and days of the period, and the facts of the rest, in one
    /// snapshot.
    pub(crate) async fn tally(&self, q: &Query) -> Result<Tally, Error> {
        let mut tx = self.store().pool.begin().await?;
        if self.store().backend == Backend::Postgres {
            // One snapshot for every statement (SQLite's read transactions already are).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let (from, to) = (
            q.from.map_or(i64::MIN, |t| t.0),
            q.to.map_or(i64::MAX, |t| t.0),
        );
        // Whole months from the monthly parts, the other whole days from the daily ones, the
        // rest from the facts. The parts are kept for all requests and for those of each
        // intake answer: a query filtered on more than one answer reads facts only.
        let (field, value) = match q.filters.as_slice() {
            [] => (Some(""), Some("")),
            [(f, v)] => (Some(f.as_str()), Some(v.as_str())),
            _ => (None, None),
        };
        let ((ma, mb), (da, db)) = if field.is_some() {
            let days = whole_days(q.from, q.to);
            // No whole day: all from the facts.
            let days = if days.0 < days.1 { days } else { (to, to) };
            (whole_months(q.from, q.to), days)
        } else {
            ((to, to), (to, to))
        };
        let mut tally = Tally::default();
        let rows = sqlx::query(
            "SELECT desk, revision, start, part FROM kpi_rollups \
             WHERE field = $5 AND value = $6 AND ((grain = 'month' AND start >= $1 AND start < $2) \
             OR (grain = 'day' AND start >= $3 AND start < $4 AND NOT (start >= $1 AND start < $2)))",
        )
        .bind(ma)
        .bind(mb)
        .bind(da)
        .bind(db)
        .bind(field.unwrap_or_default())
        .bind(value.unwrap_or_default())
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let desk: String = r.try_get(0)?;
            if !q.desks.is_empty() && !q.desks.contains(&desk) {
                continue;
            }
            let part = stored_part(&desk, &r.try_get::<Vec<u8>, _>(3)?)?;
            let group = group_label(q.compare, r.try_get(1)?, r.try_get(2)?);
            tally.merge(&desk, &group, &part);
        }
        // The facts of the rest, in three disjoint parts: before the whole days, after them,
        // and the requests of the whole days not folded yet.
        let scopes = [
            Scope::Ended {
                from,
                to: da.min(to),
                filters: &q.filters,
            },
            Scope::Ended {
                from: db.max(from),
                to,
                filters: &q.filters,
            },
            Scope::Pending {
                from: da,
                to: db,
                filters: &q.filters,
            },
        ];
        for scope in &scopes {
            let (Scope::Ended { from, to, .. } | Scope::Pending { from, to, .. }) = scope else {
                continue;
            };
            if from >= to {
                continue;
            }
            let rest = read_facts(&mut tx, scope, &q.desks, |_, revision, ended| {
                group_label(q.compare, revision, ended)
            })
            .await?;
            for (desk, group, part) in rest.parts() {
                tally.merge(desk, group, part);
            }
        }
        tx.rollback().await?;
        Ok(tally)
    }

    /// Folds up to `most` ended requests, [`FOLD_STEP`] per transaction, while there are
    /// some; returns how many. What `serve` runs: a fold holds SQLite's write turn, and the
    /// requests' commands wait meanwhile (2,000 at once stalled them all for 150 ms under
    /// load).
    pub async fn fold_some_indicators(&self, most: usize) -> Result<usize, Error> {
        let mut total = 0;
        while total < most {
            let n = self.fold_indicators(FOLD_STEP).await?;
            total += n;
            if i64::try_from(n).unwrap_or(0) < FOLD_STEP {
                break;
            }
        }
        Ok(total)
    }

    /// Folds every ended request not folded yet, a batch at a time; returns how many.
    pub async fn fold_all_indicators(&self) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            match self.fold_indicators(FOLD_BATCH).await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Folds up to `limit` ended requests into the stored parts of their day and month, in
    /// one transaction; returns how many. One fold runs at a time, whichever the node.
    pub async fn fold_indicators(&self, limit: i64) -> Result<usize, Error> {
        // Most passes find nothing: look before taking the write lock.
        if sqlx::query("SELECT instance FROM kpi_pending LIMIT 1")
            .fetch_optional(&self.store().pool)
            .await?
            .is_none()
        {
            return Ok(0);
        }
        let (_turn, mut tx) = self.store().begin_write().await?;
        // The lock: a second node folding waits here until this fold commits.
        sqlx::query("UPDATE kpi_fold SET folded_at = $1 WHERE id = 1")
            .bind(self.now().0)
            .execute(&mut *tx)
            .await?;
        let ids: Vec<String> =
            sqlx::query("SELECT instance FROM kpi_pending ORDER BY instance LIMIT $1")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        // Each request on its own, then added to its day's part and its month's, and to
        // those of each of its intake answers (so that a comparison filtered on one answer
        // reads parts too).
        let requests = read_facts(&mut tx, &Scope::Ids(&ids), &[], |id, revision, ended| {
            (id.to_owned(), revision, day_start(ended))
        })
        .await?;
        let (condition, args) = Scope::Ids(&ids).condition();
        let mut answers: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in fetch(
            &mut tx,
            "SELECT f.instance, f.field, f.value FROM instance_fields f JOIN instances i ON i.id = f.instance",
            &(condition, args),
        )
        .await?
        {
            answers
                .entry(r.try_get(0)?)
                .or_default()
                .push((r.try_get(1)?, r.try_get(2)?));
        }
        let none = (String::new(), String::new());
        let mut parts: Tally<RollupKey> = Tally::default();
        for (desk, (id, revision, day), part) in requests.parts() {
            let month = month_start(*day);
            let intake = answers.get(id).map_or(&[][..], Vec::as_slice);
            for (field, value) in std::iter::once(&none).chain(intake) {
                let (f, v) = (field.clone(), value.clone());
                parts.merge(desk, &("day", *revision, *day, f.clone(), v.clone()), part);
                parts.merge(desk, &("month", *revision, month, f, v), part);
            }
        }
        for (desk, key, part) in parts.into_parts() {
            add_to_rollup(&mut tx, &desk, &key, &part).await?;
        }
        let marks: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "DELETE FROM kpi_pending WHERE instance IN ({})",
            marks.join(", ")
        );
        let mut delete = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            delete = delete.bind(id.clone());
        }
        let deleted = delete.execute(&mut *tx).await?.rows_affected();
        if deleted != ids.len() as u64 {
            // Cannot happen under the lock; refuse rather than count a request twice.
            tx.rollback().await?;
            return Err(Error::Conflict(
                "the indicators were folded by someone else meanwhile".into(),
            ));
        }
        tx.commit().await?;
        Ok(ids.len())
    }
}
