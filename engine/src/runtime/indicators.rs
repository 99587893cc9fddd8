//! The indicators as the engine serves them: tallies of the stored parts and facts, folded in
//! the background, and the rows the dashboards show.

use guichet_definitions::model::BuildingBlock;

use crate::error::Error;
use crate::indicators::facts::{self, VISIT_COLUMNS};
use crate::indicators::kpi::{Compare, Indicators, KpiRow, LeadTime, MatrixRow, Query, StepRow};
use crate::indicators::rollup::{self, FOLD_BATCH, FOLD_STEP};
use crate::indicators::tally::Tally;
use crate::runtime::Engine;
use crate::store::db::{Db as _, Statement, V, inserts};
use crate::store::rows::FactsRows;
use crate::store::sqlite::writer::ready;
use crate::store::{in_kept_transaction, in_read, in_snapshot};

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

    /// The declared indicators, the lead time and the per-step timings of each desk, per
    /// group, from one tally.
    pub async fn indicators(&self, q: &Query) -> Result<Indicators, Error> {
        let defs = self.desks().await?;
        let tally = self.tally(q).await?;
        Ok(Indicators {
            indicators: tally.kpi_rows(&defs),
            lead_times: tally.lead_times(),
            steps: tally.step_rows(&defs),
        })
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
        in_snapshot!(self.store(), |db| rollup::tally(db, q))
    }

    /// Folds up to `most` ended requests, [`FOLD_STEP`] per transaction, while there are
    /// some; returns how many. What `serve` runs: a fold holds SQLite's write turn, and the
    /// requests' commands wait meanwhile (2,000 at once stalled them all for 150 ms under
    /// load).
    pub async fn fold_some_indicators(&self, most: usize) -> Result<usize, Error> {
        self.refresh_stale_facts(FOLD_STEP).await?;
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
        while self.refresh_stale_facts(FOLD_STEP).await? > 0 {}
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
        let sql = "SELECT instance FROM kpi_pending LIMIT 1";
        if in_read!(self.store(), |db| db.row(sql.into(), &[]))?.is_none() {
            return Ok(0);
        }
        let now = self.now().0;
        match &self.store().writer {
            Some(writer) => {
                writer
                    .write(move |db| ready(rollup::fold(db, limit, now)))
                    .await
            }
            None => in_kept_transaction!(self.store(), |db| rollup::fold(db, limit, now)),
        }
    }

    /// Whether no request's facts are stale any more (after [`Engine::refresh_stale_facts`]
    /// found none).
    pub fn facts_fresh(&self) -> bool {
        self.facts_fresh.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Derives again from their history the step visits of up to `limit` ended requests
    /// whose facts an upgrade made stale (`facts_stale`, filled by the migration that
    /// changed what a visit is); returns how many. The folds run it first, and leave stale
    /// requests unfolded. A request stored without its history (`simulate --store`) keeps
    /// the visits it has.
    pub async fn refresh_stale_facts(&self, limit: i64) -> Result<usize, Error> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.facts_fresh.load(Relaxed) {
            return Ok(0);
        }
        let sql = "SELECT s.instance, i.definition FROM facts_stale s \
                   JOIN instances i ON i.id = s.instance ORDER BY s.instance LIMIT $1";
        let stale = in_read!(self.store(), |db| db.rows(sql.into(), &[V::Int(limit)]))?;
        if stale.is_empty() {
            self.facts_fresh.store(true, Relaxed);
            return Ok(0);
        }
        let mut statements: Vec<Statement> = Vec::new();
        for r in &stale {
            let (id, hash) = (r.text(0)?, r.text(1)?);
            let key = || vec![V::Text(id.clone())];
            let process = in_read!(self.store(), |db| self.process(db, &hash))?;
            let rows = in_read!(self.store(), |db| FactsRows::read(db, &id, i64::MAX))?;
            if !rows.history.is_empty() {
                let (mut events, mut due) = (Vec::new(), std::collections::BTreeMap::new());
                rows.parse_into(i64::MAX, &mut events, &mut due)?;
                let visits = facts::visits(&process, &events, &due);
                statements.push(("DELETE FROM step_visits WHERE instance = $1".into(), key()));
                statements.extend(inserts(
                    "step_visits",
                    VISIT_COLUMNS,
                    visits.iter().map(|v| v.row(&id)).collect(),
                ));
            }
            statements.push(("DELETE FROM facts_stale WHERE instance = $1".into(), key()));
        }
        if statements.is_empty() {
            return Ok(0);
        }
        self.write_all(statements).await?;
        Ok(stale.len())
    }
}
