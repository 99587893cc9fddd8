//! The arithmetic of the indicators: samples kept as fine buckets, the partial tally of one
//! group of ended requests (mergeable, so that the stored monthly rollups, the facts read
//! from the database and the simulator's facts all meet here), and the rows the reports show.
//! The one place indicators are computed from facts.

use std::collections::BTreeMap;

use guichet_definitions::model::{KpiKind, Process, TargetValue};
use serde::{Deserialize, Serialize};

use crate::indicators::kpi::{KpiRow, LeadTime, StepRow};
pub use crate::indicators::stats::{Sample, Stats};

pub(crate) const DAY_MS: f64 = 86_400_000.0;

/// The timings of one visit of a step, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct VisitTimes {
    /// The first visit of this step by its request (later ones are loops).
    pub first: bool,
    pub entered: i64,
    pub claimed: Option<i64>,
    pub left: Option<i64>,
    pub due: Option<i64>,
}

/// What the visits of one step by a group's requests add up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepPart {
    kind: String,
    visits: u64,
    /// Requests that visited it (first visits).
    requests: u64,
    /// Entered to left, in days.
    total: Sample,
    waiting: Sample,
    working: Sample,
    /// Visits with a deadline, and those that left after it.
    due: u64,
    breached: u64,
}

impl StepPart {
    fn merge(&mut self, o: &StepPart) {
        if self.kind.is_empty() {
            self.kind.clone_from(&o.kind);
        }
        self.visits += o.visits;
        self.requests += o.requests;
        self.total.merge(&o.total);
        self.waiting.merge(&o.waiting);
        self.working.merge(&o.working);
        self.due += o.due;
        self.breached += o.breached;
    }
}

/// What the ended requests of one group add up to: their number and lead times, the values
/// of each declared indicator, the timings of each step. Stored as the monthly rollups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Part {
    requests: u64,
    /// Lead times, in days.
    lead: Sample,
    values: BTreeMap<String, Sample>,
    steps: BTreeMap<String, StepPart>,
}

impl Part {
    /// Adds another part's requests.
    pub fn merge(&mut self, o: &Part) {
        self.requests += o.requests;
        self.lead.merge(&o.lead);
        for (k, s) in &o.values {
            self.values.entry(k.clone()).or_default().merge(s);
        }
        for (k, s) in &o.steps {
            self.steps.entry(k.clone()).or_default().merge(s);
        }
    }

    /// The compact binary form stored in the rollups.
    pub fn encode(&self) -> Vec<u8> {
        // A part is maps of numbers: serialising it cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Part, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }
}

/// The facts of ended requests, gathered by (desk, group), turned into indicator and step
/// rows. The database queries feed it stored rollups and recorded facts, the simulator its
/// simulated facts. `G` is the group: a label for reports, (revision, month) for the rollups.
#[derive(Debug, Clone)]
pub struct Tally<G = String> {
    /// Desk -> group -> part (two levels, so that a desk is found by `&str`).
    parts: BTreeMap<String, BTreeMap<G, Part>>,
}

impl<G> Default for Tally<G> {
    fn default() -> Self {
        Tally {
            parts: BTreeMap::new(),
        }
    }
}

impl<G: Ord + Clone> Tally<G> {
    fn part(&mut self, desk: &str, group: &G) -> &mut Part {
        // Looked up before inserting: the keys are copied once per group, not once per fact.
        if !self.parts.contains_key(desk) {
            self.parts.insert(desk.to_owned(), BTreeMap::new());
        }
        let groups = self.parts.get_mut(desk).unwrap_or_else(|| unreachable!());
        if !groups.contains_key(group) {
            groups.insert(group.clone(), Part::default());
        }
        groups.get_mut(group).unwrap_or_else(|| unreachable!())
    }

    /// An ended request of a group, with its lead time.
    pub fn request(&mut self, desk: &str, group: &G, lead_ms: i64) {
        let p = self.part(desk, group);
        p.requests += 1;
        #[allow(clippy::cast_precision_loss)]
        p.lead.add(lead_ms as f64 / DAY_MS);
    }

    /// The value of one indicator for one ended request.
    pub fn value(&mut self, desk: &str, group: &G, kpi: &str, value: f64) {
        let p = self.part(desk, group);
        if let Some(s) = p.values.get_mut(kpi) {
            s.add(value);
        } else {
            p.values.entry(kpi.to_owned()).or_default().add(value);
        }
    }

    /// One visit of a step by one ended request.
    pub fn visit(&mut self, desk: &str, group: &G, step: &str, kind: &str, v: VisitTimes) {
        let p = self.part(desk, group);
        if !p.steps.contains_key(step) {
            p.steps.insert(step.to_owned(), StepPart::default());
        }
        let Some(a) = p.steps.get_mut(step) else {
            return;
        };
        kind.clone_into(&mut a.kind);
        a.visits += 1;
        a.requests += u64::from(v.first);
        #[allow(clippy::cast_precision_loss)]
        if let Some(left) = v.left {
            a.total.add((left - v.entered) as f64 / DAY_MS);
            if let Some(c) = v.claimed {
                a.waiting.add((c - v.entered) as f64 / DAY_MS);
                a.working.add((left - c) as f64 / DAY_MS);
            } else if a.kind == "task" {
                // Completed without an explicit claim: no waiting time apart from work.
                a.waiting.add(0.0);
                a.working.add((left - v.entered) as f64 / DAY_MS);
            }
            if let Some(d) = v.due {
                a.due += 1;
                if left > d {
                    a.breached += 1;
                }
            }
        }
    }

    /// Adds a whole part (a stored rollup) to a group.
    pub fn merge(&mut self, desk: &str, group: &G, part: &Part) {
        self.part(desk, group).merge(part);
    }

    /// Each desk and group, and what its requests add up to, taken out.
    pub fn into_parts(self) -> Vec<(String, G, Part)> {
        self.parts
            .into_iter()
            .flat_map(|(d, groups)| groups.into_iter().map(move |(g, p)| (d.clone(), g, p)))
            .collect()
    }

    /// Each desk and group, and what its requests add up to.
    pub fn parts(&self) -> impl Iterator<Item = (&str, &G, &Part)> {
        self.parts
            .iter()
            .flat_map(|(d, groups)| groups.iter().map(move |(g, p)| (d.as_str(), g, p)))
    }
}

impl Tally<String> {
    /// The lead time (submission to end) of each desk, per group, in days.
    pub fn lead_times(&self) -> Vec<LeadTime> {
        self.parts()
            .filter_map(|(desk, group, p)| {
                p.lead.stats().map(|stats| LeadTime {
                    desk: desk.to_owned(),
                    group: group.clone(),
                    stats,
                })
            })
            .collect()
    }

    /// The declared indicators of each desk, per group.
    pub fn kpi_rows(&self, defs: &BTreeMap<String, std::sync::Arc<Process>>) -> Vec<KpiRow> {
        let mut out = Vec::new();
        let empty = Sample::default();
        for (desk, group, part) in self.parts() {
            let Some(p) = defs.get(desk) else { continue };
            let sample = |id: &str| part.values.get(id).unwrap_or(&empty);
            let total = |id: &str| part.values.get(id).map(Sample::sum);
            for k in &p.kpis {
                let (kind, unit, value, stats) = match &k.kind {
                    KpiKind::Duration { .. } => {
                        let stats = sample(&k.id).stats().map(|s| s.scaled(1.0 / DAY_MS));
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
                        let stats = sample(&k.id).stats();
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
                #[allow(clippy::cast_possible_truncation)]
                out.push(KpiRow {
                    desk: desk.to_owned(),
                    group: group.clone(),
                    kpi: k.id.clone(),
                    title: k.title.clone(),
                    kind,
                    block: k.block,
                    requests: part.requests as usize,
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
        let mut out: Vec<StepRow> = Vec::new();
        for (desk, group, part) in self.parts() {
            let lead = part.lead.sum();
            for (step, a) in &part.steps {
                let title = defs
                    .get(desk)
                    .and_then(|p| p.step(step))
                    .map_or_else(|| step.clone(), |s| s.display_name().to_owned());
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                out.push(StepRow {
                    loops: (a.visits - a.requests) as usize,
                    requests: a.requests as usize,
                    visits: a.visits as usize,
                    total: a.total.stats(),
                    waiting: a.waiting.stats(),
                    working: a.working.stats(),
                    breach_rate: (a.due > 0).then(|| a.breached as f64 / a.due as f64),
                    share_of_lead_time: if lead > 0.0 {
                        a.total.sum() / lead
                    } else {
                        0.0
                    },
                    kind: a.kind.clone(),
                    desk: desk.to_owned(),
                    group: group.clone(),
                    step: step.clone(),
                    title,
                });
            }
        }
        out.sort_by(|a, b| {
            (a.desk.as_str(), a.group.as_str())
                .cmp(&(b.desk.as_str(), b.group.as_str()))
                .then(b.share_of_lead_time.total_cmp(&a.share_of_lead_time))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn distinct_buckets_give_the_exact_percentiles() {
        let mut s = Sample::default();
        for v in [60.0, 10.0, 20.0] {
            s.add(v);
        }
        let st = s.stats().unwrap_or_else(|| unreachable!());
        assert_eq!(
            st,
            Stats::of(vec![10.0, 20.0, 60.0]).unwrap_or_else(|| unreachable!())
        );
        assert_eq!((st.mean, st.median), (30.0, 20.0));
    }

    #[test]
    fn zero_and_negative_values_sort_in_place() {
        let mut s = Sample::default();
        for v in [-5.0, 0.0, 3.0, -0.5, 0.0] {
            s.add(v);
        }
        let st = s.stats().unwrap_or_else(|| unreachable!());
        assert_eq!((st.min, st.p25, st.median, st.max), (-5.0, -0.5, 0.0, 3.0));
        s.add(f64::NAN);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn a_part_survives_its_encoding() {
        let mut t: Tally<(i64, i64)> = Tally::default();
        let g = (1, 0);
        t.request("a", &g, 86_400_000);
        t.value("a", &g, "delai", 5.0);
        let v = VisitTimes {
            first: true,
            entered: 0,
            claimed: Some(10),
            left: Some(100),
            due: Some(50),
        };
        t.visit("a", &g, "revue", "task", v);
        let (_, _, part) = t.parts().next().unwrap_or_else(|| unreachable!());
        let bytes = part.encode();
        assert_eq!(Part::decode(&bytes).ok().as_ref(), Some(part));
        assert!(Part::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    proptest! {
        /// Percentiles are within one bucket (1 %) of the exact nearest-rank values; count,
        /// sum, minimum and maximum are exact; merging halves gives the whole.
        #[test]
        fn percentiles_within_a_bucket_and_merging_is_adding(
            values in proptest::collection::vec(-1.0e9f64..1.0e9, 1..300),
            cut in 0usize..300,
        ) {
            let mut whole = Sample::default();
            for v in &values {
                whole.add(*v);
            }
            let cut = cut.min(values.len());
            let (mut a, mut b) = (Sample::default(), Sample::default());
            for v in &values[..cut] {
                a.add(*v);
            }
            for v in &values[cut..] {
                b.add(*v);
            }
            a.merge(&b);
            let (got, merged) = (whole.stats().unwrap(), a.stats().unwrap());
            let exact = Stats::of(values.clone()).unwrap();
            prop_assert_eq!(got.n, exact.n);
            prop_assert_eq!((got.min, got.max), (exact.min, exact.max));
            prop_assert!((got.mean - exact.mean).abs() <= 1e-6 * exact.mean.abs().max(1.0));
            for (g, x) in [
                (got.p25, exact.p25),
                (got.median, exact.median),
                (got.p75, exact.p75),
                (got.p90, exact.p90),
                (got.p95, exact.p95),
            ] {
                prop_assert!((g - x).abs() <= 0.0101 * x.abs() + 1e-9, "{} vs {}", g, x);
            }
            prop_assert_eq!(merged.n, got.n);
            for (m, g) in [(merged.median, got.median), (merged.p95, got.p95)] {
                prop_assert!((m - g).abs() <= 1e-9 * g.abs().max(1.0));
            }
        }
    }
}
