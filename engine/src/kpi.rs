//! Indicators over ended requests: the desk's declared KPIs and the per-step timings,
//! grouped by desk model and optionally by revision or period, filtered by intake answers.
//! Computed from the facts each request leaves when it ends ([`crate::facts`]); the exact
//! definitions are in `docs/kpi.md`.

use std::collections::BTreeMap;

use guichet_definitions::model::{BuildingBlock, KpiKind, Process, TargetValue};
use serde::Serialize;
use sqlx::Row;

use crate::charts::esc;
use crate::clock::Timestamp;
use crate::runtime::{Engine, Error};

const DAY_MS: f64 = 86_400_000.0;

/// How to split the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compare {
    /// One group per desk model (always the case: models are compared side by side).
    #[default]
    Model,
    /// One group per deployed revision of each model.
    Version,
    /// One group per calendar month of the request's end (UTC).
    Month,
    /// One group per quarter of the request's end (UTC).
    Quarter,
}

/// Which requests count.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Desk names; empty for all.
    pub desks: Vec<String>,
    /// Requests that ended at or after this instant.
    pub from: Option<Timestamp>,
    /// Requests that ended before this instant.
    pub to: Option<Timestamp>,
    pub compare: Compare,
    /// Intake answers the requests must have (choice and yes-no fields), e.g. `cadre=autre`.
    pub filters: Vec<(String, String)>,
}

/// Statistics of a sample (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    /// First quartile.
    pub p25: f64,
    pub median: f64,
    /// Third quartile.
    pub p75: f64,
    pub p90: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(mut values: Vec<f64>) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = |p: f64| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        #[allow(clippy::cast_precision_loss)]
        let mean = values.iter().sum::<f64>() / n as f64;
        Some(Stats {
            n,
            mean,
            p25: rank(0.25),
            median: rank(0.5),
            p75: rank(0.75),
            p90: rank(0.9),
            p95: rank(0.95),
            min: values[0],
            max: values[n - 1],
        })
    }

    fn scaled(self, k: f64) -> Stats {
        Stats {
            mean: self.mean * k,
            p25: self.p25 * k,
            median: self.median * k,
            p75: self.p75 * k,
            p90: self.p90 * k,
            p95: self.p95 * k,
            min: self.min * k,
            max: self.max * k,
            ..self
        }
    }
}

/// One indicator for one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiRow {
    pub desk: String,
    /// The revision, month or quarter; empty when comparing models only.
    pub group: String,
    pub kpi: String,
    pub title: Option<String>,
    pub kind: &'static str,
    pub block: BuildingBlock,
    /// Ended requests in the group.
    pub requests: usize,
    /// The headline value: mean days for durations, total for counts and sums, the quotient
    /// for ratios, the mean for means. `None` when no request has the data.
    pub value: Option<f64>,
    pub unit: &'static str,
    /// Distribution (durations in days, means in the field's unit).
    pub stats: Option<Stats>,
    pub target: Option<f64>,
    pub lower_is_better: bool,
    pub meets_target: Option<bool>,
}

/// The lead time of the requests of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadTime {
    pub desk: String,
    pub group: String,
    /// In days.
    pub stats: Stats,
}

/// Timings of one step for one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    pub desk: String,
    pub group: String,
    pub step: String,
    pub title: String,
    pub kind: String,
    pub visits: usize,
    /// Requests that visited it.
    pub requests: usize,
    /// Visits beyond the first (loops, revisions).
    pub loops: usize,
    /// Entered to left, in days.
    pub total: Option<Stats>,
    /// Tasks: created to first claimed, in days.
    pub waiting: Option<Stats>,
    /// Tasks: first claimed to completed, in days.
    pub working: Option<Stats>,
    /// Tasks with a deadline: the share completed after it.
    pub breach_rate: Option<f64>,
    /// Time in this step over the lead time of the requests of the group (parallel steps
    /// overlap, so shares can add up to more than 1).
    pub share_of_lead_time: f64,
}

/// The maturity x performance position of one building block of a desk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixRow {
    pub desk: String,
    pub block: BuildingBlock,
    /// Share of the block's maturity facts that are present.
    pub maturity: Option<f64>,
    /// Share of the block's indicators with a target that meet it.
    pub performance: Option<f64>,
    pub quadrant: &'static str,
}

struct Ended {
    desk: String,
    group: String,
    lead_ms: i64,
}

/// The latest compiled definition of each deployed desk, by name.
pub type Desks = BTreeMap<String, std::sync::Arc<Process>>;

fn month_of(t: i64) -> (i32, u8) {
    let d = Timestamp(t).to_datetime();
    (d.year(), d.month() as u8)
}

impl Engine {
    /// The latest compiled definition of each deployed desk, by name (read again at most
    /// once per [`crate::runtime::DESKS_TTL`]).
    pub async fn desks(&self) -> Result<Desks, Error> {
        if let Ok(cached) = self.desks.read()
            && let Some((at, desks)) = cached.as_ref()
            && at.elapsed() < crate::runtime::DESKS_TTL
        {
            return Ok(desks.clone());
        }
        let desks = self.read_desks().await?;
        if let Ok(mut cached) = self.desks.write() {
            *cached = Some((std::time::Instant::now(), desks.clone()));
        }
        Ok(desks)
    }

    /// Forgets the cached list of desks (after a deploy).
    pub(crate) fn forget_desks(&self) {
        if let Ok(mut cached) = self.desks.write() {
            *cached = None;
        }
    }

    async fn read_desks(&self) -> Result<Desks, Error> {
        let rows = sqlx::query(
            "SELECT d.name, d.hash FROM definitions d WHERE d.revision = (SELECT MAX(revision) FROM definitions x WHERE x.name = d.name)",
        )
        .fetch_all(&self.store().pool)
        .await?;
        let mut out = BTreeMap::new();
        let mut conn = self.store().pool.acquire().await?;
        for r in rows {
            let name: String = r.try_get(0)?;
            let hash: String = r.try_get(1)?;
            out.insert(name, self.process(&mut conn, &hash).await?);
        }
        Ok(out)
    }

    /// The ended requests the query selects, with their group.
    async fn ended(&self, q: &Query) -> Result<BTreeMap<String, Ended>, Error> {
        let mut sql = String::from(
            "SELECT i.id, i.name, d.revision, i.started_at, i.ended_at FROM instances i JOIN definitions d ON d.hash = i.definition \
             WHERE i.status <> 'running' AND i.ended_at >= $1 AND i.ended_at < $2",
        );
        let mut n = 2;
        for _ in &q.filters {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM instance_fields f WHERE f.instance = i.id AND f.field = ${} AND f.value = ${})",
                n + 1,
                n + 2
            ));
            n += 2;
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.from.map_or(i64::MIN, |t| t.0))
            .bind(q.to.map_or(i64::MAX, |t| t.0));
        for (f, v) in &q.filters {
            query = query.bind(f.clone()).bind(v.clone());
        }
        let rows = query.fetch_all(&self.store().pool).await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let desk: String = r.try_get(1)?;
            if !q.desks.is_empty() && !q.desks.contains(&desk) {
                continue;
            }
            let revision: i64 = r.try_get(2)?;
            let started: i64 = r.try_get(3)?;
            let ended: i64 = r.try_get(4)?;
            let group = match q.compare {
                Compare::Model => String::new(),
                Compare::Version => format!("revision {revision}"),
                Compare::Month => {
                    let (y, m) = month_of(ended);
                    format!("{y}-{m:02}")
                }
                Compare::Quarter => {
                    let (y, m) = month_of(ended);
                    format!("{y}-Q{}", (m - 1) / 3 + 1)
                }
            };
            out.insert(
                r.try_get(0)?,
                Ended {
                    desk,
                    group,
                    lead_ms: ended - started,
                },
            );
        }
        Ok(out)
    }

    /// The declared indicators of each desk, per group.
    pub async fn kpis(&self, q: &Query) -> Result<Vec<KpiRow>, Error> {
        let defs = self.desks().await?;
        let ended = self.ended(q).await?;
        let mut tally = Tally::default();
        for e in ended.values() {
            tally.request(&e.desk, &e.group, e.lead_ms);
        }
        // Only the facts of ended requests in the period; desks and intake filters are
        // applied through `ended`.
        let rows = sqlx::query(
            "SELECT k.instance, k.kpi, k.value FROM kpi_facts k JOIN instances i ON i.id = k.instance \
             WHERE i.status <> 'running' AND i.ended_at >= $1 AND i.ended_at < $2",
        )
        .bind(q.from.map_or(i64::MIN, |t| t.0))
        .bind(q.to.map_or(i64::MAX, |t| t.0))
        .fetch_all(&self.store().pool)
        .await?;
        for r in rows {
            let instance: String = r.try_get(0)?;
            let Some(e) = ended.get(&instance) else {
                continue;
            };
            tally.value(&e.desk, &e.group, r.try_get(1)?, r.try_get(2)?);
        }
        Ok(tally.kpi_rows(&defs))
    }

    /// The lead time of the ended requests of each desk, per group.
    pub async fn lead_times(&self, q: &Query) -> Result<Vec<LeadTime>, Error> {
        let mut tally = Tally::default();
        for e in self.ended(q).await?.values() {
            tally.request(&e.desk, &e.group, e.lead_ms);
        }
        Ok(tally.lead_times())
    }

    /// Per-step timings of each desk, per group, slowest steps first.
    pub async fn step_timings(&self, q: &Query) -> Result<Vec<StepRow>, Error> {
        let defs = self.desks().await?;
        let ended = self.ended(q).await?;
        let mut tally = Tally::default();
        for e in ended.values() {
            tally.request(&e.desk, &e.group, e.lead_ms);
        }
        let rows = sqlx::query(
            "SELECT v.instance, v.step, v.kind, v.entered_at, v.claimed_at, v.left_at, v.due_at FROM step_visits v \
             JOIN instances i ON i.id = v.instance WHERE i.status <> 'running' AND i.ended_at >= $1 AND i.ended_at < $2",
        )
        .bind(q.from.map_or(i64::MIN, |t| t.0))
        .bind(q.to.map_or(i64::MAX, |t| t.0))
        .fetch_all(&self.store().pool)
        .await?;
        for r in rows {
            let instance: String = r.try_get(0)?;
            let Some(e) = ended.get(&instance) else {
                continue;
            };
            let kind: String = r.try_get(2)?;
            let visit = VisitTimes {
                entered: r.try_get(3)?,
                claimed: r.try_get(4)?,
                left: r.try_get(5)?,
                due: r.try_get(6)?,
            };
            tally.visit(&e.desk, &e.group, &instance, r.try_get(1)?, &kind, visit);
        }
        Ok(tally.step_rows(&defs))
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

/// The timings of one visit of a step, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct VisitTimes {
    pub entered: i64,
    pub claimed: Option<i64>,
    pub left: Option<i64>,
    pub due: Option<i64>,
}

#[derive(Debug, Default)]
struct StepAcc {
    kind: String,
    visits: usize,
    requests: std::collections::BTreeSet<String>,
    total: Vec<f64>,
    waiting: Vec<f64>,
    working: Vec<f64>,
    due: usize,
    breached: usize,
}

type Group = (String, String);

/// The facts of ended requests, gathered by (desk, group), turned into indicator and step
/// rows. The one place the indicators are computed: the database queries feed it recorded
/// facts, the simulator feeds it simulated ones.
#[derive(Debug, Default)]
pub struct Tally {
    requests: BTreeMap<Group, usize>,
    lead_ms: BTreeMap<Group, i64>,
    /// Each request's lead time, in days.
    leads: BTreeMap<Group, Vec<f64>>,
    values: BTreeMap<Group, BTreeMap<String, Vec<f64>>>,
    steps: BTreeMap<(String, String, String), StepAcc>,
}

impl Tally {
    /// An ended request of a group, with its lead time.
    pub fn request(&mut self, desk: &str, group: &str, lead_ms: i64) {
        let key = (desk.to_owned(), group.to_owned());
        *self.requests.entry(key.clone()).or_default() += 1;
        *self.lead_ms.entry(key.clone()).or_default() += lead_ms;
        #[allow(clippy::cast_precision_loss)]
        self.leads
            .entry(key)
            .or_default()
            .push(lead_ms as f64 / DAY_MS);
    }

    /// The value of one indicator for one ended request.
    pub fn value(&mut self, desk: &str, group: &str, kpi: String, value: f64) {
        self.values
            .entry((desk.to_owned(), group.to_owned()))
            .or_default()
            .entry(kpi)
            .or_default()
            .push(value);
    }

    /// One visit of a step by one ended request.
    pub fn visit(
        &mut self,
        desk: &str,
        group: &str,
        request: &str,
        step: String,
        kind: &str,
        v: VisitTimes,
    ) {
        let a = self
            .steps
            .entry((desk.to_owned(), group.to_owned(), step))
            .or_default();
        kind.clone_into(&mut a.kind);
        a.visits += 1;
        if !a.requests.contains(request) {
            a.requests.insert(request.to_owned());
        }
        #[allow(clippy::cast_precision_loss)]
        if let Some(left) = v.left {
            a.total.push((left - v.entered) as f64 / DAY_MS);
            if let Some(c) = v.claimed {
                a.waiting.push((c - v.entered) as f64 / DAY_MS);
                a.working.push((left - c) as f64 / DAY_MS);
            } else if a.kind == "task" {
                // Completed without an explicit claim: no waiting time apart from work.
                a.waiting.push(0.0);
                a.working.push((left - v.entered) as f64 / DAY_MS);
            }
            if let Some(d) = v.due {
                a.due += 1;
                if left > d {
                    a.breached += 1;
                }
            }
        }
    }

    /// The lead time (submission to end) of each desk, per group, in days.
    pub fn lead_times(&self) -> Vec<LeadTime> {
        self.leads
            .iter()
            .filter_map(|((desk, group), v)| {
                Stats::of(v.clone()).map(|stats| LeadTime {
                    desk: desk.clone(),
                    group: group.clone(),
                    stats,
                })
            })
            .collect()
    }

    /// The declared indicators of each desk, per group.
    pub fn kpi_rows(&self, defs: &BTreeMap<String, std::sync::Arc<Process>>) -> Vec<KpiRow> {
        let mut out = Vec::new();
        for ((desk, group), n) in &self.requests {
            let Some(p) = defs.get(desk) else { continue };
            let empty = BTreeMap::new();
            let vals = self
                .values
                .get(&(desk.clone(), group.clone()))
                .unwrap_or(&empty);
            let total = |id: &str| vals.get(id).map(|v| v.iter().sum::<f64>());
            for k in &p.kpis {
                let sample = vals.get(&k.id).cloned().unwrap_or_default();
                let (kind, unit, value, stats) = match &k.kind {
                    KpiKind::Duration { .. } => {
                        let stats = Stats::of(sample).map(|s| s.scaled(1.0 / DAY_MS));
                        ("duration", "days", stats.map(|s| s.mean), stats)
                    }
                    KpiKind::Count { .. } => {
                        ("count", "requests", Some(total(&k.id).unwrap_or(0.0)), None)
                    }
                    KpiKind::Ratio { of, per } => {
                        let (a, b) = (total(of).unwrap_or(0.0), total(per).unwrap_or(0.0));
                        ("ratio", "ratio", (b > 0.0).then(|| a / b), None)
                    }
                    KpiKind::Sum { .. } => ("sum", "total", total(&k.id), None),
                    KpiKind::Mean { .. } => {
                        let stats = Stats::of(sample);
                        ("mean", "mean", stats.map(|s| s.mean), stats)
                    }
                };
                let target = k.target.as_ref().map(|t| match &t.value {
                    #[allow(clippy::cast_precision_loss)]
                    TargetValue::Duration(d) => d.approx_seconds() as f64 / 86_400.0,
                    TargetValue::Number(x) => *x,
                });
                let lower_is_better = k.target.as_ref().is_none_or(|t| t.lower_is_better);
                let meets_target = match (value, target) {
                    (Some(v), Some(t)) => Some(if lower_is_better { v <= t } else { v >= t }),
                    _ => None,
                };
                out.push(KpiRow {
                    desk: desk.clone(),
                    group: group.clone(),
                    kpi: k.id.clone(),
                    title: k.title.clone(),
                    kind,
                    block: k.block,
                    requests: *n,
                    value,
                    unit,
                    stats,
                    target,
                    lower_is_better,
                    meets_target,
                });
            }
        }
        out
    }

    /// Per-step timings of each desk, per group, slowest steps first.
    pub fn step_rows(&self, defs: &BTreeMap<String, std::sync::Arc<Process>>) -> Vec<StepRow> {
        let mut out: Vec<StepRow> = self
            .steps
            .iter()
            .map(|((desk, group, step), a)| {
                let title = defs
                    .get(desk)
                    .and_then(|p| p.step(step))
                    .map_or_else(|| step.clone(), |s| s.display_name().to_owned());
                let spent: f64 = a.total.iter().sum::<f64>() * DAY_MS;
                #[allow(clippy::cast_precision_loss)]
                let lead_ms = *self
                    .lead_ms
                    .get(&(desk.clone(), group.clone()))
                    .unwrap_or(&0) as f64;
                #[allow(clippy::cast_precision_loss)]
                StepRow {
                    loops: a.visits - a.requests.len(),
                    requests: a.requests.len(),
                    visits: a.visits,
                    total: Stats::of(a.total.clone()),
                    waiting: Stats::of(a.waiting.clone()),
                    working: Stats::of(a.working.clone()),
                    breach_rate: (a.due > 0).then(|| a.breached as f64 / a.due as f64),
                    share_of_lead_time: if lead_ms > 0.0 { spent / lead_ms } else { 0.0 },
                    kind: a.kind.clone(),
                    desk: desk.clone(),
                    group: group.clone(),
                    step: step.clone(),
                    title,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (a.desk.as_str(), a.group.as_str())
                .cmp(&(b.desk.as_str(), b.group.as_str()))
                .then(b.share_of_lead_time.total_cmp(&a.share_of_lead_time))
        });
        out
    }
}

fn block_name(b: BuildingBlock) -> &'static str {
    match b {
        BuildingBlock::General => "général",
        BuildingBlock::Catalogue => "catalogue",
        BuildingBlock::Uses => "usages",
        BuildingBlock::Technical => "technique",
        BuildingBlock::Regulatory => "réglementaire",
        BuildingBlock::Valorisation => "valorisation",
    }
}

/// The white paper's maturity x performance chart (3.3) as a standalone SVG: maturity across,
/// performance up, the priority quadrant (neither mature nor performant) highlighted, one
/// point per building block and desk. Blocks without both measures are listed underneath.
pub fn matrix_svg(rows: &[MatrixRow]) -> String {
    use std::fmt::Write;
    const COLOURS: &[&str] = &[
        "#0b5394", "#b45f06", "#38761d", "#741b47", "#45818e", "#7f6000",
    ];
    let (left, top, size) = (70.0, 40.0, 420.0);
    let desks: Vec<&str> = {
        let mut d: Vec<&str> = rows.iter().map(|r| r.desk.as_str()).collect();
        d.dedup();
        d
    };
    let missing: Vec<&MatrixRow> = rows
        .iter()
        .filter(|r| r.maturity.is_none() || r.performance.is_none())
        .collect();
    // (one fact and one indicator with a target are needed to place a block)
    let height = top + size + 70.0 + 18.0 * (desks.len() + missing.len()) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="680" height="{height:.0}" viewBox="0 0 680 {height:.0}" font-family="sans-serif" font-size="12" role="img" aria-label="Maturité et performance par brique">"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="24" font-size="15" font-weight="bold">Maturité × performance</text>"#
    );
    let half = size / 2.0;
    // Quadrants: bottom-left is the priority.
    let quads = [
        (left, top + half, "#f4cccc", "Prioritaire"),
        (left + half, top, "#d9ead3", "Acquis"),
        (left, top, "#fff2cc", "Non prioritaire"),
        (left + half, top + half, "#fff2cc", "Non prioritaire"),
    ];
    for (x, y, fill, label) in quads {
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="{y}" width="{half}" height="{half}" fill="{fill}" stroke="#999"/>"##
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.0}" y="{:.0}" fill="#555" font-style="italic">{label}</text>"##,
            x + 8.0,
            y + 18.0
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="{:.0}" width="{half}" height="{half}" fill="none" stroke="#a40000" stroke-width="3"/>"##,
        top + half
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.0}" y="{:.0}" text-anchor="middle">Maturité →</text>"#,
        left + half,
        top + size + 32.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(24 {:.0}) rotate(-90)" text-anchor="middle">Performance →</text>"#,
        top + half
    );
    for (v, label) in [(0.0, "0"), (0.5, "0,5"), (1.0, "1")] {
        let _ = writeln!(
            out,
            r##"<text x="{:.0}" y="{:.0}" text-anchor="middle" fill="#555">{label}</text>"##,
            left + v * size,
            top + size + 16.0
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.0}" y="{:.0}" text-anchor="end" fill="#555">{label}</text>"##,
            left - 6.0,
            top + size - v * size + 4.0
        );
    }
    // Points at the same place are fanned out so each stays readable.
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for r in rows {
        let (Some(m), Some(p)) = (r.maturity, r.performance) else {
            continue;
        };
        let k = desks.iter().position(|d| *d == r.desk).unwrap_or(0);
        let colour = COLOURS[k % COLOURS.len()];
        #[allow(clippy::cast_possible_truncation)]
        let n = seen
            .entry(((m * 1000.0) as i64, (p * 1000.0) as i64))
            .or_default();
        #[allow(clippy::cast_precision_loss)]
        let (x, y) = (
            left + m * size - 10.0 * *n as f64,
            top + size - p * size + 15.0 * *n as f64,
        );
        *n += 1;
        let _ = writeln!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="{colour}"><title>{} · {} : maturité {m:.2}, performance {p:.2}</title></circle>"#,
            esc(&r.desk),
            block_name(r.block)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{}</text>"#,
            x + 9.0,
            y + 4.0,
            block_name(r.block)
        );
    }
    let mut y = top + size + 56.0;
    for (k, d) in desks.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let _ = writeln!(
            out,
            r#"<circle cx="{:.0}" cy="{:.0}" r="6" fill="{colour}"/><text x="{:.0}" y="{:.0}">{}</text>"#,
            left + 6.0,
            y - 4.0,
            left + 18.0,
            y,
            esc(d)
        );
        y += 18.0;
    }
    for r in missing {
        let _ = writeln!(
            out,
            r##"<text x="{left}" y="{y:.0}" fill="#555">{} · {} : données insuffisantes</text>"##,
            esc(&r.desk),
            block_name(r.block)
        );
        y += 18.0;
    }
    out.push_str("</svg>\n");
    out
}
