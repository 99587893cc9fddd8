//! Indicators over ended requests: the desk's declared KPIs and the per-step timings,
//! grouped by desk model and optionally by revision or period, filtered by intake answers.
//! Computed from the facts each request leaves when it ends ([`crate::facts`]); the exact
//! definitions are in `docs/kpi.md`.

use std::collections::BTreeMap;

use guichet_definitions::model::{BuildingBlock, Process};
use serde::Serialize;

use crate::charts::esc;
use crate::clock::Timestamp;
use crate::db::Db;
use crate::runtime::{Engine, Error};
use crate::store::in_read;

pub use crate::tally::{Part, Sample, Stats, Tally, VisitTimes};

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

/// The latest compiled definition of each deployed desk, by name.
pub type Desks = BTreeMap<String, std::sync::Arc<Process>>;

/// What nearly every page and API call asks of the database, read at most once per
/// [`crate::runtime::DESKS_TTL`]: each desk's latest revision, and who the administrators
/// are.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    /// Each desk's latest revision: its hash and compiled definition, by name.
    latest: BTreeMap<String, (String, std::sync::Arc<Process>)>,
    /// The administrators' emails.
    admins: std::collections::BTreeSet<String>,
}

impl Engine {
    /// The latest compiled definition of each deployed desk, by name (read again at most
    /// once per [`crate::runtime::DESKS_TTL`]).
    pub async fn desks(&self) -> Result<Desks, Error> {
        Ok(self
            .roster()
            .await?
            .latest
            .iter()
            .map(|(name, (_, p))| (name.clone(), p.clone()))
            .collect())
    }

    /// The latest revision of a desk: its hash and compiled definition. A desk another
    /// process deployed since the roster was read is read at once.
    pub(crate) async fn latest(
        &self,
        name: &str,
    ) -> Result<Option<(String, std::sync::Arc<Process>)>, Error> {
        if let Some(found) = self.roster().await?.latest.get(name) {
            return Ok(Some(found.clone()));
        }
        self.forget_roster();
        Ok(self.roster().await?.latest.get(name).cloned())
    }

    /// Whether the account is an administrator (as of at most [`crate::runtime::DESKS_TTL`]
    /// ago, as for roles; at once for a change made through this engine).
    pub async fn is_admin(&self, email: &str) -> Result<bool, Error> {
        Ok(self
            .roster()
            .await?
            .admins
            .contains(&email.trim().to_lowercase()))
    }

    async fn roster(&self) -> Result<std::sync::Arc<Roster>, Error> {
        let cached = self.roster.read().ok().and_then(|c| c.clone());
        if let Some((at, roster)) = &cached
            && at.elapsed() < crate::runtime::DESKS_TTL
        {
            return Ok(roster.clone());
        }
        // One caller reads it again; the others go on with the one they have meanwhile
        // (every page and API call asks for it: under load, all of them at once).
        let _reading = match (self.roster_reading.try_lock(), cached) {
            (Ok(reading), _) => reading,
            (Err(_), Some((_, roster))) => return Ok(roster),
            (Err(_), None) => self.roster_reading.lock().await,
        };
        if let Ok(cached) = self.roster.read()
            && let Some((at, roster)) = cached.as_ref()
            && at.elapsed() < crate::runtime::DESKS_TTL
        {
            return Ok(roster.clone());
        }
        let roster = std::sync::Arc::new(self.read_roster().await?);
        if let Ok(mut cached) = self.roster.write() {
            *cached = Some((std::time::Instant::now(), roster.clone()));
        }
        Ok(roster)
    }

    /// Forgets the roster (after a deploy, or a change of administrators).
    pub(crate) fn forget_roster(&self) {
        if let Ok(mut cached) = self.roster.write() {
            *cached = None;
        }
    }

    async fn read_roster(&self) -> Result<Roster, Error> {
        let sql = "SELECT d.name, d.hash FROM definitions d WHERE d.revision = (SELECT MAX(revision) FROM definitions x WHERE x.name = d.name)";
        in_read!(self.store(), |db| async {
            let mut roster = Roster::default();
            for r in db.rows(sql.into(), &[]).await? {
                let hash = r.text(1)?;
                let process = self.process(&mut *db, &hash).await?;
                roster.latest.insert(r.text(0)?, (hash, process));
            }
            for r in db
                .rows("SELECT email FROM users WHERE admin = 1".into(), &[])
                .await?
            {
                roster.admins.insert(r.text(0)?);
            }
            Ok(roster)
        })
    }

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
